//! Side-by-side check against a real Prometheus: the same data goes to Prometheus (remote
//! write) and to Strata (half flushed to Parquet, half in memtables), then a broad set of
//! instant and range queries must agree within 1e-6 relative tolerance.
//!
//! Needs `prometheus` on PATH (the Debian package ships 2.42). Without it the test says it
//! was skipped, unless `STRATA_REQUIRE_PROMETHEUS=1`, which makes its absence a failure.
//!
//! Prometheus 2.x closes range and lookback windows on the left where Strata (Prometheus 3
//! semantics) leaves them open; samples sit 7 s off the evaluation grid so no window edge
//! ever meets a sample and the two semantics agree. Likewise the subquery's range is not a
//! multiple of its step, so no subquery step falls on its window's left edge.

use super::{post_form, qs};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_query::prom::{PromApiConfig, router};
use strata_storage::model::{
    BucketSpan, Labels, MetricsWrite, NativeHistogram, Sample, SampleValue, stale_marker,
};
use strata_storage::{Storage, StorageConfig, TenantId};

const STEPS: i64 = 80;
const INTERVAL: i64 = 15_000;
const OFFSET: i64 = 7_000;

#[derive(Clone)]
enum Point {
    Float(f64),
    /// Integer native histogram, schema 0: zero count, buckets -1..=2 (absolute counts).
    Hist {
        zero: u64,
        buckets: [u64; 4],
        sum: f64,
    },
}

struct Series {
    labels: Vec<(String, String)>,
    points: Vec<(i64, Point)>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn series(pairs: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    Series {
        labels,
        points: Vec::new(),
    }
}

fn dataset(t0: i64) -> Vec<Series> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ts = |i: i64| t0 + OFFSET + i * INTERVAL;
    let mut out = Vec::new();
    for k in 0..6 {
        let (inst, job) = (format!("i{k}"), format!("j{}", k % 2));
        let mut s = series(&[
            ("__name__", "cmp_gauge"),
            ("instance", &inst),
            ("job", &job),
        ]);
        let mut v = k as f64 - 2.5;
        for i in 0..STEPS {
            v += rng.unit() * 2.0 - 1.0;
            s.points.push((ts(i), Point::Float(v)));
        }
        out.push(s);
    }
    for (code, job) in [("200", "j0"), ("500", "j0"), ("200", "j1")] {
        let mut s = series(&[
            ("__name__", "cmp_requests_total"),
            ("code", code),
            ("job", job),
        ]);
        let mut v = 0.0;
        for i in 0..STEPS {
            v += rng.below(20) as f64;
            if code == "500" && i == 50 {
                v = 3.0;
            }
            s.points.push((ts(i), Point::Float(v)));
        }
        out.push(s);
    }
    let bounds = ["0.05", "0.1", "0.5", "1", "+Inf"];
    for job in ["j0", "j1"] {
        let mut cum = [0.0f64; 5];
        let (mut sum, mut count) = (0.0, 0.0);
        let mut buckets: Vec<Series> = bounds
            .iter()
            .map(|le| {
                series(&[
                    ("__name__", "cmp_latency_seconds_bucket"),
                    ("job", job),
                    ("le", le),
                ])
            })
            .collect();
        let mut sum_s = series(&[("__name__", "cmp_latency_seconds_sum"), ("job", job)]);
        let mut count_s = series(&[("__name__", "cmp_latency_seconds_count"), ("job", job)]);
        for i in 0..STEPS {
            for _ in 0..rng.below(6) {
                let obs = rng.unit() * 1.5;
                let first = [0.05, 0.1, 0.5, 1.0]
                    .iter()
                    .position(|b| obs <= *b)
                    .unwrap_or(4);
                for c in cum.iter_mut().skip(first) {
                    *c += 1.0;
                }
                sum += obs;
                count += 1.0;
            }
            for (b, s) in buckets.iter_mut().enumerate() {
                s.points.push((ts(i), Point::Float(cum[b])));
            }
            sum_s.points.push((ts(i), Point::Float(sum)));
            count_s.points.push((ts(i), Point::Float(count)));
        }
        out.extend(buckets);
        out.push(sum_s);
        out.push(count_s);
    }
    let mut flappy = series(&[("__name__", "cmp_flappy"), ("job", "j0")]);
    for i in 0..STEPS {
        if !(25..45).contains(&i) {
            flappy.points.push((ts(i), Point::Float(i as f64)));
        } else if i == 25 {
            flappy.points.push((ts(i), Point::Float(stale_marker())));
        }
    }
    out.push(flappy);
    for job in ["j0", "j1"] {
        let mut s = series(&[("__name__", "cmp_native_seconds"), ("job", job)]);
        let (mut zero, mut buckets, mut sum) = (0u64, [0u64; 4], 0.0);
        for i in 0..STEPS {
            zero += rng.below(2);
            for b in buckets.iter_mut() {
                *b += rng.below(4);
            }
            sum += rng.unit() * 10.0;
            s.points.push((ts(i), Point::Hist { zero, buckets, sum }));
        }
        out.push(s);
    }
    out
}

