//! Decoded row ranges of data files, kept for the next query that reads them.
//!
//! Dashboards re-run the same panels every few seconds over mostly the same files, and a
//! small selection's cost is nearly all fixed per file: opening it, setting up a Parquet
//! reader (two zstd contexts per column chunk), decompressing and decoding whole pages to
//! keep a few hundred rows. The cache keeps the rows a small selection decoded, keyed by
//! the file, the exact row range and the columns read, so a repeat of the read (by the same
//! query or another one over the same series) copies them instead.
//!
//! Files are immutable and their ids are never reused (compaction writes new files with new
//! ids), so an entry never goes stale: entries of a file that compaction or retention
//! removed are simply never asked for again and age out. Memory is bounded by a byte
//! budget (`query.prometheus.sample_cache_bytes`); eviction is CLOCK (second chance) in
//! insertion order. Only small selections fill it (see `runs::small_scan`), so a broad
//! scan neither pays for copying its rows in nor pushes out the ranges dashboards repeat.

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use strata_storage::telemetry::{Counter, Gauge, Render};

/// Row ranges read from the cache, of all caches of the process.
pub static HITS: Counter = Counter::new(
    "strata_query_sample_cache_hits_total",
    "Decoded row ranges of data files that PromQL reads took from the sample cache.",
);
/// Files whose row ranges were looked up and not all found (then decoded).
pub static MISSES: Counter = Counter::new(
    "strata_query_sample_cache_misses_total",
    "Data files whose row ranges PromQL reads looked up in the sample cache and decoded, not all being cached.",
);
/// Bytes held by the caches.
pub static BYTES: Gauge = Gauge::new(
    "strata_query_sample_cache_bytes",
    "Bytes of decoded samples held by the PromQL sample cache.",
);
/// The sample cache's metrics, for `/metrics`.
pub static METRICS: &[&dyn Render] = &[&HITS, &MISSES, &BYTES];

/// Which columns a cached range holds besides `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Columns {
    /// `value` only (the file's wanted series have no histogram rows).
    Values,
    /// `value` and `histogram`.
    ValuesAndHistograms,
}

/// A decoded row range of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RangeKey {
    /// Catalog id of the file (never reused).
    pub file: u64,
    /// First row of the range in the file.
    pub first: u64,
    /// Rows in the range.
    pub rows: u64,
    pub columns: Columns,
}

struct Slot {
    batch: RecordBatch,
    bytes: usize,
    /// Read since the clock hand last passed it.
    referenced: bool,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<RangeKey, Slot>,
    /// Keys in clock order (oldest first); a key may appear once.
    clock: VecDeque<RangeKey>,
    bytes: usize,
}

