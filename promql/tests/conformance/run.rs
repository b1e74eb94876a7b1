//! Executes parsed test scripts against the engine and compares results
//! like Prometheus's `promqltest` (relative tolerance 1e-6, NaN == NaN,
//! order only when asked, annotations and failures as expected).
//!
//! One relaxation: the parser exposes no source positions, so annotation
//! messages carry none; expected messages are compared without their
//! trailing `(line:col)` position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr};
use strata_promql::histogram::FloatHistogram;
use strata_promql::model::{RawSample, Sample, SampleValue, Series, Value};
use strata_promql::{Engine, Labels, MemorySource, QueryResult, almost_equal};

use crate::nhcb::convert_classic;
use crate::script::{Cmd, Eval, MsgMatch};
use crate::series::SeqVal;

const EPS: f64 = 1e-6;

/// Outcome of one eval command.
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

pub struct Runner {
    engine: Engine,
    source: MemorySource,
    /// Last loaded sample per series, to continue counter reset hints.
    last: HashMap<Labels, RawSample>,
}

/// Sets counter reset hints like Prometheus's TSDB does when histograms
/// are appended: the first histogram of a run is "unknown", later ones are
/// "reset" or "not_reset"; gauge histograms and explicit hints stay.
fn tsdb_hints(mut prev: Option<RawSample>, mut samples: Vec<RawSample>) -> Vec<RawSample> {
    use strata_promql::histogram::CounterResetHint as H;
    for s in &mut samples {
        if let SampleValue::Histogram(h) = &s.value
            && h.counter_reset_hint == H::Unknown
            && !strata_promql::model::is_stale_nan(h.sum)
            && let Some(RawSample {
                value: SampleValue::Histogram(p),
                ..
            }) = &prev
            && !strata_promql::model::is_stale_nan(p.sum)
        {
            let mut nh = (**h).clone();
            // A detected reset starts a new chunk whose first sample reads
            // back as "unknown" (prometheus/prometheus#15346).
            nh.counter_reset_hint = if nh.detect_reset(p) {
                H::Unknown
            } else {
                H::NotCounterReset
            };
            s.value = SampleValue::Histogram(Arc::new(nh));
        }
        prev = Some(s.clone());
    }
    samples
}

impl Runner {
    pub fn new(engine: Engine) -> Self {
        Runner {
            engine,
            source: MemorySource::new(),
            last: HashMap::new(),
        }
    }

