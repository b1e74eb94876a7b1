//! Footers of immutable Parquet data files, read once per process.
//!
//! A footer (schema, row-group statistics and the page index) costs a read and a parse of
//! tens to hundreds of kilobytes; a selective query touches a few pages, so without this
//! cache parsing footers would dominate it. Data files are never modified in place (a
//! compacted file gets a new id and path), so an entry can never go stale; entries of
//! deleted files just age out when the cache starts over.

use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::errors::{ParquetError, Result};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::parquet::file::statistics::Statistics;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};
use strata_storage::files::{DirectoryEntry, SeriesRuns, histogram_series};

/// Most footers kept; past it the cache starts over (files are few and footers small).
const ENTRIES: usize = 4096;

/// A data file's footer and what is derived from it once.
pub(crate) struct Footer {
    /// Schema, row-group statistics and page index.
    pub meta: ArrowReaderMetadata,
    /// The file's path, for logs.
    path: PathBuf,
    histogram_series: OnceLock<Option<Vec<u64>>>,
    series_directory: OnceLock<Option<SeriesDirectory>>,
    group_times: OnceLock<Vec<GroupTimes>>,
}

/// A metrics file's series directory: each series' row range, sorted by id.
pub(crate) struct SeriesDirectory {
    entries: Vec<DirectoryEntry>,
    /// Open-addressing table of each series' first entry (position + 1, 0 for an empty
    /// slot), at most half full: a lookup reads one or two slots and one entry. A binary
    /// search of the directory (a few MB per file, cold between queries) missed the cache
    /// on nearly every probe, and even one over every 8th id was 7% of a small query.
    slots: Vec<u32>,
    /// Whether some series has more than one entry (one per time slab of the file).
    slabbed: bool,
}

/// The table slot where a lookup of series `id` starts (`mask` = slots - 1): ids are
/// hashes of label sets, but tests and old data use small ones, so they are mixed first.
fn slot_of(id: u64, mask: usize) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

/// Wanted ids per directory entry above which a lookup walks the whole directory instead
/// of searching it per id (see [`SeriesDirectory::each_of`]).
const WALK_SHARE: usize = 16;

impl SeriesDirectory {
    pub(crate) fn new(entries: Vec<DirectoryEntry>) -> Self {
        let slabbed = entries.windows(2).any(|w| w[0].0 == w[1].0);
        // Entries beyond u32 positions (never written: files hold far fewer series) are
        // left out of the table and found by no lookup.
        let len = entries.len().min(u32::MAX as usize - 1);
        let size = (len * 2).max(2).next_power_of_two();
        let mut slots = vec![0u32; size];
        let mask = size - 1;
        for (pos, e) in entries.iter().enumerate().take(len) {
            if pos > 0 && entries.get(pos - 1).is_some_and(|p| p.0 == e.0) {
                continue;
            }
            let mut i = slot_of(e.0, mask);
            while slots.get(i).is_some_and(|&s| s != 0) {
                i = (i + 1) & mask;
            }
            if let Some(s) = slots.get_mut(i) {
                *s = pos as u32 + 1;
            }
        }
        SeriesDirectory {
            entries,
            slots,
            slabbed,
        }
    }

    /// Whether some series has more than one row range in the file.
    pub(crate) fn slabbed(&self) -> bool {
        self.slabbed
    }

    /// The entry of series `id`.
    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<&DirectoryEntry> {
        self.position(id).and_then(|p| self.entries.get(p))
    }