// --- Remote write encoding (protobuf by hand, snappy block format) -----------------------

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn double_field(buf: &mut Vec<u8>, field: u32, v: f64) {
    key(buf, field, 1);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn uint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, 0);
    varint(buf, v);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn histogram_proto(t: i64, zero: u64, buckets: &[u64; 4], sum: f64) -> Vec<u8> {
    let mut h = Vec::new();
    let count = zero + buckets.iter().sum::<u64>();
    uint_field(&mut h, 1, count);
    double_field(&mut h, 3, sum);
    uint_field(&mut h, 4, zigzag(0));
    double_field(&mut h, 5, 0.001);
    uint_field(&mut h, 6, zero);
    let mut span = Vec::new();
    uint_field(&mut span, 1, zigzag(-1));
    uint_field(&mut span, 2, 4);
    bytes_field(&mut h, 11, &span);
    let mut deltas = Vec::new();
    let mut prev = 0i64;
    for b in buckets {
        let b = *b as i64;
        varint(&mut deltas, zigzag(b - prev));
        prev = b;
    }
    bytes_field(&mut h, 12, &deltas);
    uint_field(&mut h, 15, t as u64);
    h
}

fn write_request(data: &[Series]) -> Vec<u8> {
    let mut req = Vec::new();
    for s in data {
        let mut ts = Vec::new();
        for (k, v) in &s.labels {
            let mut l = Vec::new();
            bytes_field(&mut l, 1, k.as_bytes());
            bytes_field(&mut l, 2, v.as_bytes());
            bytes_field(&mut ts, 1, &l);
        }
        for (t, p) in &s.points {
            match p {
                Point::Float(v) => {
                    let mut sample = Vec::new();
                    double_field(&mut sample, 1, *v);
                    uint_field(&mut sample, 2, *t as u64);
                    bytes_field(&mut ts, 2, &sample);
                }
                Point::Hist { zero, buckets, sum } => {
                    bytes_field(&mut ts, 4, &histogram_proto(*t, *zero, buckets, *sum));
                }
            }
        }
        bytes_field(&mut req, 1, &ts);
    }
    req
}

fn strata_samples(data: &[Series], keep: impl Fn(i64) -> bool) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in data {
        let labels = Labels::from_pairs(s.labels.iter().cloned());
        for (t, p) in s.points.iter().filter(|(t, _)| keep(*t)) {
            let value = match p {
                Point::Float(v) => SampleValue::Float(*v),
                Point::Hist { zero, buckets, sum } => {
                    SampleValue::Histogram(Box::new(NativeHistogram {
                        schema: 0,
                        zero_threshold: 0.001,
                        zero_count: *zero as f64,
                        count: (*zero + buckets.iter().sum::<u64>()) as f64,
                        sum: *sum,
                        positive_spans: vec![BucketSpan {
                            offset: -1,
                            length: 4,
                        }],
                        positive_buckets: buckets.iter().map(|b| *b as f64).collect(),
                        negative_spans: Vec::new(),
                        negative_buckets: Vec::new(),
                        counter_reset_hint: 0,
                        custom_values: Vec::new(),
                    }))
                }
            };
            out.push(Sample {
                labels: labels.clone(),
                timestamp_ms: *t,
                value,
                exemplars: Vec::new(),
            });
        }
    }
    out
}

// --- A Prometheus process ----------------------------------------------------------------

fn find_prometheus() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

/// Raw HTTP/1.0 (the server closes the connection and sends no chunked encoding).
fn http(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {target} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = String::from_utf8_lossy(&resp[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, resp[split + 4..].to_vec()))
}

struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(bin: &PathBuf) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--enable-feature=native-histograms")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            addr,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http(&p.addr, "GET", "/-/ready", &[], b"") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (_, body) = http(
            &self.addr,
            "GET",
            &format!("{path}?{}", qs(params)),
            &[],
            b"",
        )
        .expect("prometheus request");
        serde_json::from_slice(&body).expect("prometheus JSON")
    }
}

// --- Comparison --------------------------------------------------------------------------

fn close(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
        return a == b;
    };
    let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) else {
        // "+Inf", "-Inf", "NaN" parse; anything else must match exactly.
        return a == b;
    };
    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-6 * x.abs().max(y.abs())
}

