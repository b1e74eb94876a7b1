//! Write-ahead log: checksummed records in numbered segment files, fsynced in groups.
//!
//! A record is `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`. One writer
//! thread owns the open segment: it takes every append waiting in its queue, writes them,
//! fsyncs once, and only then answers each caller (group commit). An fsync or write error
//! fails the WAL for good: later appends get [`Error::WalFailed`] rather than a false success.
//!
//! On open, segments are replayed in order. A bad record (short or checksum mismatch) ends
//! its segment: in the newest segment it is a torn tail and the file is cut there; in an
//! older one the rest of that segment is skipped and counted. Corruption never stops start-up.

use crate::error::{Error, Result};
use crate::telemetry;
use parking_lot::Mutex;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;

const HEADER_LEN: usize = 8;
/// Records larger than this are refused on write and treated as corruption on replay.
pub const MAX_RECORD_LEN: usize = 512 * 1024 * 1024;

/// Number of a WAL segment; increases by one at each rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentSeq(pub u64);

enum Command {
    Append {
        payload: Vec<u8>,
        done: oneshot::Sender<Result<()>>,
    },
    Rotate {
        done: oneshot::Sender<Result<SegmentSeq>>,
    },
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Intact records handed to the caller.
    pub records: u64,
    /// Records or tails dropped because they were torn or corrupt.
    pub dropped_records: u64,
    pub dropped_bytes: u64,
}

/// Handle to the write-ahead log. Cheap to clone.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::SyncSender<Command>,
    dir: PathBuf,
    failed: Arc<Mutex<Option<String>>>,
}

fn segment_path(dir: &Path, seq: SegmentSeq) -> PathBuf {
    dir.join(format!("{:020}.wal", seq.0))
}

fn list_segments(dir: &Path) -> Result<Vec<SegmentSeq>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(n) = stem.parse::<u64>()
        {
            out.push(SegmentSeq(n));
        }
    }
    out.sort();
    Ok(out)
}

/// fsyncs a directory so that a create, rename or delete in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Hands each intact record of one segment to `on_record`, in order. Returns how many there
/// were, the byte offset where the intact prefix ends and the file length (equal when the
/// segment is whole).
fn read_segment(path: &Path, on_record: &mut dyn FnMut(&[u8])) -> Result<(u64, u64, u64)> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| Error::io(path, e))?;
    let mut records = 0u64;
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + HEADER_LEN) else {
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD_LEN {
            break;
        }
        let Some(payload) = data.get(pos + HEADER_LEN..pos + HEADER_LEN + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        on_record(payload);
        records += 1;
        pos += HEADER_LEN + len;
    }
    Ok((records, pos as u64, data.len() as u64))
}

impl Wal {
    /// Opens the WAL in `dir`, handing every intact record of the segments numbered `from`
    /// or later to `on_record`, in order, one segment in memory at a time (older segments
    /// hold data already in catalogued files and are deleted). Appends go to a fresh segment.
    pub fn open(
        dir: &Path,
        from: SegmentSeq,
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<(Wal, Replay)> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let segments = list_segments(dir)?;
        let mut replay = Replay::default();
        let newest = segments.last().copied();
        for seq in &segments {
            let path = segment_path(dir, *seq);
            if *seq < from {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
            let (records, good_len, file_len) = read_segment(&path, &mut on_record)?;
            replay.records += records;
            if good_len < file_len {
                let lost = file_len - good_len;
                replay.dropped_records += 1;
                replay.dropped_bytes += lost;
                telemetry::WAL_CORRUPT_BYTES.add(lost);
                if Some(*seq) == newest {
                    tracing::warn!(segment = %path.display(), lost_bytes = lost, "cutting torn tail of the write-ahead log");
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| {
                            f.set_len(good_len)?;
                            f.sync_all()
                        })
                        .map_err(|e| Error::io(&path, e))?;
                } else {
                    tracing::error!(segment = %path.display(), lost_bytes = lost, "corrupt record in the write-ahead log: the rest of this segment is skipped");
                }
            }
        }
        let next = SegmentSeq(newest.map_or(from.0, |s| s.0 + 1).max(from.0));
        let file = create_segment(dir, next)?;
        let (tx, rx) = mpsc::sync_channel(4096);
        let failed = Arc::new(Mutex::new(None));
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            seq: next,
            failed: failed.clone(),
        };
        std::thread::Builder::new()
            .name("strata-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io(dir, e))?;
        Ok((
            Wal {
                tx,
                dir: dir.to_path_buf(),
                failed,
            },
            replay,
        ))
    }

