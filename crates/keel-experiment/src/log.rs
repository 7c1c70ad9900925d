//! The decision log: every deployment change, decision and reward, in
//! order, in one append-only file of checksummed frames.
//!
//! ```text
//! frame  [body length u32 LE][crc32c(body) u32 LE][body: one record]
//! ```
//! With fsync, appends go through one writer thread that group-commits:
//! whatever queued while the last write was on disk goes out in one write
//! and one fsync, and only then is each append acknowledged. Without fsync
//! (the process-crash guarantee) the caller writes its frames itself, under
//! a lock, before its append returns: no thread hand-off on the decision
//! path. At startup the file is read
//! back; a frame cut short or failing its checksum at the end is a torn
//! write and is cut off (it was never acknowledged).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::ExperimentError;

const FRAME_HEADER: usize = 8;
/// Larger frames cannot be records: a length beyond this is corruption.
const MAX_RECORD: usize = 64 << 20;

fn crc32c(data: &[u8]) -> u32 {
    const CRC: crc::Crc<u32, crc::Table<16>> =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
    CRC.checksum(data)
}

type Ack = oneshot::Sender<Result<(), String>>;

/// The appending side; cheap to clone.
#[derive(Clone)]
pub struct DecisionLog {
    writer: Writer,
    failed: Arc<AtomicBool>,
    path: PathBuf,
}

#[derive(Clone)]
enum Writer {
    /// The group-committing thread (fsync).
    Thread(mpsc::Sender<(Vec<u8>, Ack)>),
    /// Written by the appender (no fsync).
    Direct(Arc<std::sync::Mutex<File>>),
}

impl DecisionLog {
    /// Opens (creating) the log at `path`, hands every intact record to
    /// `replay` in order, cuts off a torn tail, and starts the writer.
    pub fn open(
        path: &Path,
        fsync: bool,
        mut replay: impl FnMut(&[u8]) -> Result<(), ExperimentError>,
    ) -> Result<DecisionLog, ExperimentError> {
        let io = |e: std::io::Error| ExperimentError::Io(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let at = frames(&bytes, &mut replay)?;
        if at < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped = bytes.len() - at,
                "cutting off a torn write at the end of the decision log"
            );
            file.set_len(at as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let failed = Arc::new(AtomicBool::new(false));
        let writer = if fsync {
            let (queue, jobs) = mpsc::channel();
            let flag = failed.clone();
            let name = path.to_path_buf();
            std::thread::Builder::new()
                .name("keel-decision-log".into())
                .spawn(move || write_loop(file, jobs, flag, name))
                .map_err(io)?;
            Writer::Thread(queue)
        } else {
            Writer::Direct(Arc::new(std::sync::Mutex::new(file)))
        };
        Ok(DecisionLog {
            writer,
            failed,
            path: path.to_path_buf(),
        })
    }

    /// Queues a record; the returned receiver says when it is on disk.
    /// Records queued by one caller are written in the order queued.
    pub fn append(&self, record: &[u8]) -> Result<Done, ExperimentError> {
        let mut frame = Vec::with_capacity(FRAME_HEADER + record.len());
        frame_with(&mut frame, |out| out.extend_from_slice(record));
        self.append_frames(frame)
    }

    /// Queues frames built with [`frame_with`] as one write.
    pub fn append_frames(&self, frames: Vec<u8>) -> Result<Done, ExperimentError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.unavailable());
        }
        let (ack, done) = oneshot::channel();
        match &self.writer {
            Writer::Thread(queue) => queue.send((frames, ack)).map_err(|_| self.unavailable())?,
            Writer::Direct(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = file.write_all(&frames) {
                    tracing::error!(path = %self.path.display(), error = %e, "the decision log failed; experiments stop accepting writes");
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(self.unavailable());
                }
                let _ = ack.send(Ok(()));
            }
        }
        Ok(done)
    }

    /// Reads every record written so far, in order, from a fresh handle
    /// (appends may go on meanwhile: a frame still being written ends the
    /// read).
    pub fn read(
        &self,
        mut each: impl FnMut(&[u8]) -> Result<(), ExperimentError>,
    ) -> Result<(), ExperimentError> {
        let bytes = std::fs::read(&self.path)
            .map_err(|e| ExperimentError::Io(format!("{}: {e}", self.path.display())))?;
        frames(&bytes, &mut each).map(|_| ())
    }

    fn unavailable(&self) -> ExperimentError {
        ExperimentError::Unavailable(format!(
            "the decision log {} could not be written; see the server log, free disk space and restart",
            self.path.display()
        ))
    }
}

