//! Fixed costs of small PromQL queries: runs a few small queries of the PromQL benchmark
//! (`benches/promql/run.py`) in a loop through the Prometheus API router (parameters,
//! engine, storage reads, JSON), in process, over a copy of a data directory that
//! benchmark loaded, and prints wall time per query (p50, p90, min) and the process's CPU
//! time per query.
//!
//! ```sh
//! # a copy: the storage takes the directory's lock and may flush into it
//! cp -r /tmp/pq/strata/data /tmp/small && rm -f /tmp/small/lock
//! cargo run --release -p strata-query --example small_queries -- /tmp/small <time s> [reps]
//! ```
//!
//! `<time s>` is the evaluation time (run.py's: `end_ms / 1000 - 8` of its `params.json`).
//! Queries alternate within each repetition, so caches are warm as in a tight loop, not
//! cold as in run.py (which alternates servers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::time::{Duration, Instant};
use strata_query::prom::{PromApiConfig, router};
use strata_storage::{Storage, StorageConfig};
use tower::ServiceExt;

const QUERIES: &[(&str, &str, &str)] = &[
    (
        "instant_avg_over_time",
        r#"avg_over_time(process_resident_memory_bytes{service="cart"}[1h])"#,
        "instant",
    ),
    (
        "instant_hq_classic",
        r#"histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{service="cart"}[5m])))"#,
        "instant",
    ),
    // Every instance's resident memory (621 series) over 30 minutes: past the inline
    // threshold, so the window's file holding them is decoded in two parts on two threads.
    (
        "instant_sum_30m",
        r#"sum(sum_over_time(process_resident_memory_bytes[30m]))"#,
        "instant",
    ),
    (
        "rate_one_instance",
        r#"rate(http_requests_total{service="checkout",instance="checkout-0003:8080"}[5m])"#,
        "range",
    ),
];

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The process's user + system CPU time.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    // After the command name: state, then fields 4.. of proc(5); utime and stime are
    // fields 14 and 15.
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| {
        f.get(n - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(14) + field(15);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("data dir");
    let time: f64 = args.get(2).expect("time (s)").parse().expect("time");
    let reps: usize = args.get(3).map_or(300, |r| r.parse().expect("reps"));
    let only: Option<&String> = args.get(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let storage = rt
        .block_on(async {
            Storage::open(StorageConfig {
                data_dir: dir.into(),
                ..StorageConfig::default()
            })
        })
        .expect("open");
    let app = router(storage, PromApiConfig::default());
    let uris: Vec<(&str, String)> = QUERIES
        .iter()
        .filter(|q| only.is_none_or(|o| o.split(',').any(|n| n == q.0)))
        .map(|&(name, q, kind)| {
            let uri = match kind {
                "instant" => format!("/api/v1/query?query={}&time={time}", urlencode(q)),
                _ => format!(
                    "/api/v1/query_range?query={}&start={}&end={time}&step=60",
                    urlencode(q),
                    time - 3.0 * 3600.0 + 15.0
                ),
            };
            (name, uri)
        })
        .collect();
    let run = |uri: &str| -> Duration {
        let t = Instant::now();
        rt.block_on(async {
            let resp = app
                .clone()
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
        });
        t.elapsed()
    };
    for (name, uri) in &uris {
        for _ in 0..20 {
            run(uri);
        }
        let mut times = Vec::with_capacity(reps);
        let cpu0 = cpu();
        for _ in 0..reps {
            times.push(run(uri));
        }
        let cpu_per = (cpu() - cpu0) / reps as u32;
        times.sort();
        let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
        println!(
            "{name:24} p50 {:>8.3?} p90 {:>8.3?} min {:>8.3?} cpu/query {:>8.3?}",
            pct(50),
            pct(90),
            times[0],
            cpu_per
        );
    }
}