fn close_point(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return false;
    };
    if a.len() != 2 || b.len() != 2 || a[0] != b[0] {
        return false;
    }
    match (&a[1], &b[1]) {
        (Value::Object(x), Value::Object(y)) => {
            let buckets = |h: &serde_json::Map<String, Value>| {
                h.get("buckets")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let (bx, by) = (buckets(x), buckets(y));
            close(&x["count"], &y["count"])
                && close(&x["sum"], &y["sum"])
                && bx.len() == by.len()
                && bx.iter().zip(&by).all(|(p, q)| {
                    p[0] == q[0]
                        && close(&p[1], &q[1])
                        && close(&p[2], &q[2])
                        && close(&p[3], &q[3])
                })
        }
        (x, y) => close(x, y),
    }
}

/// Results keyed by their metric, for order-independent comparison.
fn by_metric(result: &Value) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = result
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| (e["metric"].to_string(), e.clone()))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn compare(ours: &Value, theirs: &Value) -> Result<(), String> {
    if theirs["status"] != "success" {
        return Err(format!("prometheus failed: {theirs}"));
    }
    if ours["status"] != "success" {
        return Err(format!("strata failed: {ours}"));
    }
    let (o, t) = (&ours["data"], &theirs["data"]);
    if o["resultType"] != t["resultType"] {
        return Err(format!(
            "result types differ: {} vs {}",
            o["resultType"], t["resultType"]
        ));
    }
    let ok = match t["resultType"].as_str() {
        Some("scalar") | Some("string") => close_point(&o["result"], &t["result"]),
        _ => {
            let (a, b) = (by_metric(&o["result"]), by_metric(&t["result"]));
            a.len() == b.len()
                && a.iter().zip(&b).all(|((ka, ea), (kb, eb))| {
                    ka == kb
                        && ["value", "histogram"]
                            .iter()
                            .all(|f| match (ea.get(*f), eb.get(*f)) {
                                (None, None) => true,
                                (Some(x), Some(y)) => close_point(x, y),
                                _ => false,
                            })
                        && ["values", "histograms"]
                            .iter()
                            .all(|f| match (ea.get(*f), eb.get(*f)) {
                                (None, None) => true,
                                (Some(Value::Array(x)), Some(Value::Array(y))) => {
                                    x.len() == y.len()
                                        && x.iter().zip(y).all(|(p, q)| close_point(p, q))
                                }
                                _ => false,
                            })
                })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "results differ:\n  strata:     {o}\n  prometheus: {t}"
        ))
    }
}

const QUERIES: &[&str] = &[
    "cmp_gauge",
    "cmp_gauge{job=\"j0\"}",
    "cmp_gauge{instance=~\"i[0-2]\"}",
    "cmp_gauge offset 1m",
    "sum(cmp_gauge)",
    "sum by (job) (cmp_gauge)",
    "avg without (instance) (cmp_gauge)",
    "max by (job) (cmp_gauge)",
    "min(cmp_gauge)",
    "count(cmp_gauge)",
    "stddev(cmp_gauge)",
    "topk(2, cmp_gauge)",
    "bottomk(2, cmp_gauge)",
    "quantile(0.9, cmp_gauge)",
    "count_values(\"v\", round(cmp_gauge))",
    "rate(cmp_requests_total[5m])",
    "irate(cmp_requests_total[5m])",
    "increase(cmp_requests_total[5m])",
    "sum by (code) (rate(cmp_requests_total[2m]))",
    "resets(cmp_requests_total[10m])",
    "delta(cmp_gauge[5m])",
    "idelta(cmp_gauge[5m])",
    "deriv(cmp_gauge[5m])",
    "predict_linear(cmp_gauge[5m], 600)",
    "avg_over_time(cmp_gauge[5m])",
    "max_over_time(cmp_gauge[3m])",
    "min_over_time(cmp_gauge[3m])",
    "sum_over_time(cmp_gauge[2m])",
    "quantile_over_time(0.5, cmp_gauge[5m])",
    "stddev_over_time(cmp_gauge[5m])",
    "changes(cmp_gauge[5m])",
    "count_over_time(cmp_flappy[5m])",
    "last_over_time(cmp_flappy[5m])",
    "cmp_flappy",
    "absent(cmp_flappy)",
    "absent(nonexistent_metric)",
    "histogram_quantile(0.9, sum by (le) (rate(cmp_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(cmp_latency_seconds_bucket[5m]))",
    "rate(cmp_latency_seconds_sum[5m]) / rate(cmp_latency_seconds_count[5m])",
    "cmp_gauge > 0",
    "cmp_gauge > bool 0",
    "cmp_gauge / ignoring(instance) group_left sum by (job) (cmp_gauge)",
    "cmp_gauge and on(job) (cmp_gauge > 1)",
    "cmp_gauge unless cmp_gauge{job=\"j1\"}",
    "abs(cmp_gauge)",
    "clamp(cmp_gauge, -1, 1)",
    "round(cmp_gauge, 0.1)",
    "exp(cmp_gauge / 10)",
    "label_replace(cmp_gauge, \"n\", \"$1\", \"instance\", \"i(.*)\")",
    "sort_desc(sum by (job) (cmp_gauge))",
    "vector(1) + 2",
    "time()",
    "scalar(sum(cmp_gauge))",
    "max_over_time(rate(cmp_requests_total[1m])[5m7s:30s])",
    "cmp_native_seconds",
    "sum(cmp_native_seconds)",
    "histogram_count(cmp_native_seconds)",
    "histogram_sum(cmp_native_seconds)",
    "histogram_count(rate(cmp_native_seconds[5m]))",
    "histogram_sum(rate(cmp_native_seconds[5m]))",
    "rate(cmp_native_seconds[5m])",
];

