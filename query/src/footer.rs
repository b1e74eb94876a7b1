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
    series_directory: OnceLock<Option<Vec<DirectoryEntry>>>,
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
    pub fn series_directory(&self) -> Option<&[DirectoryEntry]> {
        self.series_directory
            .get_or_init(|| series_directory(self.meta.metadata().file_metadata()))
            .as_deref()
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
