//! Footers of immutable Parquet data files, read once per process.
//!
//! A footer (schema, row-group statistics and the page index) costs a read and a parse of
//! tens to hundreds of kilobytes; a selective query touches a few pages, so without this
//! cache parsing footers would dominate it. Data files are never modified in place (a
//! compacted file gets a new id and path), so an entry can never go stale; entries of
//! deleted files just age out when the cache starts over.

use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::errors::Result;
use datafusion::parquet::file::metadata::PageIndexPolicy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};
use strata_storage::files::{DirectoryEntry, histogram_series, series_directory};

/// Most footers kept; past it the cache starts over (files are few and footers small).
const ENTRIES: usize = 4096;

/// A data file's footer and what is derived from it once.
pub(crate) struct Footer {
    /// Schema, row-group statistics and page index.
    pub meta: ArrowReaderMetadata,
    histogram_series: OnceLock<Option<Vec<u64>>>,
    series_directory: OnceLock<Option<SeriesDirectory>>,
}

/// A metrics file's series directory: each series' row range, sorted by id.
pub(crate) struct SeriesDirectory {
    entries: Vec<DirectoryEntry>,
    /// Every [`SPARSE`]th entry's id: a binary search over these stays in cache, where
    /// one over the whole directory (a few MB per file) misses on nearly every probe.
    sparse: Vec<u64>,
}

/// Entries per sparse key of a [`SeriesDirectory`].
const SPARSE: usize = 64;

impl SeriesDirectory {
    pub(crate) fn new(entries: Vec<DirectoryEntry>) -> Self {
        let sparse = entries.iter().step_by(SPARSE).map(|e| e.0).collect();
        SeriesDirectory { entries, sparse }
    }

    /// The entry of series `id`.
    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<&DirectoryEntry> {
        self.position(id).and_then(|p| self.entries.get(p))
    }

    /// Calls `f` with the position in `ids` (sorted) and the entry of each wanted series
    /// the file holds, in id order. `hints` carries each id's directory position from one
    /// file to the next (files of one period hold mostly the same series, so a hint
    /// usually hits with one probe); it is resized to `ids` when it does not match.
    pub fn each_of(
        &self,
        ids: &[u64],
        hints: &mut Vec<u32>,
        mut f: impl FnMut(usize, &DirectoryEntry),
    ) {
        if hints.len() != ids.len() {
            hints.clear();
            hints.resize(ids.len(), u32::MAX);
        }
        if ids.len().saturating_mul(SPARSE / 4) >= self.entries.len() {
            // Many ids: one merge pass over both sorted lists.
            let mut e = self.entries.iter().peekable();
            for (k, &id) in ids.iter().enumerate() {
                while e.next_if(|x| x.0 < id).is_some() {}
                if let Some(x) = e.next_if(|x| x.0 == id) {
                    f(k, x);
                }
            }
            return;
        }
        for ((k, &id), hint) in ids.iter().enumerate().zip(hints.iter_mut()) {
            let pos = match self.entries.get(*hint as usize) {
                Some(x) if x.0 == id => Some(*hint as usize),
                _ => self.position(id),
            };
            if let Some(x) = pos.and_then(|p| self.entries.get(p)) {
                *hint = u32::try_from(pos.unwrap_or(0)).unwrap_or(u32::MAX);
                f(k, x);
            }
        }
    }

    /// The position of series `id`'s entry.
    fn position(&self, id: u64) -> Option<usize> {
        // The block whose first id is the last one <= `id`.
        let block = self.sparse.partition_point(|&k| k <= id).checked_sub(1)?;
        let lo = block * SPARSE;
        let part = self
            .entries
            .get(lo..(lo + SPARSE).min(self.entries.len()))?;
        part.binary_search_by_key(&id, |e| e.0).ok().map(|i| lo + i)
    }
}

impl Footer {
    /// For metrics files: the sorted ids of the series with native-histogram rows, or
    /// `None` when the file does not say (written before the footer named them).
    pub fn histogram_series(&self) -> Option<&[u64]> {
        self.histogram_series
            .get_or_init(|| histogram_series(self.meta.metadata().file_metadata()))
            .as_deref()
    }

    /// For metrics files sorted by series rank: each series' row range, sorted by id.
    pub fn series_directory(&self) -> Option<&SeriesDirectory> {
        self.series_directory
            .get_or_init(|| {
                series_directory(self.meta.metadata().file_metadata()).map(SeriesDirectory::new)
            })
            .as_ref()
    }
}

static FOOTERS: LazyLock<Mutex<HashMap<PathBuf, Arc<Footer>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The footer, with its page index when the file has one, of the data file at `path`
/// (open as `file`).
pub(crate) fn footer(path: &Path, file: &File) -> Result<Arc<Footer>> {
    if let Some(m) = FOOTERS.lock().get(path) {
        return Ok(m.clone());
    }
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let meta = Arc::new(Footer {
        meta: ArrowReaderMetadata::load(file, options)?,
        histogram_series: OnceLock::new(),
        series_directory: OnceLock::new(),
    });
    let mut cache = FOOTERS.lock();
    if cache.len() >= ENTRIES {
        cache.clear();
    }
    cache.insert(path.to_path_buf(), meta.clone());
    Ok(meta)
}

/// The leaf columns of `schema` whose top-level column `wanted` accepts: a projection
/// by root column name (a map column has several leaves).
pub(crate) fn leaves_where(
    schema: &datafusion::parquet::schema::types::SchemaDescriptor,
    wanted: impl Fn(&str) -> bool,
) -> Vec<usize> {
    (0..schema.num_columns())
        .filter(|&i| {
            schema
                .column(i)
                .path()
                .parts()
                .first()
                .is_some_and(|root| wanted(root))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_lookups_agree_with_a_linear_scan() {
        let entries: Vec<DirectoryEntry> = (0..1000u64).map(|i| (i * 7 + 3, i * 10, 10)).collect();
        let dir = SeriesDirectory::new(entries.clone());
        let find = |id: u64| entries.iter().find(|e| e.0 == id);
        for id in 0..7100 {
            assert_eq!(dir.get(id), find(id), "{id}");
        }
        // Few ids (sparse lookups) and many ids (merge) name the same entries.
        let mut hints = Vec::new();
        for ids in [
            vec![0, 3, 10, 11, 6996, 6997],
            vec![0, 3, 10, 11, 6996, 6997],
            vec![3, 17, 6996],
            (0..7100).step_by(3).collect(),
        ] {
            let mut got = Vec::new();
            dir.each_of(&ids, &mut hints, |k, e| got.push((k, *e)));
            let want: Vec<_> = ids
                .iter()
                .enumerate()
                .filter_map(|(k, &id)| find(id).map(|e| (k, *e)))
                .collect();
            assert_eq!(got, want);
        }
    }
}
