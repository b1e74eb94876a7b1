//! Evaluation throughput on synthetic traces: best of five runs (or the count given after the query) per query, in CPU time
//! of the evaluating thread (wall time where /proc/thread-self/schedstat is missing).
//!
//! `cargo run --release -p strata-traceql --example eval_bench [query [runs]]`

use std::time::Instant;

use strata_traceql::{SpanData, SpanKind, StatusCode, TraceData, Value, evaluate, parse};

/// A trace of `n` spans: a tree with fan-out 4, five services, every 50th span an error.
fn trace(id: usize, n: usize) -> TraceData {
    let services = ["frontend", "checkout", "payment", "search", "users"];
    let spans = (0..n)
        .map(|i| SpanData {
            span_id: format!("{i:016x}"),
            parent_span_id: (i > 0).then(|| format!("{:016x}", (i - 1) / 4)),
            name: format!("op-{}", i % 37),
            kind: if i % 2 == 0 {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            status: if i % 50 == 49 {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            start_ns: i as i64 * 1_000,
            end_ns: i as i64 * 1_000 + (i as i64 % 100) * 1_000_000,
            service_name: services[i % services.len()].to_string(),
            attributes: vec![
                (
                    "http.method".into(),
                    Value::Str(if i % 3 == 0 { "GET" } else { "POST" }.into()),
                ),
                (
                    "http.status_code".into(),
                    Value::Int(200 + (i as i64 % 5) * 100),
                ),
                (
                    "http.route".into(),
                    Value::Str(format!("/api/v1/items/{}", i % 11)),
                ),
            ],
            resource_attributes: vec![(
                "service.name".into(),
                Value::Str(services[i % services.len()].to_string()),
            )],
            ..Default::default()
        })
        .collect();
    TraceData {
        trace_id: format!("{id:032x}"),
        spans,
    }
}

/// Nanoseconds this thread has been on a CPU (Linux), so that a busy shared machine
/// does not count against the engine; wall time elsewhere.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

const PASSES: usize = 10;

fn main() {
    let only: Option<String> = std::env::args().nth(1);
    let runs: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let queries = [
        "{ }",
        r#"{ resource.service.name = "payment" && span.http.status_code >= 500 }"#,
        r#"{ span.http.route =~ "/api/v1/items/1.*" }"#,
        "{ status = error } | count() > 2",
        r#"{ resource.service.name = "frontend" } >> { status = error }"#,
        r#"{ kind = server } ~ { kind = client }"#,
        "{ } | by(resource.service.name) | avg(duration) > 40ms",
    ];
    for (count, size) in [(10_000, 20), (200, 1_000), (20, 10_000)] {
        let traces: Vec<TraceData> = (0..count).map(|i| trace(i, size)).collect();
        let spans: usize = traces.iter().map(|t| t.spans.len()).sum();
        println!("{count} traces x {size} spans ({spans} spans)");
        for q in queries {
            if only.as_deref().is_some_and(|o| o != q) {
                continue;
            }
            let parsed = parse(q).expect("parses");
            let mut secs = f64::MAX;
            let mut matched = 0;
            for _ in 0..runs {
                let start = Instant::now();
                let cpu_start = cpu_ns();
                // several passes per timed run: the CPU clock ticks coarsely here
                for _ in 0..PASSES {
                    matched = traces
                        .iter()
                        .filter(|t| !evaluate(&parsed, t).is_empty())
                        .count();
                }
                let wall = start.elapsed().as_secs_f64();
                let run = match (cpu_start, cpu_ns()) {
                    (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
                    _ => wall,
                };
                secs = secs.min(run / PASSES as f64);
            }
            println!(
                "  {:>7.1} M spans/s  {:>6.1} ms  {matched:>5} matched  {q}",
                spans as f64 / secs / 1e6,
                secs * 1e3
            );
        }
    }
}
