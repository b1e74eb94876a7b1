//! Parser for Prometheus's PromQL test-script language (`promqltest`).

use regex::Regex;
use strata_promql::Labels;

use crate::series::{SeqVal, parse_duration, parse_number, parse_series, unquote_all};

/// Expected message check for `expect` lines.
#[derive(Debug, Clone)]
pub enum MsgMatch {
    Any,
    Exact(String),
    Regex(Regex),
}

#[derive(Debug, Default, Clone)]
pub struct Expects {
    pub fail: Option<MsgMatch>,
    pub warn: Vec<MsgMatch>,
    pub info: Vec<MsgMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    /// Old-style `eval_warn` / `eval_info`: at least one annotation.
    pub any_warn: bool,
    pub any_info: bool,
}

#[derive(Debug, Clone)]
pub struct Eval {
    pub line: usize,
    pub expr: String,
    pub is_range: bool,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    /// Evaluation time for instant queries.
    pub at: i64,
    pub expects: Expects,
    pub expect_scalar: Option<SeqVal>,
    pub expected: Vec<(Labels, Vec<SeqVal>, usize)>,
    pub expected_string: Option<String>,
    pub range_vector: bool,
    pub exclude_from_range: bool,
}

#[derive(Debug, Clone)]
pub enum Cmd {
    Clear,
    Load {
        gap: i64,
        with_nhcb: bool,
        series: Vec<(Labels, Vec<SeqVal>)>,
    },
    Eval(Box<Eval>),
    /// A command the runner cannot execute, with the reason.
    Unsupported {
        line: usize,
        is_eval: bool,
        reason: String,
    },
}

fn parse_msg(kind: &str, rest: Option<(&str, &str)>) -> Result<MsgMatch, String> {
    match rest {
        None => Ok(MsgMatch::Any),
        Some(("msg", m)) => Ok(MsgMatch::Exact(m.trim().to_string())),
        Some(("regex", r)) => Regex::new(r.trim())
            .map(MsgMatch::Regex)
            .map_err(|e| format!("bad regex for {kind}: {e}")),
        Some((o, _)) => Err(format!("unknown match type {o}")),
    }
}

fn parse_expect(line: &str, e: &mut Expects) -> Result<(), String> {
    let re =
        Regex::new(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
            .map_err(|e| e.to_string())?;
    let caps = re
        .captures(line.trim())
        .ok_or_else(|| format!("invalid expect statement {line:?}"))?;
    let kind = caps.get(1).map(|m| m.as_str()).unwrap_or("");
    let rest = caps
        .get(2)
        .zip(caps.get(3))
        .map(|(a, b)| (a.as_str(), b.as_str()));
    match kind {
        "ordered" => e.ordered = true,
        "fail" => e.fail = Some(parse_msg(kind, rest)?),
        "warn" => e.warn.push(parse_msg(kind, rest)?),
        "info" => e.info.push(parse_msg(kind, rest)?),
        "no_warn" => e.no_warn = true,
        "no_info" => e.no_info = true,
        _ => {}
    }
    Ok(())
}

/// Parses a whole script into commands.
pub fn parse(input: &str) -> Vec<Cmd> {
    let lines: Vec<String> = input
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    let load_re = Regex::new(r"^load(?:_(with_nhcb))?\s+(.+?)$").ok();
    let inst_re =
        Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$").ok();
    let range_re = Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
    .ok();
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        // The block of indented lines belonging to this command.
        let mut j = i + 1;
        while j < lines.len() && !lines[j].is_empty() {
            j += 1;
        }
        let block: Vec<&str> = lines[i + 1..j].iter().map(|s| s.as_str()).collect();
        let lineno = i + 1;
        if word == "clear" {
            cmds.push(Cmd::Clear);
            i += 1;
            continue;
        } else if word.starts_with("load") {
            let caps = load_re.as_ref().and_then(|r| r.captures(l));
            let res = (|| -> Result<Cmd, String> {
                let caps = caps.ok_or("invalid load command")?;
                let gap = parse_duration(caps.get(2).map(|m| m.as_str()).unwrap_or(""))?;
                let mut series = Vec::new();
                for b in &block {
                    let first = b.split_whitespace().next().unwrap_or("");
                    if first.ends_with("@st") {
                        return Err("start timestamp (@st) lines are not supported".into());
                    }
                    series.push(parse_series(b)?);
                }
                Ok(Cmd::Load {
                    gap,
                    with_nhcb: caps.get(1).is_some(),
                    series,
                })
            })();
            cmds.push(res.unwrap_or_else(|reason| Cmd::Unsupported {
                line: lineno,
                is_eval: false,
                reason,
            }));
        } else if word.starts_with("eval") {
            let res = parse_eval(l, &block, lineno, inst_re.as_ref(), range_re.as_ref());
            cmds.push(res.unwrap_or_else(|reason| Cmd::Unsupported {
                line: lineno,
                is_eval: true,
                reason,
            }));
        } else {
            cmds.push(Cmd::Unsupported {
                line: lineno,
                is_eval: false,
                reason: format!("invalid command {l:?}"),
            });
        }
        i = j;
    }
    cmds
}

