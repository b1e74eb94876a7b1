//! Fast line generator for `benches/logs/run.py` (the Python generator managed ~3 MB/s).
//!
//! ```sh
//! cargo run --release -p strata-ingest --example loki_bench_lines -- \
//!     --gb 10 --start-ns <unix ns> --bodies bodies.bin --summary summary.json > raw.txt
//! ```
//!
//! Writes the raw lines (each ending in `\n`) to stdout, for `zstd -3` to measure, and the
//! Loki push bodies to `--bodies`: each record is a 4-byte little-endian length and a
//! snappy-compressed (block format) `logproto.PushRequest` of about 1 MB of lines, streams
//! labelled `{service_name, level}`. `--summary` gets a JSON object: lines, raw bytes,
//! requests and the rare ids (one every 200,000 lines).
//!
//! The data is the mix `run.py` documents: half JSON lines, half plain text; 8 services,
//! info-heavy severities, a 32-hex trace id in a third of the lines, spread over about one
//! hour from `--start-ns`. Deterministic for a seed.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

const SERVICES: [&str; 8] = [
    "checkout", "cart", "frontend", "payments", "search", "auth", "shipping", "email",
];
const MSGS: [&str; 5] = [
    "request served",
    "cache miss",
    "db query done",
    "retrying upstream",
    "error talking to upstream",
];
const HOUR_NS: f64 = 3600e9;