/// Decoded row ranges, at most `budget` bytes of them.
pub struct SampleCache {
    budget: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Drop for SampleCache {
    fn drop(&mut self) {
        BYTES.add(-(self.inner.get_mut().bytes as i64));
    }
}

/// Bookkeeping counted per cached range besides its arrays (key, slot, clock entry).
const SLOT_OVERHEAD: usize = 128;

impl SampleCache {
    /// A cache of at most `budget` bytes; 0 keeps nothing.
    pub fn new(budget: usize) -> Self {
        SampleCache {
            budget,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether the cache keeps anything at all.
    pub(crate) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The rows of every one of `keys` (one file's ranges, read together or not at all),
    /// under one lock: counted as that many hits, or as one miss (nothing is marked read).
    pub(crate) fn get_all(&self, keys: &[RangeKey]) -> Option<Vec<RecordBatch>> {
        let mut inner = self.inner.lock();
        if !keys.iter().all(|k| inner.slots.contains_key(k)) {
            self.misses.fetch_add(1, Ordering::Relaxed);
            MISSES.add(1);
            return None;
        }
        let batches: Vec<RecordBatch> = keys
            .iter()
            .filter_map(|k| {
                let slot = inner.slots.get_mut(k)?;
                slot.referenced = true;
                Some(slot.batch.clone())
            })
            .collect();
        let n = batches.len() as u64;
        self.hits.fetch_add(n, Ordering::Relaxed);
        HITS.add(n);
        Some(batches)
    }

    /// The rows of `key`, when cached.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &RangeKey) -> Option<RecordBatch> {
        self.get_all(std::slice::from_ref(key))?.pop()
    }

    /// Whether `key` is cached (without counting a lookup or marking it read).
    pub(crate) fn contains(&self, key: &RangeKey) -> bool {
        self.inner.lock().slots.contains_key(key)
    }

    /// Ranges found and not found so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Keeps `batch` (the rows of `key`, compact: not a slice of a larger batch), evicting
    /// ranges not read lately to stay within the budget. A range larger than a quarter of
    /// the budget is not kept.
    pub(crate) fn insert(&self, key: RangeKey, batch: RecordBatch) {
        let bytes = batch.get_array_memory_size() + SLOT_OVERHEAD;
        if bytes > self.budget / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.slots.contains_key(&key) {
            return;
        }
        while inner.bytes + bytes > self.budget {
            let Some(old) = inner.clock.pop_front() else {
                break;
            };
            let second_chance = match inner.slots.get_mut(&old) {
                Some(s) if s.referenced => {
                    s.referenced = false;
                    true
                }
                _ => false,
            };
            if second_chance {
                inner.clock.push_back(old);
            } else if let Some(s) = inner.slots.remove(&old) {
                inner.bytes -= s.bytes;
                BYTES.add(-(s.bytes as i64));
            }
        }
        inner.bytes += bytes;
        BYTES.add(bytes as i64);
        inner.clock.push_back(key);
        inner.slots.insert(
            key,
            Slot {
                batch,
                bytes,
                referenced: false,
            },
        );
    }

    /// Bytes held (arrays and bookkeeping).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use std::sync::Arc;

    fn batch(rows: usize) -> RecordBatch {
        let col = Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>()));
        RecordBatch::try_from_iter([("timestamp", col as _)]).expect("batch")
    }

    fn key(file: u64, first: u64) -> RangeKey {
        RangeKey {
            file,
            first,
            rows: 100,
            columns: Columns::Values,
        }
    }

    #[test]
    fn a_cached_range_comes_back_under_its_exact_key_only() {
        let cache = SampleCache::new(1 << 20);
        cache.insert(key(1, 0), batch(100));
        assert_eq!(cache.get(&key(1, 0)).map(|b| b.num_rows()), Some(100));
        assert!(cache.get(&key(2, 0)).is_none(), "another file");
        assert!(cache.get(&key(1, 100)).is_none(), "another range");
        let other_columns = RangeKey {
            columns: Columns::ValuesAndHistograms,
            ..key(1, 0)
        };
        assert!(cache.get(&other_columns).is_none(), "other columns");
        let other_rows = RangeKey {
            rows: 99,
            ..key(1, 0)
        };
        assert!(cache.get(&other_rows).is_none(), "a shorter range");
    }

    #[test]
    fn the_budget_holds_and_ranges_read_since_the_last_pass_stay() {
        let one = batch(100).get_array_memory_size() + SLOT_OVERHEAD;
        let cache = SampleCache::new(one * 8);
        for i in 0..8 {
            cache.insert(key(1, i * 100), batch(100));
        }
        assert_eq!(cache.bytes(), one * 8);
        // Range 0 is read; the next two inserts evict ranges 1 and 2, not 0.
        assert!(cache.get(&key(1, 0)).is_some());
        cache.insert(key(2, 0), batch(100));
        cache.insert(key(2, 100), batch(100));
        assert!(cache.bytes() <= one * 8);
        assert!(cache.get(&key(1, 0)).is_some(), "read lately: kept");
        assert!(cache.get(&key(1, 100)).is_none(), "evicted first");
        assert!(cache.get(&key(1, 200)).is_none(), "evicted second");
        assert!(cache.get(&key(1, 300)).is_some());
        assert!(cache.get(&key(2, 100)).is_some());
    }

    #[test]
    fn a_zero_budget_or_an_outsized_range_keeps_nothing() {
        let off = SampleCache::new(0);
        assert!(!off.enabled());
        off.insert(key(1, 0), batch(100));
        assert!(off.get(&key(1, 0)).is_none());
        let small = SampleCache::new(4 * 1024);
        small.insert(key(1, 0), batch(10_000));
        assert!(small.get(&key(1, 0)).is_none());
        assert_eq!(small.bytes(), 0);
    }
}