    /// Runs all commands; returns (line, outcome) for every eval.
    pub fn run(&mut self, cmds: &[Cmd]) -> Vec<(usize, Outcome)> {
        let mut out = Vec::new();
        let mut broken: Option<String> = None;
        for c in cmds {
            match c {
                Cmd::Clear => {
                    self.source.clear();
                    self.last.clear();
                    broken = None;
                }
                Cmd::Load {
                    gap,
                    with_nhcb,
                    series,
                } => self.load(*gap, *with_nhcb, series),
                Cmd::Unsupported {
                    line,
                    is_eval,
                    reason,
                } => {
                    if *is_eval {
                        out.push((*line, Outcome::Skip(reason.clone())));
                    } else {
                        broken = Some(format!("load at line {line} unsupported: {reason}"));
                    }
                }
                Cmd::Eval(ev) => {
                    if let Some(b) = &broken {
                        out.push((ev.line, Outcome::Skip(b.clone())));
                        continue;
                    }
                    let r =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.eval(ev)));
                    let o = match r {
                        Ok(Ok(())) => Outcome::Pass,
                        Ok(Err(e)) => Outcome::Fail(e),
                        Err(_) => Outcome::Fail("PANIC".into()),
                    };
                    out.push((ev.line, o));
                }
            }
        }
        out
    }

    fn load(&mut self, gap: i64, with_nhcb: bool, series: &[(Labels, Vec<SeqVal>)]) {
        let mut batch: Vec<(Labels, Vec<RawSample>)> = series
            .iter()
            .map(|(l, v)| (l.clone(), to_samples(gap, v)))
            .collect();
        if with_nhcb {
            batch.extend(convert_classic(gap, series));
        }
        for (labels, samples) in batch {
            let prev = self.last.get(&labels).cloned();
            let samples = tsdb_hints(prev, samples);
            if let Some(l) = samples.last() {
                self.last.insert(labels.clone(), l.clone());
            }
            self.source.add(labels, samples);
        }
    }

    fn eval(&self, ev: &Eval) -> Result<(), String> {
        if ev.is_range {
            let r =
                self.engine
                    .range_query(&self.source, &ev.expr, ev.start, ev.end, ev.step.max(1));
            return self.check(ev, &ev.expr, r, None);
        }
        let r = self.engine.instant_query(&self.source, &ev.expr, ev.at);
        self.check(ev, &ev.expr, r.clone(), Some(ev.at))?;
        if ev.expects.fail.is_some() {
            return Ok(());
        }
        self.range_mode_check(ev, &ev.expr, None, ev.at)?;
        // Re-run with @ set on every selector (step invariance).
        let Ok(mut expr) = strata_promql::parse(&ev.expr) else {
            return Ok(());
        };
        if !set_at(&mut expr, ev.at) {
            return Ok(());
        }
        let ts = ev.at;
        let times: Vec<i64> = if ts == 0 {
            vec![-1000, 0, 1000]
        } else {
            vec![-10 * ts, 0, ts / 5, ts, 10 * ts]
        };
        for t in times {
            let r = self.engine.instant_query_expr(&self.source, &expr, t);
            self.check(ev, &format!("{expr} (at {t})"), r, Some(t))
                .map_err(|e| format!("@-modifier variant at {t}: {e}"))?;
            self.range_mode_check(ev, &ev.expr, Some(&expr), t)
                .map_err(|e| format!("@-modifier variant at {t}: {e}"))?;
        }
        Ok(())
    }

    fn range_mode_check(
        &self,
        ev: &Eval,
        q: &str,
        expr: Option<&Expr>,
        t: i64,
    ) -> Result<(), String> {
        if ev.exclude_from_range || ev.expects.ordered {
            return Ok(());
        }
        let ctx_fn = regex::Regex::new(r"(start|end|range|step)\(\)").map_err(|e| e.to_string())?;
        if ctx_fn.is_match(q) {
            return Ok(());
        }
        let r = match expr {
            Some(e) => {
                self.engine
                    .range_query_expr(&self.source, e, t - 60_000, t + 60_000, 60_000)
            }
            None => self
                .engine
                .range_query(&self.source, q, t - 60_000, t + 60_000, 60_000),
        };
        let res = r.map_err(|e| format!("range mode error: {e}"))?;
        let Value::Matrix(m) = &res.value else {
            return Err("range mode did not return a matrix".into());
        };
        let mut vec = Vec::new();
        for s in m {
            if let Some(p) = s.floats.iter().find(|p| p.t == t) {
                vec.push(Sample {
                    metric: s.metric.clone(),
                    t,
                    f: p.f,
                    h: None,
                    drop_name: false,
                });
            }
            if let Some(p) = s.histograms.iter().find(|p| p.t == t) {
                vec.push(Sample {
                    metric: s.metric.clone(),
                    t,
                    f: 0.0,
                    h: Some(p.h.clone()),
                    drop_name: false,
                });
            }
        }
        let v = if ev.expect_scalar.is_some() {
            let f = vec.first().map(|s| s.f).unwrap_or(f64::NAN);
            Value::Scalar { t, v: f }
        } else {
            Value::Vector(vec)
        };
        compare(ev, &v, false).map_err(|e| format!("range mode: {e}"))
    }

    fn check(
        &self,
        ev: &Eval,
        q: &str,
        r: Result<QueryResult, strata_promql::Error>,
        _at: Option<i64>,
    ) -> Result<(), String> {
        let res = match r {
            Err(e) => {
                let Some(m) = &ev.expects.fail else {
                    return Err(format!("error evaluating {q:?}: {e}"));
                };
                let msg = e.to_string();
                return if msg_matches(m, &msg, false) {
                    Ok(())
                } else {
                    Err(format!("expected error matching {m:?}, got {msg:?}"))
                };
            }
            Ok(r) => r,
        };
        if ev.expects.fail.is_some() {
            return Err(format!("expected error evaluating {q:?} but got none"));
        }
        if std::env::var("PROMQL_DEBUG_LINE").ok() == Some(ev.line.to_string()) {
            println!(
                "DEBUG {q}: {:?} warnings={:?} infos={:?}",
                res.value, res.warnings, res.infos
            );
        }
        check_annos(
            &ev.expects.warn,
            ev.expects.no_warn,
            ev.expects.any_warn,
            &res.warnings,
            "warn",
        )?;
        check_annos(
            &ev.expects.info,
            ev.expects.no_info,
            ev.expects.any_info,
            &res.infos,
            "info",
        )?;
        compare(ev, &res.value, ev.expects.ordered)
    }
}