/// splitmix64: small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// 20 severity slots as in run.py: 14 info, 3 debug, 2 warn, 1 error.
fn level(r: u64) -> &'static str {
    match r {
        0..=13 => "info",
        14..=16 => "debug",
        17..=18 => "warn",
        _ => "error",
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

struct Args {
    gb: f64,
    seed: u64,
    start_ns: i64,
    bodies: String,
    summary: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        gb: 0.2,
        seed: 7,
        start_ns: 0,
        bodies: String::new(),
        summary: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{k} {v}: {e}");
        match k.as_str() {
            "--gb" => a.gb = v.parse().map_err(|e| bad(&e))?,
            "--seed" => a.seed = v.parse().map_err(|e| bad(&e))?,
            "--start-ns" => a.start_ns = v.parse().map_err(|e| bad(&e))?,
            "--bodies" => a.bodies = v,
            "--summary" => a.summary = v,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.bodies.is_empty() || a.summary.is_empty() || a.start_ns <= 0 {
        return Err("--bodies, --summary and --start-ns are required".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loki_bench_lines: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let a = args()?;
    let io = |e: std::io::Error| e.to_string();
    let mut raw_out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut bodies =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(&a.bodies).map_err(io)?);
    let mut rng = Rng(a.seed);
    let target = (a.gb * 1e9) as u64;
    // Lines average ~230 bytes: spread the target over about an hour.
    let per_line_ns = HOUR_NS / (target as f64 / 230.0).max(1.0);
    let mut raw = 0u64;
    let mut i = 0u64;
    let mut requests = 0u64;
    let mut needles: Vec<String> = Vec::new();
    // Per stream (service x level): the encoded entries of the current request.
    let mut streams: Vec<Vec<u8>> = vec![Vec::new(); SERVICES.len() * 4];
    let mut order: Vec<usize> = Vec::new();
    let mut line = String::with_capacity(512);
    let mut req = Vec::with_capacity(2 << 20);
    let mut snappy = snap::raw::Encoder::new();
    let mut compressed = Vec::new();
    while raw < target {
        let mut chunk = 0u64;
        while chunk < 1_000_000 && raw + chunk < target {
            let si = rng.below(SERVICES.len() as u64) as usize;
            let service = SERVICES[si];
            let lr = rng.below(20);
            let lvl = level(lr);
            let li = match lvl {
                "info" => 0,
                "debug" => 1,
                "warn" => 2,
                _ => 3,
            };
            let ts = a.start_ns + (i as f64 * per_line_ns) as i64;
            let rare = (i % 200_000 == 100_000).then(|| {
                let id = format!("rare-{:016x}", rng.next());
                needles.push(id.clone());
                format!("payment declined ref={id}")
            });
            let user = rng.below(5000);
            let p = rng.below(6);
            let pnum = rng.below(100_000);
            let status = if lr <= 16 {
                200
            } else {
                [200, 404, 500, 502, 503][rng.below(5) as usize]
            };
            let dur = 1 + rng.below(899);
            let trace = (rng.below(100) < 33).then(|| (rng.next(), rng.next()));
            let msg = match &rare {
                Some(m) => m.as_str(),
                None => MSGS[rng.below(MSGS.len() as u64) as usize],
            };
            let path = match p {
                0 => "/api/cart".to_string(),
                1 => "/api/checkout".to_string(),
                2 => format!("/api/items/{pnum}"),
                3 => "/login".to_string(),
                4 => format!("/search?q={pnum}"),
                _ => "/static/app.js".to_string(),
            };
            line.clear();
            use std::fmt::Write as _;
            if i.is_multiple_of(2) {
                let _ = write!(
                    line,
                    r#"{{"ts":{},"level":"{lvl}","service":"{service}","msg":"{msg}","status":{status},"path":"{path}","user":"u{user}","duration_ms":{dur}"#,
                    ts / 1_000_000
                );
                if let Some((h, l)) = trace {
                    let _ = write!(line, r#","trace_id":"{h:016x}{l:016x}""#);
                }
                line.push('}');
            } else {
                let secs = ts.div_euclid(1_000_000_000);
                let (y, mo, d) = civil(secs.div_euclid(86_400));
                let sod = secs.rem_euclid(86_400);
                let _ = write!(
                    line,
                    "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z {} [{service}] {msg} method=GET path={path} status={status} user=u{user} took={dur}ms",
                    sod / 3600,
                    sod / 60 % 60,
                    sod % 60,
                    ts.div_euclid(1_000_000) % 1000,
                    lvl.to_ascii_uppercase()
                );
                if let Some((h, l)) = trace {
                    let _ = write!(line, " trace_id={h:016x}{l:016x}");
                }
            }
            raw_out.write_all(line.as_bytes()).map_err(io)?;
            raw_out.write_all(b"\n").map_err(io)?;
            // EntryAdapter { timestamp = 1 { seconds = 1, nanos = 2 }, line = 2 }
            let (s, n) = (
                ts.div_euclid(1_000_000_000) as u64,
                ts.rem_euclid(1_000_000_000) as u64,
            );
            let tlen = 1 + varint_len(s) + 1 + varint_len(n);
            let elen =
                1 + varint_len(tlen as u64) + tlen + 1 + varint_len(line.len() as u64) + line.len();
            let k = si * 4 + li;
            if streams[k].is_empty() {
                order.push(k);
            }
            let e = &mut streams[k];
            e.push(2 << 3 | 2);
            varint(e, elen as u64);
            e.push(1 << 3 | 2);
            varint(e, tlen as u64);
            e.push(1 << 3);
            varint(e, s);
            e.push(2 << 3);
            varint(e, n);
            e.push(2 << 3 | 2);
            varint(e, line.len() as u64);
            e.extend_from_slice(line.as_bytes());
            chunk += line.len() as u64 + 1;
            i += 1;
        }
        // PushRequest { streams = 1: StreamAdapter { labels = 1, entries = 2 } }
        req.clear();
        for k in order.drain(..) {
            let labels = format!(
                r#"{{service_name="{}", level="{}"}}"#,
                SERVICES[k / 4],
                ["info", "debug", "warn", "error"][k % 4]
            );
            let entries = std::mem::take(&mut streams[k]);
            let slen = 1 + varint_len(labels.len() as u64) + labels.len() + entries.len();
            req.push(1 << 3 | 2);
            varint(&mut req, slen as u64);
            req.push(1 << 3 | 2);
            varint(&mut req, labels.len() as u64);
            req.extend_from_slice(labels.as_bytes());
            req.extend_from_slice(&entries);
            streams[k] = entries;
            streams[k].clear();
        }
        compressed.resize(snap::raw::max_compress_len(req.len()), 0);
        let n = snappy
            .compress(&req, &mut compressed)
            .map_err(|e| e.to_string())?;
        bodies.write_all(&(n as u32).to_le_bytes()).map_err(io)?;
        bodies.write_all(&compressed[..n]).map_err(io)?;
        raw += chunk;
        requests += 1;
    }
    raw_out.flush().map_err(io)?;
    bodies.flush().map_err(io)?;
    let needles_json: Vec<String> = needles.iter().map(|n| format!("\"{n}\"")).collect();
    std::fs::write(
        &a.summary,
        format!(
            r#"{{"lines":{i},"raw_bytes":{raw},"requests":{requests},"start_ns":{},"needles":[{}]}}"#,
            a.start_ns,
            needles_json.join(",")
        ),
    )
    .map_err(io)?;
    Ok(())
}