    /// Calls `f` with the position in `ids` (sorted) and each entry of each wanted series
    /// the file holds (one per time slab of the file), in id order. `hints` carries each
    /// id's first directory position from one file to the next (files of one period hold
    /// mostly the same series, so a hint usually hits with one probe); it is resized to
    /// `ids` when it does not match.
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
        if ids.len().saturating_mul(WALK_SHARE) >= self.entries.len() {
            // Many ids: one pass over both sorted lists, galloping over the entries between
            // two wanted ids (a selector's series are a small share of a file's).
            let entries = &self.entries[..];
            let mut pos = 0usize;
            for (k, &id) in ids.iter().enumerate() {
                if entries.get(pos).is_some_and(|x| x.0 < id) {
                    let mut step = 1usize;
                    while entries.get(pos + step).is_some_and(|x| x.0 < id) {
                        pos += step;
                        step *= 2;
                    }
                    // entries[pos] < id <= entries[pos + step] (or the end).
                    let hi = (pos + step + 1).min(entries.len());
                    pos += entries
                        .get(pos..hi)
                        .map_or(0, |part| part.partition_point(|x| x.0 < id));
                }
                while let Some(x) = entries.get(pos).filter(|x| x.0 == id) {
                    f(k, x);
                    pos += 1;
                }
            }
            return;
        }
        for ((k, &id), hint) in ids.iter().enumerate().zip(hints.iter_mut()) {
            let h = *hint as usize;
            let hit = self.entries.get(h).is_some_and(|x| x.0 == id)
                && (h == 0 || self.entries.get(h - 1).is_none_or(|x| x.0 != id));
            let pos = if hit { Some(h) } else { self.position(id) };
            let Some(pos) = pos else { continue };
            *hint = u32::try_from(pos).unwrap_or(u32::MAX);
            for x in self.entries.get(pos..).unwrap_or(&[]) {
                if x.0 != id {
                    break;
                }
                f(k, x);
            }
        }
    }

    /// The position of series `id`'s first entry.
    fn position(&self, id: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = slot_of(id, mask);
        loop {
            let pos = (*self.slots.get(i)? as usize).checked_sub(1)?;
            if self.entries.get(pos)?.0 == id {
                return Some(pos);
            }
            i = (i + 1) & mask;
        }
    }
}

/// A row group of a data file: its rows and the range of its `timestamp` statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupTimes {
    /// First row of the group in the file.
    pub first_row: u64,
    /// Rows in the group.
    pub rows: u64,
    /// Smallest and largest timestamp, `None` without statistics.
    pub min_max: Option<(i64, i64)>,
}

impl Footer {
    /// For metrics files: the sorted ids of the series with native-histogram rows, or
    /// `None` when the file does not say (written before the footer named them).
    pub fn histogram_series(&self) -> Option<&[u64]> {
        self.histogram_series
            .get_or_init(|| histogram_series(self.meta.metadata().file_metadata()))
            .as_deref()
    }

