//! Golden tests: every `tests/golden/*.json` file holds cases (a query, its
//! parameters and the expected Loki `data.result` or error) run against an
//! input log file from `tests/golden/inputs/`. Expected results were worked
//! out by hand from Loki's documented semantics.
//!
//! Case fields: `name`, `query`, `kind` (`range`|`instant`, default range),
//! `start`/`end`/`step`/`time`/`interval` in seconds (defaults 0/100/10/100),
//! `limit` (100), `direction` (`backward`), `categorize` (false),
//! `max_entries`/`max_series`/`max_bytes` limits, and either `expect`
//! (the `result` array/scalar) with optional `resultType`, or `error`
//! (`status`, optional `line`, `col`, `contains`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use strata_logql::{
    Direction, Engine, Entry, Error, Limits, LogSource, MemorySource, Selection, SourceError,
    Stream, parse,
};

/// The same streams handed over the way a storage source streams them: one entry per
/// chunk, the streams' chunks interleaved. Every case must give the same answer as with
/// whole streams (metric queries aggregate chunk by chunk).
struct Chunked<'a>(&'a MemorySource);

impl LogSource for Chunked<'_> {
    fn select(&self, sel: &Selection<'_>) -> Result<Vec<Stream>, SourceError> {
        self.0.select(sel)
    }

    fn select_chunks(
        &self,
        sel: &Selection<'_>,
        f: &mut dyn FnMut(Stream) -> bool,
    ) -> Result<(), SourceError> {
        let streams = self.0.select(sel)?;
        let longest = streams.iter().map(|s| s.entries.len()).max().unwrap_or(0);
        for i in 0..longest {
            for s in &streams {
                if let Some(e) = s.entries.get(i) {
                    let chunk = Stream {
                        labels: s.labels.clone(),
                        entries: vec![e.clone()],
                    };
                    if !f(chunk) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

fn secs_to_ns(v: &Value) -> i64 {
    match v {
        Value::Number(n) => (n.as_f64().unwrap() * 1e9).round() as i64,
        Value::String(s) => s.parse().expect("ns string"),
        other => panic!("bad time {other}"),
    }
}

fn load_input(path: &Path) -> MemorySource {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut streams: BTreeMap<Vec<(String, String)>, Vec<Entry>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with("//") {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
        let mut labels: Vec<(String, String)> = v["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let metadata: Vec<(String, String)> = v
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let e =
            Entry::new(secs_to_ns(&v["ts"]), v["line"].as_str().unwrap()).with_metadata(metadata);
        streams.entry(labels).or_default().push(e);
    }
    MemorySource::new(
        streams
            .into_iter()
            .map(|(labels, entries)| Stream { labels, entries })
            .collect(),
    )
}

fn run_case(src: &MemorySource, c: &Value) -> Result<(), String> {
    let query = c["query"].as_str().ok_or("missing query")?;
    run_query(src, c, query)?;
    run_query(&Chunked(src), c, query).map_err(|e| format!("from a chunked source: {e}"))?;
    // Printing a parsed query gives LogQL that parses back to the same query
    // and evaluates to the same result.
    if let Ok(expr) = parse(query) {
        let printed = expr.to_string();
        let again = parse(&printed)
            .map_err(|e| format!("printed query {printed:?} does not parse: {e}"))?;
        if again.to_string() != printed {
            return Err(format!("printing is not stable: {printed:?} -> {again}"));
        }
        run_query(src, c, &printed).map_err(|e| format!("printed as {printed:?}: {e}"))?;
    }
    Ok(())
}

fn run_query(src: &dyn LogSource, c: &Value, query: &str) -> Result<(), String> {
    let mut limits = Limits::default();
    if let Some(n) = c.get("max_entries").and_then(Value::as_u64) {
        limits.max_entries = n as usize;
    }
    if let Some(n) = c.get("max_series").and_then(Value::as_u64) {
        limits.max_series = n as usize;
    }
    if let Some(n) = c.get("max_bytes").and_then(Value::as_u64) {
        limits.max_bytes_scanned = n;
    }
    let engine = Engine::new(limits);
    let limit = c.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
    let direction = match c.get("direction").and_then(Value::as_str) {
        Some(d) => Direction::parse(d).ok_or("bad direction")?,
        None => Direction::Backward,
    };
    let kind = c.get("kind").and_then(Value::as_str).unwrap_or("range");
    let outcome = parse(query).map_err(Error::from).and_then(|expr| {
        if kind == "instant" {
            let t = c.get("time").map(secs_to_ns).unwrap_or(100_000_000_000);
            engine.query_instant_with_stats(src, &expr, t, limit, direction)
        } else {
            let start = c.get("start").map(secs_to_ns).unwrap_or(0);
            let end = c.get("end").map(secs_to_ns).unwrap_or(100_000_000_000);
            let step = c.get("step").map(secs_to_ns).unwrap_or(10_000_000_000);
            let interval = c.get("interval").map(secs_to_ns);
            engine.query_range_with_stats(src, &expr, start, end, step, interval, limit, direction)
        }
    });
    match (outcome, c.get("error")) {
        (Ok((res, stats)), None) => {
            let categorize = c
                .get("categorize")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let data = res.to_loki_json_opts(&stats, categorize);
            let want = c.get("expect").ok_or("case has neither expect nor error")?;
            if &data["result"] != want {
                return Err(format!(
                    "result differs\n  want: {}\n  got:  {}",
                    serde_json::to_string(want).unwrap(),
                    serde_json::to_string(&data["result"]).unwrap()
                ));
            }
            if let Some(rt) = c.get("resultType")
                && &data["resultType"] != rt
            {
                return Err(format!("resultType {} != {}", data["resultType"], rt));
            }
            Ok(())
        }
        (Ok((res, stats)), Some(_)) => Err(format!(
            "expected an error, got {}",
            serde_json::to_string(&res.to_loki_json(&stats)["result"]).unwrap()
        )),
        (Err(e), None) => Err(format!("unexpected error: {e}")),
        (Err(e), Some(want)) => {
            let msg = e.to_string();
            if let Some(st) = want.get("status").and_then(Value::as_u64)
                && u64::from(e.http_status()) != st
            {
                return Err(format!("status {} != {st} ({msg})", e.http_status()));
            }
            if let Some(s) = want.get("contains").and_then(Value::as_str)
                && !msg.contains(s)
            {
                return Err(format!("error {msg:?} does not contain {s:?}"));
            }
            for key in ["line", "col"] {
                if let Some(n) = want.get(key).and_then(Value::as_u64) {
                    let Error::Parse(p) = &e else {
                        return Err(format!("expected a parse error with {key}, got {msg}"));
                    };
                    let got = if key == "line" { p.line } else { p.col };
                    if got as u64 != n {
                        return Err(format!("{key} {got} != {n} ({msg})"));
                    }
                }
            }
            Ok(())
        }
    }
}

#[test]
fn golden() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files");
    let mut failures = Vec::new();
    let (mut total, mut passed) = (0, 0);
    for f in &files {
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let input = spec["input"].as_str().expect("input");
        let src = load_input(&dir.join("inputs").join(input));
        let cases = spec["cases"].as_array().expect("cases");
        let mut ok = 0;
        for c in cases {
            let name = c["name"].as_str().unwrap_or("?");
            match run_case(&src, c) {
                Ok(()) => ok += 1,
                Err(e) => failures.push(format!(
                    "{} / {name}\n  query: {}\n  {e}",
                    f.file_name().unwrap().to_string_lossy(),
                    c["query"]
                )),
            }
        }
        println!(
            "{:<28} {ok}/{} passed",
            f.file_name().unwrap().to_string_lossy(),
            cases.len()
        );
        total += cases.len();
        passed += ok;
    }
    println!("golden: {passed}/{total} cases passed");
    for f in &failures {
        println!("FAIL {f}\n");
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed",
        failures.len()
    );
}
