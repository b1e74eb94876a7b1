//! CPU of decoding a Loki protobuf push into a `logs` batch (`loki_push::decode_batch`):
//! about 1 MB of realistic lines (8 streams, timestamps, a third with structured
//! metadata), snappy-compressed, decoded `--iterations` times (default 200).
//!
//! ```sh
//! cargo run --release -p strata-ingest --example loki_push_decode_bench -- 200
//! ```
//!
//! Prints the best and median time per request and the line throughput.

use std::time::Instant;
use strata_ingest::limits::Limits;
use strata_ingest::loki_push::{PushFormat, decode_batch};

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field(out: &mut Vec<u8>, num: u32, payload: &[u8]) {
    varint(out, u64::from(num) << 3 | 2);
    varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn body() -> (Vec<u8>, usize, usize) {
    let services = [
        "checkout", "cart", "frontend", "payments", "search", "auth", "shipping", "email",
    ];
    let mut req = Vec::new();
    let (mut lines, mut line_bytes) = (0, 0);
    for (si, svc) in services.iter().enumerate() {
        let mut stream = Vec::new();
        field(
            &mut stream,
            1,
            format!(r#"{{service_name="{svc}", level="info", env="prod"}}"#).as_bytes(),
        );
        for i in 0..1300u64 {
            let mut entry = Vec::new();
            let mut ts = Vec::new();
            varint(&mut ts, 8);
            varint(&mut ts, 1_700_000_000 + i);
            varint(&mut ts, 16);
            varint(&mut ts, (i * 7919) % 1_000_000_000);
            field(&mut entry, 1, &ts);
            let line = if i % 2 == 0 {
                format!(
                    r#"{{"level":"info","msg":"request served","path":"/api/{svc}/{i}","status":200,"duration_ms":{}}}"#,
                    (i * 13 + si as u64) % 997
                )
            } else {
                format!(
                    "GET /api/{svc}/items/{i} 200 {}ms user=u{} region=eu-west-1",
                    i % 300,
                    i % 5000
                )
            };
            lines += 1;
            line_bytes += line.len();
            field(&mut entry, 2, line.as_bytes());
            if i % 3 == 0 {
                let mut pair = Vec::new();
                field(&mut pair, 1, b"trace_id");
                field(&mut pair, 2, format!("{:032x}", i * 0x9E37_79B9).as_bytes());
                field(&mut entry, 3, &pair);
            }
            field(&mut stream, 2, &entry);
        }
        field(&mut req, 1, &stream);
    }
    (req, lines, line_bytes)
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let (raw, lines, line_bytes) = body();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy");
    let limits = Limits::default();
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let b = decode_batch(PushFormat::SnappyProtobuf, &compressed, &limits, 1).expect("decodes");
        let batch = b.finish().expect("batch");
        assert_eq!(batch.num_rows(), lines);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let (best, median) = (times[0], times[times.len() / 2]);
    println!(
        "{} bytes ({lines} lines, {line_bytes} line bytes): best {:.3} ms, median {:.3} ms, {:.0} MB/s of protobuf at the median",
        raw.len(),
        best * 1e3,
        median * 1e3,
        raw.len() as f64 / median / 1e6
    );
}