    /// Each row group's rows and timestamp range (a metrics file's time slabs are row
    /// groups of their own, see `strata_storage::files::TimeSlabs`).
    pub fn group_times(&self) -> &[GroupTimes] {
        self.group_times.get_or_init(|| {
            let meta = self.meta.metadata();
            let ts = meta
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|c| c.path().parts() == ["timestamp"]);
            let mut first_row = 0u64;
            meta.row_groups()
                .iter()
                .map(|rg| {
                    let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
                    let min_max = ts
                        .and_then(|i| rg.columns().get(i))
                        .and_then(|c| c.statistics())
                        .and_then(|s| match s {
                            Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
                            _ => None,
                        });
                    let g = GroupTimes {
                        first_row,
                        rows,
                        min_max,
                    };
                    first_row = first_row.saturating_add(rows);
                    g
                })
                .collect()
        })
    }

    /// For metrics files sorted by series rank: each series' row ranges, sorted by id.
    pub fn series_directory(&self) -> Option<&SeriesDirectory> {
        self.series_directory
            .get_or_init(|| {
                // A directory that does not cover the file's rows once would leave rows out
                // of answers, or hand rows to the wrong series: such a file is read like
                // one without a directory, by its `series_id` column.
                let meta = self.meta.metadata().file_metadata();
                match SeriesRuns::from_directory(meta) {
                    Ok(Some(runs)) => Some(SeriesDirectory::new(runs.into_directory())),
                    Ok(None) => None,
                    Err(fault) => {
                        tracing::warn!(
                            file = %self.path.display(),
                            %fault,
                            "a data file's series directory does not fit the file; \
                             reading its series_id column instead"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }
}

static FOOTERS: LazyLock<Mutex<HashMap<PathBuf, Arc<Footer>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The footer of the data file at `path` when an earlier read loaded it.
pub(crate) fn cached_footer(path: &Path) -> Option<Arc<Footer>> {
    FOOTERS.lock().get(path).cloned()
}

/// The footer, with its page index when the file has one, of the data file at `path`
/// (open as `file`).
pub(crate) fn footer(path: &Path, file: &File) -> Result<Arc<Footer>> {
    if let Some(m) = FOOTERS.lock().get(path) {
        return Ok(m.clone());
    }
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    // Decoding the footer and page index is the decoder's work on bytes from disk: a panic
    // in it is an error ([`crate::guard`]).
    let meta = crate::guard::guarded(
        || ArrowReaderMetadata::load(file, options),
        |e| ParquetError::General(e.to_string()),
    )?;
    let meta = Arc::new(Footer {
        meta,
        path: path.to_path_buf(),
        histogram_series: OnceLock::new(),
        series_directory: OnceLock::new(),
        group_times: OnceLock::new(),
    });
    let mut cache = FOOTERS.lock();
    if cache.len() >= ENTRIES {
        cache.clear();
    }
    cache.insert(path.to_path_buf(), meta.clone());
    Ok(meta)
}

/// How errors and logs name the data file at `path`: relative to the data directory
/// `data_dir` (`files/<tenant>/<signal>/<partition>/<id>.parquet`), so that a message
/// passed on never holds the server's own paths; a path outside it by its file name.
pub(crate) fn data_file_name(data_dir: &Path, path: &Path) -> String {
    match path.strip_prefix(data_dir) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
    }
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

    #[test]
    fn lookups_of_hashed_ids_find_every_series_and_no_other() {
        // Series ids are label-set hashes: spread over all of u64, some sharing low bits.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut ids: Vec<u64> = (0..5000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 10 == 0 { x & !0xFFFF_FFFF } else { x }
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let entries: Vec<DirectoryEntry> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u64 * 5, 5))
            .collect();
        let dir = SeriesDirectory::new(entries.clone());
        for e in &entries {
            assert_eq!(dir.get(e.0), Some(e));
            assert_eq!(
                dir.get(e.0.wrapping_add(1)).map(|f| f.0),
                ids.binary_search(&e.0.wrapping_add(1))
                    .ok()
                    .map(|_| e.0.wrapping_add(1))
            );
        }
        assert_eq!(SeriesDirectory::new(Vec::new()).get(7), None);
    }

    #[test]
    fn series_with_an_entry_per_time_slab_get_all_of_them() {
        // Ids 3, 10, 17, ...; every 5th has three entries (three slabs), every 7th two.
        let mut entries: Vec<DirectoryEntry> = Vec::new();
        let mut row = 0;
        for slab in 0..3u64 {
            for i in 0..2000u64 {
                if slab == 0
                    || (slab == 1 && (i % 5 == 0 || i % 7 == 0))
                    || (slab == 2 && i % 5 == 0)
                {
                    entries.push((i * 7 + 3, row, 4));
                    row += 4;
                }
            }
        }
        entries.sort_unstable();
        let dir = SeriesDirectory::new(entries.clone());
        for id in 0..14_100 {
            assert_eq!(dir.get(id), entries.iter().find(|e| e.0 == id), "{id}");
        }
        let mut hints = Vec::new();
        for ids in [
            vec![3, 10, 35, 13_996],
            vec![3, 10, 35, 13_996],
            vec![0, 38, 73, 13_999],
            (0..14_100).step_by(3).collect(),
            (0..14_100).step_by(701).collect(),
            (0..14_100).collect::<Vec<u64>>(),
        ] {
            let mut got = Vec::new();
            dir.each_of(&ids, &mut hints, |k, e| got.push((k, *e)));
            let want: Vec<_> = ids
                .iter()
                .enumerate()
                .flat_map(|(k, &id)| {
                    entries
                        .iter()
                        .filter(move |e| e.0 == id)
                        .map(move |e| (k, *e))
                })
                .collect();
            assert_eq!(got, want, "{} ids", ids.len());
        }
    }
}

/// A data file read by offset (`pread`): Parquet's reader for a [`File`] duplicates the
/// descriptor, seeks, reads and closes the duplicate for every page it fetches (four
/// system calls a page, a selective query fetches a few dozen pages); this reads each
/// page with one call and keeps no position, so readers may share it.
#[derive(Clone)]
pub(crate) struct DataFile {
    file: Arc<File>,
    len: Arc<OnceLock<u64>>,
}

impl DataFile {
    /// Opens the file at `path`.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        Ok(DataFile {
            file: Arc::new(File::open(path)?),
            len: Arc::new(OnceLock::new()),
        })
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl datafusion::parquet::file::reader::Length for DataFile {
    fn len(&self) -> u64 {
        *self
            .len
            .get_or_init(|| self.file.metadata().map_or(0, |m| m.len()))
    }
}