fn strip_position(s: &str) -> &str {
    let t = s.trim_end();
    if t.ends_with(')')
        && let Some(open) = t.rfind(" (")
    {
        let inner = &t[open + 2..t.len() - 1];
        if inner.split(':').count() == 2
            && inner
                .split(':')
                .all(|p| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())
        {
            return &t[..open];
        }
    }
    t
}

fn msg_matches(m: &MsgMatch, msg: &str, annotation: bool) -> bool {
    match m {
        MsgMatch::Any => true,
        MsgMatch::Exact(e) => e == msg || (annotation && strip_position(e) == msg),
        MsgMatch::Regex(r) => {
            if r.is_match(msg) {
                return true;
            }
            if !annotation {
                return false;
            }
            // Drop a trailing position pattern from the regex.
            let src = r.as_str();
            let cut = src
                .rfind(r" \(")
                .or_else(|| src.rfind(r"\("))
                .map(|i| &src[..i]);
            match cut.and_then(|c| regex::Regex::new(c).ok()) {
                Some(r2) => r2.is_match(msg),
                None => false,
            }
        }
    }
}

fn check_annos(
    expected: &[MsgMatch],
    none: bool,
    any: bool,
    actual: &[String],
    kind: &str,
) -> Result<(), String> {
    if any && actual.is_empty() {
        return Err(format!("expected {kind} annotations but got none"));
    }
    if none && !actual.is_empty() {
        return Err(format!("unexpected {kind} annotations: {actual:?}"));
    }
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {kind} annotations but none were found"));
    }
    for e in expected {
        if !actual.iter().any(|a| msg_matches(e, a, true)) {
            return Err(format!(
                "expected {kind} annotation {e:?} not found in {actual:?}"
            ));
        }
    }
    for a in actual {
        if !expected.iter().any(|e| msg_matches(e, a, true)) {
            return Err(format!("unexpected {kind} annotation {a:?}"));
        }
    }
    Ok(())
}

fn to_samples(gap: i64, vals: &[SeqVal]) -> Vec<RawSample> {
    let mut out = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        let t = i as i64 * gap;
        match v {
            SeqVal::Omitted => {}
            SeqVal::Float(f) => out.push(RawSample {
                t,
                value: SampleValue::Float(*f),
            }),
            SeqVal::Hist(h, _) => out.push(RawSample {
                t,
                value: SampleValue::Histogram(Arc::new(h.clone())),
            }),
        }
    }
    out
}