fn parse_eval(
    l: &str,
    block: &[&str],
    line: usize,
    inst_re: Option<&Regex>,
    range_re: Option<&Regex>,
) -> Result<Cmd, String> {
    let mut ev = Eval {
        line,
        expr: String::new(),
        is_range: false,
        start: 0,
        end: 0,
        step: 0,
        at: 0,
        expects: Expects::default(),
        expect_scalar: None,
        expected: Vec::new(),
        expected_string: None,
        range_vector: false,
        exclude_from_range: false,
    };
    let modifier;
    if let Some(c) = inst_re.and_then(|r| r.captures(l)) {
        modifier = c.get(1).map(|m| m.as_str().to_string());
        ev.at = parse_duration(c.get(2).map(|m| m.as_str()).unwrap_or("0"))?;
        ev.expr = c.get(3).map(|m| m.as_str().to_string()).unwrap_or_default();
    } else if let Some(c) = range_re.and_then(|r| r.captures(l)) {
        modifier = c.get(1).map(|m| m.as_str().to_string());
        ev.is_range = true;
        ev.start = parse_duration(c.get(2).map(|m| m.as_str()).unwrap_or(""))?;
        ev.end = parse_duration(c.get(3).map(|m| m.as_str()).unwrap_or(""))?;
        ev.step = parse_duration(c.get(4).map(|m| m.as_str()).unwrap_or(""))?;
        ev.expr = c.get(5).map(|m| m.as_str().to_string()).unwrap_or_default();
    } else {
        return Err("invalid eval command".into());
    }
    match modifier.as_deref() {
        Some("fail") => ev.expects.fail = Some(MsgMatch::Any),
        Some("warn") => ev.expects.any_warn = true,
        Some("info") => ev.expects.any_info = true,
        Some("ordered") => ev.expects.ordered = true,
        _ => {}
    }
    let mut pos = 0usize;
    let range_vec_re =
        Regex::new(r"^\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$").map_err(|e| e.to_string())?;
    for b in block {
        if ev.expects.fail.is_some() {
            if let Some(m) = b.strip_prefix("expected_fail_message") {
                ev.expects.fail = Some(MsgMatch::Exact(m.trim().to_string()));
                break;
            }
            if let Some(r) = b.strip_prefix("expected_fail_regexp") {
                ev.expects.fail = Some(MsgMatch::Regex(
                    Regex::new(r.trim()).map_err(|e| e.to_string())?,
                ));
                break;
            }
        }
        if let Some(r) = b.strip_prefix("expect range vector") {
            let c = range_vec_re
                .captures(r)
                .ok_or("invalid range vector definition")?;
            ev.start = parse_duration(c.get(1).map(|m| m.as_str()).unwrap_or(""))?;
            ev.end = parse_duration(c.get(2).map(|m| m.as_str()).unwrap_or(""))?;
            ev.step = parse_duration(c.get(3).map(|m| m.as_str()).unwrap_or(""))?;
            ev.at = ev.end;
            ev.range_vector = true;
            ev.exclude_from_range = true;
            continue;
        }
        if let Some(s) = b.strip_prefix("expect string") {
            ev.expected_string = Some(unquote_all(s.trim())?);
            ev.exclude_from_range = true;
            continue;
        }
        if b.split(' ').next() == Some("expect") {
            parse_expect(b, &mut ev.expects)?;
            continue;
        }
        if let Ok(f) = parse_number(b) {
            ev.expect_scalar = Some(SeqVal::Float(f));
            break;
        }
        let (labels, vals) = parse_series(b)?;
        if vals.len() > 1 && !ev.is_range && !ev.range_vector {
            return Err("expecting multiple values in instant evaluation not allowed".into());
        }
        pos += 1;
        ev.expected.push((labels, vals, pos));
    }
    Ok(Cmd::Eval(Box::new(ev)))
}
