//! The catalog: the list of Parquet files that make up the stored data.
//!
//! A file is visible to queries only once the catalog names it. The catalog is one JSON
//! document replaced atomically (write a temp file, fsync, rename, fsync the directory), so
//! a crash leaves either the old or the new version. It also records the WAL segment from
//! which replay must start: segments before it hold only data already in named files.

use crate::error::{Error, Result};
use crate::model::Signal;
use crate::tenant::TenantId;
use crate::wal::{SegmentSeq, sync_dir};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One Parquet file named by the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileMeta {
    pub id: u64,
    pub tenant: TenantId,
    pub signal: Signal,
    /// The unit of compaction: for logs and traces the UTC day the rows fall in,
    /// `YYYY-MM-DD`; for metrics the time window (`storage.metric_block_duration`) by its
    /// start, `YYYY-MM-DDTHHMM` (files of older versions name a day).
    pub partition: String,
    /// Path relative to the object store root.
    pub path: String,
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    pub rows: u64,
    pub bytes: u64,
    /// 0 for a flushed file; one more than its inputs' highest level for a compacted one.
    pub level: u32,
    /// Write order: of two files holding a row of one series and timestamp, the one with
    /// the higher `seq` was written later and wins. A flushed file's own id; a file split
    /// out of one file keeps that file's; a merge's outputs take their inputs' highest.
    /// Absent (catalogs of older versions) stands for the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For a metrics file in label order: its first and last series (by id), so a reader
    /// of some series knows, from their labels, whether the file may hold any of them.
    /// Files of one time window are split by series range: most hold none of a small
    /// selection's series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<(u64, u64)>,
}

impl FileMeta {
    /// The file's place in write order (see [`FileMeta::seq`]).
    pub fn write_seq(&self) -> u64 {
        self.seq.unwrap_or(self.id)
    }
}

/// The persisted catalog document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub version: u32,
    /// WAL replay starts at this segment.
    pub wal_replay_from: u64,
    pub next_file_id: u64,
    pub files: Vec<FileMeta>,
    /// Metric metadata per tenant, as of the last flush (newer metadata is in the WAL).
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, Vec<crate::model::MetricMetadata>>,
}

impl Catalog {
    pub const FILE_NAME: &'static str = "catalog.json";

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE_NAME)
    }

    /// Loads the catalog, or an empty one when none exists yet.
    pub fn load(data_dir: &Path) -> Result<Catalog> {
        let path = Self::path(data_dir);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| Error::CorruptCatalog { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog {
                version: 1,
                ..Catalog::default()
            }),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Writes the catalog atomically and durably.
    pub fn store(&self, data_dir: &Path) -> Result<()> {
        let path = Self::path(data_dir);
        let tmp = data_dir.join("catalog.json.tmp");
        let bytes = serde_json::to_vec(self)?;
        File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(data_dir)
    }

    pub fn replay_from(&self) -> SegmentSeq {
        SegmentSeq(self.wal_replay_from)
    }

    /// The files of one tenant and signal overlapping `[start_ns, end_ns]`, in write order.
    pub fn files_for(
        &self,
        tenant: &TenantId,
        signal: Signal,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<FileMeta> {
        let mut files: Vec<FileMeta> = self
            .files
            .iter()
            .filter(|f| {
                &f.tenant == tenant
                    && f.signal == signal
                    && f.max_time_ns >= start_ns
                    && f.min_time_ns <= end_ns
            })
            .cloned()
            .collect();
        // Stable: files of one seq (a split) keep their catalog order.
        files.sort_by_key(FileMeta::write_seq);
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Catalog::load(dir.path()).expect("load");
        assert!(c.files.is_empty());
        c.wal_replay_from = 7;
        c.files.push(FileMeta {
            id: 1,
            tenant: TenantId::default_tenant(),
            signal: Signal::Logs,
            partition: "2024-01-01".into(),
            path: "default/logs/2024-01-01/1.parquet".into(),
            min_time_ns: 1,
            max_time_ns: 2,
            rows: 3,
            bytes: 4,
            level: 0,
            seq: None,
            series: None,
        });
        c.store(dir.path()).expect("store");
        let back = Catalog::load(dir.path()).expect("load");
        assert_eq!(back.files, c.files);
        assert_eq!(back.replay_from(), SegmentSeq(7));
    }

    #[test]
    fn corrupt_catalog_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(Catalog::path(dir.path()), b"{not json").expect("write");
        assert!(matches!(
            Catalog::load(dir.path()),
            Err(Error::CorruptCatalog { .. })
        ));
    }
}