/// Sets `@ ts` on every selector/subquery without one (not inside a
/// subquery that has one). Returns false if the query must not be rewritten.
fn set_at(e: &mut Expr, ts: i64) -> bool {
    fn at_of(ts: i64) -> AtModifier {
        let t = if ts >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_millis(ts as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_millis(ts.unsigned_abs()))
        };
        AtModifier::At(t.unwrap_or(SystemTime::UNIX_EPOCH))
    }
    fn walk(e: &mut Expr, ts: i64, ok: &mut bool) {
        match e {
            Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = Some(at_of(ts)),
            Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = Some(at_of(ts)),
            Expr::Subquery(sq) => {
                if sq.at.is_some() {
                    check_unsafe(&sq.expr, ok);
                    return;
                }
                // Selectors inside a subquery with @ keep their own times.
                sq.at = Some(at_of(ts));
                check_unsafe(&sq.expr, ok);
            }
            Expr::Aggregate(a) => {
                if let Some(p) = a.param.as_mut() {
                    walk(p, ts, ok);
                }
                walk(&mut a.expr, ts, ok);
            }
            Expr::Unary(u) => walk(&mut u.expr, ts, ok),
            Expr::Binary(b) => {
                walk(&mut b.lhs, ts, ok);
                walk(&mut b.rhs, ts, ok);
            }
            Expr::Paren(p) => walk(&mut p.expr, ts, ok),
            Expr::Call(c) => {
                if strata_promql::AT_MODIFIER_UNSAFE.contains(&c.func.name) {
                    *ok = false;
                }
                for a in c.args.args.iter_mut() {
                    walk(a, ts, ok);
                }
            }
            _ => {}
        }
    }
    fn check_unsafe(e: &Expr, ok: &mut bool) {
        match e {
            Expr::Call(c) => {
                if strata_promql::AT_MODIFIER_UNSAFE.contains(&c.func.name) {
                    *ok = false;
                }
                c.args.args.iter().for_each(|a| check_unsafe(a, ok));
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    check_unsafe(p, ok);
                }
                check_unsafe(&a.expr, ok);
            }
            Expr::Unary(u) => check_unsafe(&u.expr, ok),
            Expr::Binary(b) => {
                check_unsafe(&b.lhs, ok);
                check_unsafe(&b.rhs, ok);
            }
            Expr::Paren(p) => check_unsafe(&p.expr, ok),
            Expr::Subquery(s) => check_unsafe(&s.expr, ok),
            _ => {}
        }
    }
    let mut ok = true;
    walk(e, ts, &mut ok);
    ok
}

fn compare_hist(exp: &FloatHistogram, act: &FloatHistogram, hint_set: bool) -> bool {
    let exp = exp.clone().compact();
    let act = act.clone().compact();
    if exp.schema != act.schema
        || !almost_equal(exp.count, act.count, EPS)
        || !almost_equal(exp.sum, act.sum, EPS)
    {
        return false;
    }
    if exp.uses_custom_buckets() && exp.custom_values != act.custom_values {
        return false;
    }
    if exp.zero_threshold != act.zero_threshold
        || !almost_equal(exp.zero_count, act.zero_count, EPS)
    {
        return false;
    }
    let eqb = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| almost_equal(*x, *y, EPS))
    };
    if exp.positive_spans != act.positive_spans
        || !eqb(&exp.positive_buckets, &act.positive_buckets)
    {
        return false;
    }
    if exp.negative_spans != act.negative_spans
        || !eqb(&exp.negative_buckets, &act.negative_buckets)
    {
        return false;
    }
    !hint_set || exp.counter_reset_hint == act.counter_reset_hint
}

