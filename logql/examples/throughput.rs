//! Measures engine throughput on synthetic in-memory logs:
//! `cargo run -p strata-logql --example throughput [lines]` (build with
//! optimisations for meaningful figures, e.g. `CARGO_PROFILE_DEV_OPT_LEVEL=3`).

use std::time::Instant;

use strata_logql::{Direction, Engine, Entry, Limits, MemorySource, Stream, parse};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let streams = 10;
    let per = n / streams;
    let levels = ["info", "warn", "error", "debug"];
    let mut data = Vec::new();
    let mut bytes = 0usize;
    for s in 0..streams {
        let mut entries = Vec::with_capacity(per);
        for i in 0..per {
            let line = if s % 2 == 0 {
                format!(
                    r#"{{"level":"{}","msg":"request {} done","status":{},"latency":"{}ms","user":{{"id":"u{}"}}}}"#,
                    levels[i % 4],
                    i,
                    [200, 200, 404, 500][i % 4],
                    i % 900,
                    i % 50
                )
            } else {
                format!(
                    "level={} msg=\"request {} done\" status={} latency={}ms user=u{}",
                    levels[i % 4],
                    i,
                    [200, 200, 404, 500][i % 4],
                    i % 900,
                    i % 50
                )
            };
            bytes += line.len();
            entries.push(Entry::new(i as i64 * 1_000_000, line));
        }
        data.push(Stream {
            labels: vec![
                ("app".into(), "bench".into()),
                (
                    "format".into(),
                    if s % 2 == 0 { "json" } else { "logfmt" }.into(),
                ),
                ("pod".into(), format!("pod-{s}")),
            ],
            entries,
        });
    }
    let src = MemorySource::new(data);
    let engine = Engine::new(Limits {
        max_bytes_scanned: u64::MAX,
        max_series: 100_000,
        timeout: None,
        ..Limits::default()
    });
    let end = per as i64 * 1_000_000;
    println!("{n} lines, {:.1} MB", bytes as f64 / 1e6);
    // (query, step in ms; 0 for log queries)
    let queries: [(&str, i64); 8] = [
        (r#"{app="bench"} |= "request 99""#, 0),
        (r#"{app="bench"} |~ "status.?.?500""#, 0),
        (r#"{format="json"} | json | status >= 500"#, 0),
        (
            r#"{format="logfmt"} | logfmt | level="error" | line_format "{{.msg}} {{.status}}""#,
            0,
        ),
        (
            r#"sum by (pod) (count_over_time({app="bench"} |= "error" [10s]))"#,
            10_000,
        ),
        (r#"sum by (pod) (bytes_rate({app="bench"}[10s]))"#, 100),
        (
            r#"sum by (level) (count_over_time({format="json"} | json [10s]))"#,
            10_000,
        ),
        (
            r#"quantile_over_time(0.99, {format="logfmt"} | logfmt | unwrap duration(latency) [10s]) by (pod)"#,
            10_000,
        ),
    ];
    // Warm up the allocator and caches with one untimed query.
    let warm = parse(queries[0].0).expect("query parses");
    let _ = engine.query_range(&src, &warm, 0, end, 0, None, 1000, Direction::Backward);
    for (q, step_ms) in queries {
        let expr = parse(q).expect("query parses");
        // The source select (a clone of the in-memory data) is timed too.
        let t = Instant::now();
        let step = step_ms * 1_000_000;
        let res = engine.query_range_with_stats(
            &src,
            &expr,
            0,
            end,
            step,
            None,
            1000,
            Direction::Backward,
        );
        let el = t.elapsed().as_secs_f64();
        match res {
            Ok((_, stats)) => println!(
                "{:>8.1} ms {:>7.2} M lines/s {:>7.1} MB/s  {q}",
                el * 1e3,
                stats.lines_processed as f64 / el / 1e6,
                stats.bytes_processed as f64 / el / 1e6
            ),
            Err(e) => println!("error {e}: {q}"),
        }
    }
}