    /// Appends one record; returns once it is fsynced.
    pub async fn append(&self, payload: Vec<u8>) -> Result<()> {
        if let Some(reason) = self.failed.lock().clone() {
            return Err(Error::WalFailed { reason });
        }
        if payload.len() > MAX_RECORD_LEN {
            return Err(Error::WalFailed {
                reason: format!("record of {} bytes is over the limit", payload.len()),
            });
        }
        let (done, rx) = oneshot::channel();
        let tx = self.tx.clone();
        // A full queue blocks the sender: do that off the reactor.
        tokio::task::spawn_blocking(move || tx.send(Command::Append { payload, done }))
            .await
            .map_err(|_| Error::ShuttingDown)?
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Closes the current segment and starts a new one; returns the new segment's number.
    /// Every record appended before this call is in an older segment.
    pub async fn rotate(&self) -> Result<SegmentSeq> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Rotate { done })
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Deletes the segments older than `seq` (their data is in catalogued files).
    pub fn remove_before(&self, seq: SegmentSeq) -> Result<()> {
        for s in list_segments(&self.dir)? {
            if s < seq {
                let path = segment_path(&self.dir, s);
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Total size of the WAL's segment files.
    pub fn disk_bytes(&self) -> u64 {
        list_segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| fs::metadata(segment_path(&self.dir, *s)).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn create_segment(dir: &Path, seq: SegmentSeq) -> Result<File> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

struct Writer {
    dir: PathBuf,
    file: File,
    seq: SegmentSeq,
    failed: Arc<Mutex<Option<String>>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut appends = Vec::new();
            let mut rotations = Vec::new();
            let mut next = Some(first);
            let mut batch_bytes = 0usize;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { payload, done } => {
                        batch_bytes += payload.len();
                        appends.push((payload, done));
                    }
                    Command::Rotate { done } => {
                        rotations.push(done);
                        // A rotation closes the group: later appends go to the new segment.
                        break;
                    }
                }
                if batch_bytes < 64 * 1024 * 1024 {
                    next = rx.try_recv().ok();
                }
            }
            let result = self.write_group(&appends);
            for (_, done) in appends {
                let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| Error::WalFailed {
                    reason: e.to_string(),
                }));
            }
            for done in rotations {
                let r = if let Some(reason) = self.failed.lock().clone() {
                    Err(Error::WalFailed { reason })
                } else {
                    self.rotate()
                };
                let _ = done.send(r);
            }
        }
    }

    fn write_group(&mut self, appends: &[(Vec<u8>, oneshot::Sender<Result<()>>)]) -> Result<()> {
        if let Some(reason) = self.failed.lock().clone() {
            return Err(Error::WalFailed { reason });
        }
        if appends.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(appends.iter().map(|(p, _)| p.len() + HEADER_LEN).sum());
        for (payload, _) in appends {
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buf.extend_from_slice(payload);
        }
        let started = Instant::now();
        let path = segment_path(&self.dir, self.seq);
        let res = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data());
        telemetry::WAL_FSYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        match res {
            Ok(()) => {
                telemetry::WAL_BYTES_WRITTEN.add(buf.len() as u64);
                telemetry::WAL_RECORDS_WRITTEN.add(appends.len() as u64);
                Ok(())
            }
            Err(e) => {
                // Never retry fsync: the page cache may have dropped the dirty pages.
                let reason = format!("write/fsync of {} failed: {e}", path.display());
                tracing::error!(%reason, "write-ahead log failed; refusing further writes");
                *self.failed.lock() = Some(reason.clone());
                telemetry::WAL_FAILED.set(1);
                Err(Error::WalFailed { reason })
            }
        }
    }

    fn rotate(&mut self) -> Result<SegmentSeq> {
        let next = SegmentSeq(self.seq.0 + 1);
        let file = create_segment(&self.dir, next)?;
        self.file = file;
        self.seq = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the WAL and collects the replayed records.
    fn open(dir: &Path, from: SegmentSeq) -> Result<(Wal, Replay, Vec<Vec<u8>>)> {
        let mut records = Vec::new();
        let (wal, replay) = Wal::open(dir, from, |r| records.push(r.to_vec()))?;
        Ok((wal, replay, records))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn appends_replay_in_order_across_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let (wal, _replay, records) = open(dir.path(), SegmentSeq(0)).expect("open");
            assert!(records.is_empty());
            wal.append(b"one".to_vec()).await.expect("append");
            wal.rotate().await.expect("rotate");
            wal.append(b"two".to_vec()).await.expect("append");
        });
        let (_wal, _replay, records) = open(dir.path(), SegmentSeq(0)).expect("reopen");
        assert_eq!(records, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn replay_skips_segments_before_the_flushed_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seq = rt().block_on(async {
            let (wal, _, _) = open(dir.path(), SegmentSeq(0)).expect("open");
            wal.append(b"flushed".to_vec()).await.expect("append");
            let seq = wal.rotate().await.expect("rotate");
            wal.append(b"pending".to_vec()).await.expect("append");
            seq
        });
        let (_wal, _replay, records) = open(dir.path(), seq).expect("reopen");
        assert_eq!(records, vec![b"pending".to_vec()]);
    }

    #[test]
    fn torn_tail_is_cut_and_later_appends_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let (wal, _, _) = open(dir.path(), SegmentSeq(0)).expect("open");
            wal.append(b"intact".to_vec()).await.expect("append");
            wal.append(b"torn-record".to_vec()).await.expect("append");
        });
        let seg = list_segments(dir.path()).expect("list")[0];
        let path = segment_path(dir.path(), seg);
        let len = fs::metadata(&path).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len - 3))
            .expect("truncate");
        let (wal, replay, records) = open(dir.path(), SegmentSeq(0)).expect("reopen");
        assert_eq!(records, vec![b"intact".to_vec()]);
        assert_eq!(replay.dropped_records, 1);
        rt().block_on(async { wal.append(b"after".to_vec()).await.expect("append") });
        drop(wal);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (_wal, _replay, records) = open(dir.path(), SegmentSeq(0)).expect("reopen");
        assert_eq!(records, vec![b"intact".to_vec(), b"after".to_vec()]);
    }

    #[test]
    fn corrupted_bytes_are_dropped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let (wal, _, _) = open(dir.path(), SegmentSeq(0)).expect("open");
            wal.append(b"good".to_vec()).await.expect("append");
            wal.append(b"will-be-flipped".to_vec())
                .await
                .expect("append");
        });
        let seg = list_segments(dir.path()).expect("list")[0];
        let path = segment_path(dir.path(), seg);
        let mut data = fs::read(&path).expect("read");
        let last = data.len() - 2;
        data[last] ^= 0xff;
        fs::write(&path, data).expect("write");
        let (_wal, replay, records) = open(dir.path(), SegmentSeq(0)).expect("reopen");
        assert_eq!(records, vec![b"good".to_vec()]);
        assert!(replay.dropped_bytes > 0);
    }
}