/// A [`Read`](std::io::Read) of a [`DataFile`] from an offset on.
pub(crate) struct DataFileRead {
    file: Arc<File>,
    pos: u64,
}

impl std::io::Read for DataFileRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl datafusion::parquet::file::reader::ChunkReader for DataFile {
    type T = std::io::BufReader<DataFileRead>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(std::io::BufReader::new(DataFileRead {
            file: self.file.clone(),
            pos: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<axum::body::Bytes> {
        // The length comes from the file's metadata: a damaged one must not size a buffer
        // past the file's end (an allocation failure aborts, no guard catches it).
        let len = datafusion::parquet::file::reader::Length::len(self);
        let end = start.checked_add(length as u64);
        if end.is_none_or(|end| end > len) {
            return Err(datafusion::parquet::errors::ParquetError::EOF(format!(
                "reading {length} bytes at {start} goes past the file's end ({len} bytes)"
            )));
        }
        let mut buffer = vec![0u8; length];
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut buffer, start).map_err(
            |e| {
                datafusion::parquet::errors::ParquetError::EOF(format!(
                    "reading {length} bytes at {start}: {e}"
                ))
            },
        )?;
        Ok(buffer.into())
    }
}

#[cfg(test)]
mod data_file_tests {
    use super::DataFile;
    use datafusion::parquet::file::reader::{ChunkReader, Length};
    use std::io::Read;

    #[test]
    fn reads_ranges_by_offset_and_rejects_reads_past_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        std::fs::write(&path, &data).expect("write");
        let f = DataFile::open(&path).expect("open");
        assert_eq!(f.len(), 10_000);
        // Reads at arbitrary offsets, in any order, do not disturb each other.
        let b = f.get_bytes(9_000, 1_000).expect("tail");
        assert_eq!(&b[..], &data[9_000..]);
        let a = f.get_bytes(3, 10).expect("head");
        assert_eq!(&a[..], &data[3..13]);
        let mut r = f.get_read(5_000).expect("reader");
        let mut mid = [0u8; 64];
        r.read_exact(&mut mid).expect("read");
        assert_eq!(&mid[..], &data[5_000..5_064]);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).expect("rest");
        assert_eq!(rest, &data[5_064..]);
        // A range past the end is an error, not a short buffer.
        assert!(f.get_bytes(9_990, 20).is_err());
        // A damaged length is refused before a buffer is sized by it.
        assert!(f.get_bytes(0, usize::MAX / 2).is_err());
        assert!(f.get_bytes(u64::MAX, 2).is_err());
    }
}