#[tokio::test]
async fn agrees_with_real_prometheus() {
    let Some(bin) = find_prometheus() else {
        if std::env::var("STRATA_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!(
                "STRATA_REQUIRE_PROMETHEUS=1 but no `prometheus` binary is on PATH; \
                 install it (apt-get install -y prometheus) to run the comparison"
            );
        }
        eprintln!(
            "skipped: no `prometheus` binary on PATH (set STRATA_REQUIRE_PROMETHEUS=1 to require it)"
        );
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let t0 = (now - 40 * 60_000) / 60_000 * 60_000;
    let data = dataset(t0);

    let prom = tokio::task::spawn_blocking(move || Prometheus::start(&bin))
        .await
        .expect("start");
    let body = snap::raw::Encoder::new()
        .compress_vec(&write_request(&data))
        .expect("snappy");
    let (status, resp) = http(
        &prom.addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    )
    .expect("remote write");
    assert!(
        (200..300).contains(&status),
        "remote write to prometheus failed ({status}): {}",
        String::from_utf8_lossy(&resp)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open storage");
    let tenant = TenantId::default_tenant();
    let mid = t0 + OFFSET + (STEPS / 2) * INTERVAL;
    for (part, keep) in [
        (0, Box::new(move |t| t < mid) as Box<dyn Fn(i64) -> bool>),
        (1, Box::new(move |t| t >= mid)),
    ] {
        let write = MetricsWrite {
            samples: strata_samples(&data, keep),
            metadata: Vec::new(),
        };
        storage.write_metrics(&tenant, write).await.expect("write");
        if part == 0 {
            storage.flush().await.expect("flush");
        }
    }
    let app = router(storage, PromApiConfig::default());

    let secs = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let instants: Vec<String> = [6, 10, 15, 19, 25]
        .iter()
        .map(|m| secs(t0 + m * 60_000 + 30_000))
        .collect();
    // Start late enough that no 5m window holds a series' first sample: Prometheus 3 clamps
    // counter extrapolation to the zero point after the threshold check, 2.x before it.
    let (start, end) = (secs(t0 + 6 * 60_000), secs(t0 + 22 * 60_000));
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut non_empty = 0;
    for q in QUERIES {
        let mut cases: Vec<(&str, Vec<(&str, &str)>)> = instants
            .iter()
            .map(|t| ("/api/v1/query", vec![("query", *q), ("time", t.as_str())]))
            .collect();
        cases.push((
            "/api/v1/query_range",
            vec![
                ("query", *q),
                ("start", &start),
                ("end", &end),
                ("step", "30s"),
            ],
        ));
        for (path, params) in cases {
            let theirs = prom.get(path, &params);
            let ours = post_form(&app, path, &params).await.1;
            checked += 1;
            if theirs["data"]["result"]
                .as_array()
                .is_none_or(|r| !r.is_empty())
            {
                non_empty += 1;
            }
            if let Err(e) = compare(&ours, &theirs) {
                failures.push(format!("{path} {params:?}: {e}"));
            }
        }
    }
    assert!(
        non_empty * 4 >= checked * 3,
        "only {non_empty} of {checked} Prometheus answers hold data: the data did not arrive"
    );
    // Keep the server's log for the report, then stop it.
    let log = prom.log_text();
    drop(prom);
    assert!(
        failures.is_empty(),
        "{} of {checked} queries differ from Prometheus:\n{}\n(prometheus log: {})",
        failures.len(),
        failures.join("\n"),
        log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    );
}
