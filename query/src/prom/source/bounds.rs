//! Per metrics file, the label sets of its first and last series: a selection whose
//! series all lie outside them does not open the file.
//!
//! The catalog names a file's first and last series by id
//! ([`strata_storage::catalog::FileMeta::series`]); their label sets come from the label
//! index. A data file never changes (a compacted file gets a new id) and a series' labels
//! are its identity, so a file's bounds are looked up once per process and kept by file
//! (data directory, file id), rather than rebuilt on every select.

use super::{Scanner, engine_labels};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use strata_promql::Labels;
use strata_storage::Snapshot;

/// A file's first and last series' label sets: the file holds no series outside them.
pub(super) type Bounds = Arc<(Labels, Labels)>;

/// Per file of a snapshot, its [`Bounds`] when known.
pub(super) type FileBounds = Vec<Option<Bounds>>;

/// Most files whose bounds are kept; past it the cache starts over (a few hundred bytes
/// a file).
const ENTRIES: usize = 16 * 1024;

/// Bounds by files root (one per data directory), then file id.
type Cache = HashMap<PathBuf, HashMap<u64, Bounds>>;

static BOUNDS: LazyLock<Mutex<(Cache, usize)>> = LazyLock::new(|| Mutex::new((HashMap::new(), 0)));

/// The bounds of each file of `snap` (`None` for a file whose catalog entry names no
/// series range, or whose series the index lacks).
pub(super) fn file_bounds(scanner: &Scanner, snap: &Snapshot) -> FileBounds {
    let mut out: FileBounds = Vec::with_capacity(snap.files.len());
    // Files with a series range not cached yet: (position in `out`, first id, last id).
    let mut missing: Vec<(usize, u64, u64)> = Vec::new();
    {
        let cache = BOUNDS.lock();
        let known = cache.0.get(&snap.files_root);
        for (i, f) in snap.files.iter().enumerate() {
            let cached = known.and_then(|k| k.get(&f.id)).cloned();
            if cached.is_none()
                && let Some((lo, hi)) = f.series
            {
                missing.push((i, lo, hi));
            }
            out.push(cached);
        }
    }
    if missing.is_empty() {
        return out;
    }
    let ids: Vec<u64> = missing.iter().flat_map(|&(_, a, b)| [a, b]).collect();
    let mut labels = scanner
        .storage()
        .labels_of_series(scanner.tenant(), &ids)
        .into_iter();
    let mut found: Vec<(u64, Bounds)> = Vec::with_capacity(missing.len());
    for &(i, _, _) in &missing {
        let (lo, hi) = (labels.next().flatten(), labels.next().flatten());
        // A series the index lacks is not remembered: it is looked up again next time.
        if let (Some(lo), Some(hi), Some(f), Some(slot)) =
            (lo, hi, snap.files.get(i), out.get_mut(i))
        {
            let b = Arc::new((engine_labels(&lo), engine_labels(&hi)));
            found.push((f.id, Arc::clone(&b)));
            *slot = Some(b);
        }
    }
    let mut cache = BOUNDS.lock();
    if cache.1 + found.len() > ENTRIES {
        *cache = (HashMap::new(), 0);
    }
    cache.1 += found.len();
    cache
        .0
        .entry(snap.files_root.clone())
        .or_default()
        .extend(found);
    out
}

/// Whether a file with `bounds` can hold none of `found` (sorted by labels).
pub(super) fn misses(bounds: Option<&(Labels, Labels)>, found: &[(u64, Labels)]) -> bool {
    bounds.is_some_and(|(lo, hi)| {
        let k = found.partition_point(|(_, l)| l < lo);
        found.get(k).is_none_or(|(_, l)| l > hi)
    })
}
