//! Golden suite: every query in `golden/cases.txt` is run on every trace of
//! `golden/spans.json`, and the matched traces, spansets, spans and spanset attributes
//! must be exactly the expected ones (worked out by hand from the data). Error cases
//! must fail to parse at the given line and column with the given message.
//!
//! Runs without the test harness (`harness = false`) so that it always prints its
//! counts. Also checks, for every case, that the query's storage hints hold on every trace it
//! matched (hints must never prune a matching trace).
//!
//! Case format (blank lines separate cases, `#` starts a comment line):
//!
//! ```text
//! > { span.http.method = "GET" }
//! t1: t1.a
//! t2: t2.a | count()=1, avg(duration)=20ms
//! ```
//!
//! One result line per spanset, traces in data order, spansets in engine order (`by()`
//! groups in order of their first span). `(none)` means no trace matches.
//! `! 1:7 message` expects a parse error at line 1, col 7 whose message contains `message`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use strata_traceql::{
    Condition, EventData, HintField, LinkData, Predicate, SpanData, SpanKind, StatusCode,
    TraceData, Value, evaluate, parse,
};

fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap()),
        },
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_value).collect()),
        other => panic!("unsupported attribute value {other}"),
    }
}

fn attrs(v: &serde_json::Value) -> Vec<(String, Value)> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect())
        .unwrap_or_default()
}

