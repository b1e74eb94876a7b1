//! The chunk read ahead of a chunked selection stops once the selection is dropped.

use super::*;
use strata_storage::StorageConfig;
use strata_storage::model::{Labels as StorageLabels, MetricsWrite, Sample, SampleValue};

#[test]
fn dropping_a_chunked_selection_stops_its_read_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open");
    let tenant = TenantId::default_tenant();
    let samples = (0..600)
        .map(|i| Sample {
            labels: StorageLabels::from_pairs([
                ("__name__", "up".to_owned()),
                ("i", format!("{i:04}")),
            ]),
            timestamp_ms: 1000,
            value: SampleValue::Float(1.0),
            exemplars: vec![],
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let write = MetricsWrite {
            samples,
            metadata: vec![],
        };
        storage.write_metrics(&tenant, write).await.expect("write");
        storage.flush().await.expect("flush");
    });
    let scanner = Scanner::new(storage, tenant, None, Arc::new(AtomicBool::new(false)));
    let source = StorageSource::new(
        scanner,
        SourceLimits {
            max_series: 10_000,
            max_samples: 1_000_000,
        },
    );
    let found = source
        .matching(&[Matcher::new(MatchKind::Equal, "__name__", "up").expect("matcher")])
        .expect("matching");
    assert_eq!(found.len(), 600);
    let mut chunks = StorageChunks::new(&source, found, 0, 100_000_000);
    // The first chunk comes back while a thread reads the next one ahead.
    let first = chunks.next_chunk().expect("read").expect("a chunk");
    assert!(!first.is_empty() && first.len() < 600, "{}", first.len());
    assert!(chunks.pending.is_some(), "the next chunk is read ahead");
    let read = Arc::clone(&chunks.read);
    assert!(
        read.read(0..10, 0).0.is_ok(),
        "reads while the selection lives"
    );
    // Dropped (an evaluation error, say): what reads for it stops at its next check.
    drop(chunks);
    assert_eq!(
        read.read(0..10, 0).0,
        Err(ScanError::Limit(Limit::Canceled))
    );
    // The query's own reads are not canceled.
    assert!(source.scanner.check().is_ok());
}