/// Appends one frame to `frames` whose body `write` appends.
pub fn frame_with(frames: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = frames.len();
    frames.extend_from_slice(&[0; FRAME_HEADER]);
    write(frames);
    let body = &frames[start + FRAME_HEADER..];
    let (len, crc) = (body.len() as u32, crc32c(body));
    frames[start..start + 4].copy_from_slice(&len.to_le_bytes());
    frames[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Hands each intact frame's body to `each`; returns where the intact
/// frames end.
pub(crate) fn frames(
    bytes: &[u8],
    each: &mut impl FnMut(&[u8]) -> Result<(), ExperimentError>,
) -> Result<usize, ExperimentError> {
    let mut at = 0;
    while bytes.len() - at >= FRAME_HEADER {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let start = at + FRAME_HEADER;
        if len > MAX_RECORD || bytes.len() - start < len {
            break;
        }
        let body = &bytes[start..start + len];
        if crc32c(body) != crc {
            break;
        }
        each(body)?;
        at = start + len;
    }
    Ok(at)
}

/// Resolves when an appended record is on disk.
pub type Done = oneshot::Receiver<Result<(), String>>;

/// Waits for an append to be durable.
pub async fn durable(done: oneshot::Receiver<Result<(), String>>) -> Result<(), ExperimentError> {
    match done.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ExperimentError::Io(e)),
        Err(_) => Err(ExperimentError::Io(
            "the decision log writer stopped".into(),
        )),
    }
}

fn write_loop(
    mut file: File,
    jobs: mpsc::Receiver<(Vec<u8>, Ack)>,
    failed: Arc<AtomicBool>,
    path: PathBuf,
) {
    let mut buf = Vec::new();
    let mut acks = Vec::new();
    while let Ok((frame, ack)) = jobs.recv() {
        buf.clear();
        buf.extend_from_slice(&frame);
        acks.push(ack);
        while let Ok((frame, ack)) = jobs.try_recv() {
            buf.extend_from_slice(&frame);
            acks.push(ack);
            if buf.len() > 4 << 20 {
                break;
            }
        }
        let result = file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()));
        if let Err(e) = &result {
            tracing::error!(error = %e, "the decision log failed; experiments stop accepting writes");
            failed.store(true, Ordering::Relaxed);
        }
        for ack in acks.drain(..) {
            let _ = ack.send(result.clone());
        }
        if result.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_come_back_in_order_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let log = DecisionLog::open(&path, true, |_| Ok(())).unwrap();
        for i in 0..50 {
            let done = log.append(format!("{{\"i\":{i}}}").as_bytes()).unwrap();
            if i % 10 == 9 {
                durable(done).await.unwrap();
            }
        }
        drop(log);
        // Without fsync the appender writes itself; the order holds.
        let log = DecisionLog::open(&path, false, |_| Ok(())).unwrap();
        for i in 50..100 {
            let done = log.append(format!("{{\"i\":{i}}}").as_bytes()).unwrap();
            if i % 10 == 9 {
                durable(done).await.unwrap();
            }
        }
        drop(log);
        // A half-written frame at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[50, 0, 0, 0, 1, 2, 3, 4, b'{']).unwrap();
        drop(f);
        let mut seen = Vec::new();
        let _log = DecisionLog::open(&path, true, |body| {
            seen.push(String::from_utf8(body.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 100);
        assert_eq!(seen[42], "{\"i\":42}");
        let mut count = 0;
        let _again = DecisionLog::open(&path, true, |_| {
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 100);
    }
}
