//! Conformance runner: executes Prometheus's PromQL test scripts
//! (`shared/promql-testdata/*.test`) through the public engine API.
//!
//! Prints per-file pass/fail/skip counts. The test fails if a case fails
//! that is not listed in `tests/known_failures.txt`, or if a listed case
//! passes (so the list stays true). Set `PROMQL_UPDATE_KNOWN_FAILURES=1`
//! to rewrite the list from the current results.

mod nhcb;
mod run;
mod script;
mod series;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use strata_promql::{Engine, EngineOptions};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/promql-testdata");
const KNOWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/known_failures.txt");

fn engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(300),
        max_samples: 50_000_000,
        timeout: Duration::from_secs(100),
        max_points_per_series: 11_000,
    })
}

/// (file, line) -> reason
fn load_known() -> BTreeMap<(String, usize), String> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(KNOWN) else {
        return out;
    };
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut parts = l.splitn(3, ' ');
        let (Some(file), Some(line)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(line) = line.parse() else { continue };
        out.insert(
            (file.to_string(), line),
            parts.next().unwrap_or("").to_string(),
        );
    }
    out
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 160 {
        format!("{}...", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

#[test]
fn promql_conformance() {
    // PROMQL_TESTDATA overrides the location (e.g. from a git worktree that
    // is not next to `shared/`).
    let dir = std::env::var_os("PROMQL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DATA));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("test data directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let known = load_known();
    let only = std::env::var("PROMQL_TEST_FILE").ok();
    let mut not_passing: BTreeMap<(String, usize), String> = BTreeMap::new();
    let mut problems = Vec::new();
    let (mut tp, mut tf, mut ts) = (0, 0, 0);
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read test file");
        let cmds = script::parse(&text);
        let mut runner = run::Runner::new(engine());
        let results = runner.run(&cmds);
        let (mut p, mut fl, mut sk) = (0, 0, 0);
        for (line, o) in results {
            let key = (name.clone(), line);
            match o {
                run::Outcome::Pass => {
                    p += 1;
                    if known.contains_key(&key) {
                        problems.push(format!(
                            "{name}:{line} passes but is listed in known_failures.txt"
                        ));
                    }
                }
                run::Outcome::Fail(reason) => {
                    fl += 1;
                    if !known.contains_key(&key) {
                        problems.push(format!("{name}:{line} FAILED: {}", short(&reason)));
                    }
                    not_passing.insert(key, format!("fail: {}", short(&reason)));
                }
                run::Outcome::Skip(reason) => {
                    sk += 1;
                    if !known.contains_key(&key) {
                        problems.push(format!("{name}:{line} SKIPPED: {}", short(&reason)));
                    }
                    not_passing.insert(key, format!("skip: {}", short(&reason)));
                }
            }
        }
        println!("{name:28} passed {p:4}  failed {fl:4}  skipped {sk:4}");
        tp += p;
        tf += fl;
        ts += sk;
    }
    println!(
        "{:28} passed {tp:4}  failed {tf:4}  skipped {ts:4}",
        "TOTAL"
    );
    if std::env::var("PROMQL_UPDATE_KNOWN_FAILURES").is_ok() && only.is_none() {
        let mut out = String::from(
            "# PromQL conformance cases that do not pass yet: <file> <line of eval> <reason>.\n\
             # Maintained by tests/conformance (PROMQL_UPDATE_KNOWN_FAILURES=1 rewrites it).\n",
        );
        for ((f, l), r) in &not_passing {
            out.push_str(&format!("{f} {l} {r}\n"));
        }
        std::fs::write(KNOWN, out).expect("write known failures");
        return;
    }
    if !problems.is_empty() {
        for p in problems.iter().take(300) {
            println!("{p}");
        }
        panic!("{} conformance problems", problems.len());
    }
}