fn load() -> Vec<TraceData> {
    let text = include_str!("golden/spans.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let base = doc["base_ns"].as_i64().unwrap();
    let us = |v: &serde_json::Value| base + v.as_i64().unwrap() * 1000;
    doc["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| TraceData {
            trace_id: t["trace_id"].as_str().unwrap().to_string(),
            spans: t["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let start_ns = us(&s["start_us"]);
                    let str_of = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                    SpanData {
                        span_id: str_of("id"),
                        parent_span_id: s["parent"].as_str().map(str::to_string),
                        name: str_of("name"),
                        kind: match s["kind"].as_str().unwrap() {
                            "server" => SpanKind::Server,
                            "client" => SpanKind::Client,
                            "producer" => SpanKind::Producer,
                            "consumer" => SpanKind::Consumer,
                            "internal" => SpanKind::Internal,
                            _ => SpanKind::Unspecified,
                        },
                        status: match s["status"].as_str().unwrap() {
                            "ok" => StatusCode::Ok,
                            "error" => StatusCode::Error,
                            _ => StatusCode::Unset,
                        },
                        status_message: str_of("status_message"),
                        start_ns,
                        end_ns: start_ns + s["dur_us"].as_i64().unwrap() * 1000,
                        service_name: str_of("service"),
                        attributes: attrs(&s["attrs"]),
                        resource_attributes: attrs(&s["resource"]),
                        scope_name: s["scope"][0].as_str().unwrap_or_default().to_string(),
                        scope_version: s["scope"][1].as_str().unwrap_or_default().to_string(),
                        events: s["events"]
                            .as_array()
                            .map(|evs| {
                                evs.iter()
                                    .map(|e| EventData {
                                        name: e["name"].as_str().unwrap().to_string(),
                                        time_ns: us(&e["at_us"]),
                                        attributes: attrs(&e["attrs"]),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        links: s["links"]
                            .as_array()
                            .map(|ls| {
                                ls.iter()
                                    .map(|l| LinkData {
                                        trace_id: l["trace_id"].as_str().unwrap().to_string(),
                                        span_id: l["span_id"].as_str().unwrap().to_string(),
                                        attributes: attrs(&l["attrs"]),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }
                })
                .collect(),
        })
        .collect()
}

#[derive(Debug)]
enum Expect {
    Results(Vec<String>),
    Error {
        line: usize,
        col: usize,
        msg: String,
    },
}

struct Case {
    line_no: usize,
    query: String,
    expect: Expect,
}

fn load_cases() -> Vec<Case> {
    let text = include_str!("golden/cases.txt");
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.starts_with('#') {
            continue;
        }
        if let Some(q) = line.strip_prefix("> ") {
            if let Some(c) = cur.take() {
                cases.push(c);
            }
            cur = Some(Case {
                line_no: i + 1,
                query: q.to_string(),
                expect: Expect::Results(Vec::new()),
            });
            continue;
        }
        if line.is_empty() {
            if let Some(c) = cur.take() {
                cases.push(c);
            }
            continue;
        }
        let c = cur
            .as_mut()
            .unwrap_or_else(|| panic!("cases.txt:{}: expectation without a query", i + 1));
        if let Some(rest) = line.strip_prefix("! ") {
            let (pos, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            let (l, col) = pos.split_once(':').unwrap();
            c.expect = Expect::Error {
                line: l.parse().unwrap(),
                col: col.parse().unwrap(),
                msg: msg.to_string(),
            };
        } else if line == "(none)" {
            c.expect = Expect::Results(Vec::new());
        } else if let Expect::Results(r) = &mut c.expect {
            r.push(line.to_string());
        }
    }
    if let Some(c) = cur.take() {
        cases.push(c);
    }
    cases
}

/// Parses an expected attribute value: `"str"`, `true`, `nil`, `20ms`, `1.5`, `3`.
fn expected_value(s: &str) -> Value {
    if let Some(q) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Value::Str(q.to_string());
    }
    match s {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "nil" => return Value::Nil,
        "ok" => return Value::Status(StatusCode::Ok),
        "error" => return Value::Status(StatusCode::Error),
        "unset" => return Value::Status(StatusCode::Unset),
        _ => {}
    }
    for (unit, mult) in [
        ("ns", 1i64),
        ("us", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
    ] {
        if let Some(n) = s.strip_suffix(unit)
            && let Ok(v) = n.parse::<f64>()
        {
            return Value::Duration((v * mult as f64).round() as i64);
        }
    }
    if s.contains('.') {
        return Value::Float(s.parse().unwrap());
    }
    Value::Int(
        s.parse()
            .unwrap_or_else(|_| panic!("bad expected value {s}")),
    )
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

/// Does the trace satisfy the hint condition (some span does)? A test oracle written
/// independently of the engine.
fn hint_holds(trace: &TraceData, c: &Condition) -> bool {
    trace.spans.iter().any(|s| span_meets(trace, s, c))
}

fn span_meets(trace: &TraceData, s: &SpanData, c: &Condition) -> bool {
    let root = trace.spans.iter().find(|s| s.parent_span_id.is_none());
    let start = trace.spans.iter().map(|s| s.start_ns).min().unwrap();
    let end = trace.spans.iter().map(|s| s.end_ns).max().unwrap();
    {
        let get = |attrs: &[(String, Value)], k: &str| {
            attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        let v = match &c.field {
            HintField::ServiceName => Some(Value::Str(s.service_name.clone())),
            HintField::SpanName => Some(Value::Str(s.name.clone())),
            HintField::Status => Some(Value::Status(s.status)),
            HintField::StatusMessage => Some(Value::Str(s.status_message.clone())),
            HintField::Kind => Some(Value::Kind(s.kind)),
            HintField::Duration => Some(Value::Duration(s.end_ns - s.start_ns)),
            HintField::SpanAttribute(k) => get(&s.attributes, k),
            HintField::ResourceAttribute(k) => get(&s.resource_attributes, k),
            HintField::Attribute(k) => {
                get(&s.attributes, k).or_else(|| get(&s.resource_attributes, k))
            }
            HintField::RootServiceName => root.map(|r| Value::Str(r.service_name.clone())),
            HintField::RootName => root.map(|r| Value::Str(r.name.clone())),
            HintField::TraceDuration => Some(Value::Duration(end - start)),
        };
        let Some(v) = v else { return false };
        let elems = match &v {
            Value::Array(a) => a.clone(),
            _ => vec![v.clone()],
        };
        elems.iter().any(|v| pred_holds(v, &c.predicate))
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) | Value::Duration(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn pred_holds(v: &Value, p: &Predicate) -> bool {
    let eq = |a: &Value, b: &Value| match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    let ord = |b: &Value| match (v, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => num(v)?.partial_cmp(&num(b)?),
    };
    use std::cmp::Ordering::*;
    match p {
        Predicate::Eq(b) => eq(v, b),
        Predicate::In(bs) => bs.iter().any(|b| eq(v, b)),
        Predicate::Gt(b) => ord(b) == Some(Greater),
        Predicate::Gte(b) => matches!(ord(b), Some(Greater | Equal)),
        Predicate::Lt(b) => ord(b) == Some(Less),
        Predicate::Lte(b) => matches!(ord(b), Some(Less | Equal)),
        Predicate::Regex(r) => match v {
            Value::Str(s) => regex::Regex::new(&format!("^(?:{r})$"))
                .unwrap()
                .is_match(s),
            _ => false,
        },
        Predicate::Exists => true,
    }
}

fn main() {
    let traces = load();
    let cases = load_cases();
    let ids: HashMap<(usize, usize), &str> = traces
        .iter()
        .enumerate()
        .flat_map(|(t, tr)| {
            tr.spans
                .iter()
                .enumerate()
                .map(move |(s, sp)| ((t, s), sp.span_id.as_str()))
        })
        .collect();
    let (mut passed, mut failed, mut hint_checks) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let where_ = format!("cases.txt:{} `{}`", case.line_no, case.query);
        match (&case.expect, parse(&case.query)) {
            (Expect::Error { line, col, msg }, Err(e)) => {
                if e.line == *line && e.col == *col && e.message.contains(msg.as_str()) {
                    passed += 1;
                } else {
                    failed += 1;
                    failures.push(format!(
                        "{where_}\n  expected error at {line}:{col} containing {msg:?}\n  got: {e}"
                    ));
                }
            }
            (Expect::Error { .. }, Ok(_)) => {
                failed += 1;
                failures.push(format!("{where_}\n  expected a parse error, but it parsed"));
            }
            (Expect::Results(_), Err(e)) => {
                failed += 1;
                failures.push(format!("{where_}\n  unexpected parse error: {e}"));
            }
            (Expect::Results(expected), Ok(q)) => {
                let hints = q.hints();
                let mut got_lines: Vec<String> = Vec::new();
                let mut got_values: Vec<Vec<(String, Value)>> = Vec::new();
                for (t, tr) in traces.iter().enumerate() {
                    let sets = evaluate(&q, tr);
                    if !sets.is_empty() {
                        if q.hints_hold_on_one_span() {
                            hint_checks += 1;
                            let one = tr
                                .spans
                                .iter()
                                .any(|s| hints.conditions.iter().all(|c| span_meets(tr, s, c)));
                            if !one {
                                failures.push(format!(
                                    "{where_}\n  no one span of matching trace {} meets every hint",
                                    tr.trace_id
                                ));
                                failed += 1;
                            }
                        }
                        for c in &hints.conditions {
                            hint_checks += 1;
                            if !hint_holds(tr, c) {
                                failures.push(format!(
                                    "{where_}\n  hint {c:?} excludes matching trace {}",
                                    tr.trace_id
                                ));
                                failed += 1;
                            }
                        }
                    }
                    for s in sets {
                        let spans: Vec<&str> = s.spans.iter().map(|&i| ids[&(t, i)]).collect();
                        let mut line = format!("{}: {}", tr.trace_id, spans.join(" "));
                        if !s.attributes.is_empty() {
                            let a: Vec<String> = s
                                .attributes
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect();
                            line.push_str(&format!(" | {}", a.join(", ")));
                        }
                        got_lines.push(line);
                        got_values.push(s.attributes);
                    }
                }
                if matches(expected, &got_lines, &got_values) {
                    passed += 1;
                } else {
                    failed += 1;
                    failures.push(format!(
                        "{where_}\n  expected:\n    {}\n  got:\n    {}",
                        if expected.is_empty() {
                            "(none)".to_string()
                        } else {
                            expected.join("\n    ")
                        },
                        if got_lines.is_empty() {
                            "(none)".to_string()
                        } else {
                            got_lines.join("\n    ")
                        },
                    ));
                }
            }
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}\n");
    }
    if cases.len() < 200 {
        eprintln!("FAIL the golden suite shrank to {} cases", cases.len());
        failed += 1;
    }
    println!(
        "golden: {} cases over {} traces, {hint_checks} hint checks",
        cases.len(),
        traces.len()
    );
    println!("golden: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Compares expected lines (`t1: a b | k=v, k=v`) with the engine's results, values
/// typed (so `avg(duration)=20ms` must be a duration, `count()=2` an int).
fn matches(expected: &[String], got: &[String], got_values: &[Vec<(String, Value)>]) -> bool {
    if expected.len() != got.len() {
        return false;
    }
    expected
        .iter()
        .zip(got)
        .zip(got_values)
        .all(|((e, g), gv)| {
            let (e_spans, e_attrs) = e.split_once(" | ").unwrap_or((e.as_str(), ""));
            let g_spans = g.split_once(" | ").map_or(g.as_str(), |(s, _)| s);
            if e_spans.split_whitespace().ne(g_spans.split_whitespace()) {
                return false;
            }
            let mut want: Vec<(String, Value)> = Vec::new();
            let mut rest = e_attrs;
            while !rest.is_empty() {
                let (key_end, _) = rest.match_indices(")=").next().unwrap();
                let key = &rest[..=key_end];
                let after = &rest[key_end + 2..];
                let (val, next) = after.split_once(", ").unwrap_or((after, ""));
                want.push((key.to_string(), expected_value(val)));
                rest = next;
            }
            want.len() == gv.len()
                && want
                    .iter()
                    .zip(gv)
                    .all(|((wk, wv), (gk, gv))| wk == gk && same_value(wv, gv))
        })
}