fn compare(ev: &Eval, v: &Value, ordered: bool) -> Result<(), String> {
    let expected: HashMap<&Labels, (&Vec<SeqVal>, usize)> =
        ev.expected.iter().map(|(l, v, p)| (l, (v, *p))).collect();
    match v {
        Value::Matrix(m) => {
            if ordered {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if ev.expect_scalar.is_some() {
                return Err("expected scalar result, but got matrix".into());
            }
            for w in m.windows(2) {
                if w[0].metric > w[1].metric {
                    return Err("matrix results should always be sorted by labels".into());
                }
            }
            let mut seen = 0;
            for s in m {
                let Some((vals, _)) = expected.get(&s.metric) else {
                    return Err(format!(
                        "unexpected metric {} in result: {}",
                        s.metric,
                        fmt_series(s)
                    ));
                };
                seen += 1;
                compare_series(ev, s, vals)?;
            }
            if seen != expected.len() {
                let missing: Vec<String> = ev
                    .expected
                    .iter()
                    .filter(|(l, _, _)| !m.iter().any(|s| &s.metric == l))
                    .map(|(l, _, _)| l.to_string())
                    .collect();
                return Err(format!("expected metrics not found: {missing:?}"));
            }
        }
        Value::Vector(vec) => {
            if ev.expect_scalar.is_some() {
                return Err("expected scalar result, but got vector".into());
            }
            let mut seen = std::collections::HashSet::new();
            for (i, s) in vec.iter().enumerate() {
                let Some((vals, pos)) = expected.get(&s.metric) else {
                    return Err(format!(
                        "unexpected metric {} in result, has value {}",
                        s.metric,
                        s.h.as_ref()
                            .map(|h| h.to_string())
                            .unwrap_or(s.f.to_string())
                    ));
                };
                if ordered && *pos != i + 1 {
                    return Err(format!(
                        "expected metric {} at position {} but was at {}",
                        s.metric,
                        pos,
                        i + 1
                    ));
                }
                match (vals.first(), &s.h) {
                    (Some(SeqVal::Hist(eh, set)), Some(h)) => {
                        if !compare_hist(eh, h, *set) {
                            return Err(format!("expected {eh} for {} but got {h}", s.metric));
                        }
                    }
                    (Some(SeqVal::Hist(eh, _)), None) => {
                        return Err(format!(
                            "expected histogram {eh} for {} but got float {}",
                            s.metric, s.f
                        ));
                    }
                    (Some(SeqVal::Float(f)), None) => {
                        if !almost_equal(*f, s.f, EPS) {
                            return Err(format!("expected {f} for {} but got {}", s.metric, s.f));
                        }
                    }
                    (_, Some(h)) => {
                        return Err(format!(
                            "expected float for {} but got histogram {h}",
                            s.metric
                        ));
                    }
                    _ => return Err(format!("bad expectation for {}", s.metric)),
                }
                seen.insert(&s.metric);
            }
            if seen.len() != expected.len() {
                return Err(format!(
                    "expected metrics not found; got {} of {}",
                    seen.len(),
                    expected.len()
                ));
            }
        }
        Value::Scalar { v, .. } => {
            let Some(SeqVal::Float(e)) = &ev.expect_scalar else {
                return Err(format!(
                    "expected vector or matrix result, but got scalar {v}"
                ));
            };
            if !almost_equal(*e, *v, EPS) {
                return Err(format!("expected scalar {e} but got {v}"));
            }
        }
        Value::String { v, .. } => {
            if ev.expected_string.as_deref() != Some(v.as_str()) {
                return Err(format!(
                    "expected string {:?} but got {v:?}",
                    ev.expected_string
                ));
            }
        }
    }
    Ok(())
}

fn fmt_series(s: &Series) -> String {
    let f: Vec<String> = s
        .floats
        .iter()
        .map(|p| format!("{}@{}", p.f, p.t))
        .collect();
    let h: Vec<String> = s
        .histograms
        .iter()
        .map(|p| format!("{}@{}", p.h, p.t))
        .collect();
    format!("floats {f:?} histograms {h:?}")
}

fn compare_series(ev: &Eval, s: &Series, vals: &[SeqVal]) -> Result<(), String> {
    let mut ef = Vec::new();
    let mut eh = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        let t = ev.start + i as i64 * ev.step;
        if t > ev.end {
            return Err(format!(
                "expected {} points for {}, but query time range cannot return this many points",
                vals.len(),
                s.metric
            ));
        }
        match v {
            SeqVal::Omitted => {}
            SeqVal::Float(f) => ef.push((t, *f)),
            SeqVal::Hist(h, set) => eh.push((t, h, *set)),
        }
    }
    if ef.len() != s.floats.len() || eh.len() != s.histograms.len() {
        return Err(format!(
            "expected {} float points and {} histogram points for {}, but got {}",
            ef.len(),
            eh.len(),
            s.metric,
            fmt_series(s)
        ));
    }
    for ((t, f), p) in ef.iter().zip(&s.floats) {
        if *t != p.t || !almost_equal(*f, p.f, EPS) {
            return Err(format!(
                "expected {f}@{t} for {} but got {}",
                s.metric,
                fmt_series(s)
            ));
        }
    }
    for ((t, h, set), p) in eh.iter().zip(&s.histograms) {
        if *t != p.t || !compare_hist(h, &p.h, *set) {
            return Err(format!(
                "expected {h}@{t} for {} but got {}",
                s.metric,
                fmt_series(s)
            ));
        }
    }
    Ok(())
}
