//! What a WAL record holds: one tenant's batch of rows for one signal (as an Arrow IPC
//! stream, the same columns the memtable keeps), or metric metadata (JSON).
//!
//! Layout: `[version: u8][kind: u8][tenant length: u16 LE][tenant][body]`. In version 2
//! a rows body is the IPC stream compressed with zstd: rows repeat their label sets and
//! attribute keys, which compress about tenfold, and the WAL is written (and fsynced)
//! for every acknowledged write, so its size is what write throughput pays for. Version
//! 1 (uncompressed IPC) records are still read.

use crate::model::{MetricMetadata, Signal};
use crate::tenant::TenantId;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

const VERSION: u8 = 2;
const VERSION_UNCOMPRESSED: u8 = 1;
/// zstd level for rows bodies: level 1 keeps the writer fast; higher levels gained
/// little on label-heavy rows.
const ZSTD_LEVEL: i32 = 1;

/// One decoded WAL entry.
#[derive(Debug)]
pub enum Entry {
    Rows {
        tenant: TenantId,
        signal: Signal,
        batch: RecordBatch,
    },
    Metadata {
        tenant: TenantId,
        metadata: Vec<MetricMetadata>,
    },
}

fn kind_of(signal: Signal) -> u8 {
    match signal {
        Signal::Metrics => 1,
        Signal::Logs => 2,
        Signal::Traces => 3,
    }
}

const KIND_METADATA: u8 = 10;

fn header(kind: u8, tenant: &TenantId) -> Vec<u8> {
    let t = tenant.as_str().as_bytes();
    let mut out = Vec::with_capacity(4 + t.len());
    out.push(VERSION);
    out.push(kind);
    // Tenant ids are at most 150 bytes, so this cannot truncate.
    out.extend_from_slice(&(t.len() as u16).to_le_bytes());
    out.extend_from_slice(t);
    out
}

/// Encodes a batch of rows.
pub fn encode_rows(
    tenant: &TenantId,
    signal: Signal,
    batch: &RecordBatch,
) -> crate::error::Result<Vec<u8>> {
    let mut ipc = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    {
        let mut w = StreamWriter::try_new(&mut ipc, &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
    }
    let out = header(kind_of(signal), tenant);
    let header_len = out.len() as u64;
    let mut out = std::io::Cursor::new(out);
    out.get_mut()
        .reserve(zstd::zstd_safe::compress_bound(ipc.len()));
    out.set_position(header_len);
    COMPRESSOR
        .with(|c| -> std::io::Result<usize> {
            let mut c = c.borrow_mut();
            let compressor = match c.as_mut() {
                Some(compressor) => compressor,
                None => c.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            };
            compressor.compress_to_buffer(&ipc, &mut out)
        })
        .map_err(|e| crate::error::Error::io("wal record (zstd)", e))?;
    let mut out = out.into_inner();
    // The record waits for its group commit: keep only its compressed size.
    out.shrink_to_fit();
    Ok(out)
}

thread_local! {
    /// One zstd context per thread that encodes WAL records: creating one per record
    /// allocated and cleared MiBs of tables on every write.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Encodes metric metadata.
pub fn encode_metadata(
    tenant: &TenantId,
    metadata: &[MetricMetadata],
) -> crate::error::Result<Vec<u8>> {
    let mut out = header(KIND_METADATA, tenant);
    serde_json::to_writer(&mut out, metadata)?;
    Ok(out)
}

/// Decodes an entry; `None` for anything malformed (replay counts and skips it).
pub fn decode(payload: &[u8]) -> Option<Entry> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION && version != VERSION_UNCOMPRESSED {
        return None;
    }
    let (&kind, rest) = rest.split_first()?;
    let len = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let tenant = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
    let tenant = TenantId::new(tenant).ok()?;
    let body = rest.get(2 + len..)?;
    let signal = match kind {
        1 => Signal::Metrics,
        2 => Signal::Logs,
        3 => Signal::Traces,
        KIND_METADATA => {
            let metadata = serde_json::from_slice(body).ok()?;
            return Some(Entry::Metadata { tenant, metadata });
        }
        _ => return None,
    };
    let ipc;
    let body = if version == VERSION {
        ipc = zstd::stream::decode_all(body).ok()?;
        ipc.as_slice()
    } else {
        body
    };
    let mut reader = StreamReader::try_new(body, None).ok()?;
    let batch = reader.next()?.ok()?;
    if batch.schema() != crate::schema::schema(signal) {
        return None;
    }
    Some(Entry::Rows {
        tenant,
        signal,
        batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Sample, SampleValue};

    #[test]
    fn rows_round_trip() {
        let tenant = TenantId::new("t1").expect("tenant");
        let batch = crate::schema::metrics_batch(&[Sample {
            labels: Labels::from_pairs([("__name__", "up")]),
            timestamp_ms: 5,
            value: SampleValue::Float(1.0),
            exemplars: vec![],
        }])
        .expect("batch");
        let bytes = encode_rows(&tenant, Signal::Metrics, &batch).expect("encode");
        match decode(&bytes) {
            Some(Entry::Rows {
                tenant: t,
                signal,
                batch: b,
            }) => {
                assert_eq!(t, tenant);
                assert_eq!(signal, Signal::Metrics);
                assert_eq!(b, batch);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn label_heavy_batch(rows: usize) -> RecordBatch {
        let samples: Vec<Sample> = (0..rows)
            .map(|i| Sample {
                labels: Labels::from_pairs([
                    ("__name__", "http_requests_total".to_string()),
                    ("job", "checkout".to_string()),
                    ("instance", format!("10.0.0.{}:8080", i % 50)),
                    ("method", "GET".to_string()),
                    ("route", "/api/v1/orders/{id}".to_string()),
                ]),
                timestamp_ms: 1_700_000_000_000 + i as i64 * 15_000,
                value: SampleValue::Float(i as f64),
                exemplars: vec![],
            })
            .collect();
        crate::schema::metrics_batch(&samples).expect("batch")
    }

    #[test]
    fn uncompressed_version_1_records_still_decode() {
        let tenant = TenantId::new("t1").expect("tenant");
        let batch = label_heavy_batch(10);
        let mut v1 = header(kind_of(Signal::Metrics), &tenant);
        v1[0] = VERSION_UNCOMPRESSED;
        {
            let mut w = StreamWriter::try_new(&mut v1, &batch.schema()).expect("writer");
            w.write(&batch).expect("write");
            w.finish().expect("finish");
        }
        match decode(&v1) {
            Some(Entry::Rows { batch: b, .. }) => assert_eq!(b, batch),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rows_bodies_are_compressed() {
        let tenant = TenantId::new("t1").expect("tenant");
        let batch = label_heavy_batch(1000);
        let mut ipc = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut ipc, &batch.schema()).expect("writer");
            w.write(&batch).expect("write");
            w.finish().expect("finish");
        }
        let record = encode_rows(&tenant, Signal::Metrics, &batch).expect("encode");
        // Repeated label sets must shrink several times over, or the WAL pays for them
        // on every acknowledged write.
        assert!(
            record.len() * 4 < ipc.len(),
            "record {} bytes vs uncompressed IPC {} bytes",
            record.len(),
            ipc.len()
        );
    }

    #[test]
    fn garbage_decodes_to_none() {
        assert!(decode(b"").is_none());
        assert!(decode(&[1, 1, 200, 0, b'x']).is_none());
        assert!(decode(&[1, 1, 1, 0, b'x', 0, 0, 0]).is_none());
        assert!(decode(&[2, 1, 1, 0, b'x', 0x28, 0xb5, 0x2f, 0xfd]).is_none());
    }
}
