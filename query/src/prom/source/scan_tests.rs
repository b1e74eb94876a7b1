//! Series scans over a real data file: a file decoded in parts is prepared once and
//! shared by its parts, a panic outside the decoder (ours, or the consumer's) is a panic
//! rather than a "corrupt data file" error, file bounds are looked up once per file, and
//! errors name files relative to the data directory.

use super::runs::Run;
use super::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use strata_storage::StorageConfig;
use strata_storage::model::{Labels as StorageLabels, MetricsWrite, Sample, SampleValue};

/// 20 series `m{i="00".."19"}` with a sample a second for 1000 s, flushed to one file.
fn one_file() -> (tempfile::TempDir, Scanner) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .expect("open");
    let tenant = TenantId::default_tenant();
    let samples = (0..20)
        .flat_map(|i| {
            (0..1000).map(move |s| Sample {
                labels: StorageLabels::from_pairs([
                    ("__name__", "m".to_owned()),
                    ("i", format!("{i:02}")),
                ]),
                timestamp_ms: 3_600_000 + s * 1000,
                value: SampleValue::Float(s as f64),
                exemplars: vec![],
            })
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
    (dir, scanner)
}

/// The series ids of `m`, sorted.
fn ids(scanner: &Scanner) -> Vec<u64> {
    let source = StorageSource::new(
        scanner.clone(),
        SourceLimits {
            max_series: 100,
            max_samples: 1_000_000,
        },
    );
    let found = source
        .matching(&[Matcher::new(MatchKind::Equal, "__name__", "m").expect("matcher")])
        .expect("matching");
    let mut ids: Vec<u64> = found.iter().map(|f| f.0).collect();
    ids.sort_unstable();
    ids
}

/// A short span decodes inline; a long one (past `small_scan`) decodes the one file in
/// two parts on two threads.
const SPANS: [(i64, i64); 2] = [(3_600_000, 4_600_000), (0, 400 * 86_400_000)];

#[test]
fn a_file_decoded_in_parts_gives_each_series_its_rows_once_in_order() {
    let (_dir, scanner) = one_file();
    let ids = ids(&scanner);
    assert_eq!(ids.len(), 20);
    for span in SPANS {
        let snap = scanner.snapshot(span.0, span.1);
        assert_eq!(snap.files.len(), 1);
        let mut rows = vec![0usize; ids.len()];
        let mut last_series = None;
        let mut done = vec![false; ids.len()];
        let mut batches = 0;
        scanner
            .scan_series_in(
                &snap,
                &ids,
                span,
                &["value"],
                None,
                &|_| false,
                &mut |b, runs: &[Run]| {
                    batches += 1;
                    assert_eq!(runs.iter().map(|r| r.rows).sum::<usize>(), b.num_rows());
                    for r in runs {
                        let s = r.series.expect("a wanted series");
                        // A series' rows are one stretch of the file: once another
                        // series' rows came, it does not come back.
                        if last_series != Some(s) {
                            assert!(!done[s], "{span:?}: series {s} again");
                            if let Some(l) = last_series {
                                done[l] = true;
                            }
                            last_series = Some(s);
                        }
                        rows[s] += r.rows;
                    }
                    Ok(())
                },
            )
            .expect("scan");
        assert!(rows.iter().all(|&r| r == 1000), "{span:?}: {rows:?}");
        assert!(batches >= 1);
    }
}

#[test]
fn a_panic_outside_the_decoder_is_not_a_damaged_file() {
    let (_dir, scanner) = one_file();
    let ids = ids(&scanner);
    for span in SPANS {
        let snap = scanner.snapshot(span.0, span.1);
        let res = catch_unwind(AssertUnwindSafe(|| {
            scanner.scan_series_in(
                &snap,
                &ids,
                span,
                &["value"],
                None,
                &|_| false,
                &mut |_, _| panic!("a bug of the engine"),
            )
        }));
        // Not `Ok(Err(ScanError::Storage("... the decoder panicked ...")))`.
        let panic = res.expect_err("the consumer's panic unwinds");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"a bug of the engine"));
    }
}

#[test]
fn a_file_is_prepared_once_for_its_parts_and_let_go_after_the_last() {
    let (_dir, scanner) = one_file();
    let snap = scanner.snapshot(SPANS[0].0, SPANS[0].1);
    let path = snap.files_root.join(&snap.files[0].path);
    let ids = ids(&scanner);
    let slot: runs::Shared = parking_lot::Mutex::new((None, 3));
    let mut prepared = 0;
    let mut taken = Vec::new();
    for _ in 0..3 {
        let p = runs::take_shared(&slot, || {
            prepared += 1;
            scanner.prepare(&path, &ids, SPANS[0], &mut Vec::new(), None)
        })
        .expect("prepared");
        taken.push(p);
    }
    assert_eq!(prepared, 1);
    assert!(taken.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    // The slot let go of it: the parts hold the only references.
    assert!(slot.lock().0.is_none());
    assert_eq!(Arc::strong_count(&taken[0]), 3);
    // A failed preparation is each part's error, prepared once too.
    let slot: runs::Shared = parking_lot::Mutex::new((None, 2));
    let missing = snap.files_root.join("default/metrics/none/0.parquet");
    let mut tries = 0;
    for _ in 0..2 {
        let err = runs::take_shared(&slot, || {
            tries += 1;
            scanner.prepare(&missing, &ids, SPANS[0], &mut Vec::new(), None)
        })
        .err()
        .expect("no such file");
        let ScanError::Storage(m) = err else {
            panic!("{err:?}")
        };
        // Named relative to the data directory, not by the server's own path.
        assert!(
            m.starts_with("data file files/default/metrics/none/0.parquet: "),
            "{m}"
        );
    }
    assert_eq!(tries, 1);
}

#[test]
fn file_bounds_are_looked_up_once_per_file() {
    let (_dir, scanner) = one_file();
    let snap = scanner.snapshot(SPANS[0].0, SPANS[0].1);
    let first = file_bounds(&scanner, &snap);
    let second = file_bounds(&scanner, &snap);
    let (Some(a), Some(b)) = (&first[0], &second[0]) else {
        panic!("a metrics file in label order has bounds: {first:?}")
    };
    assert!(Arc::ptr_eq(a, b), "the second select reuses the first's");
    let want = |i: &str| Labels::from_pairs([("__name__", "m"), ("i", i)]);
    assert_eq!(a.0, want("00"));
    assert_eq!(a.1, want("19"));
}
