//! The durable event log: append-only segment files of checksummed frames.
//!
//! ```text
//! segment file  log/SSSSSSSS.log   (SSSSSSSS = segment number, hex)
//! frame         [magic u32 LE "KLF1"][body length u32 LE][crc32c(body) u32 LE][body]
//! body          record record …     (one group commit)
//! record        [varint length][tag u8][time ivarint][lifecycle str][key str]
//!               [prev varint][idempotency 0 | 1 u128][input …][data json]
//!               [from str][to str][note str]
//! ```
//! A frame is the unit of atomicity: one write and one fsync per group
//! commit, and a frame whose checksum fails at the end of the last segment
//! is a torn write and is cut off at recovery, all of its records with it,
//! so the effects of one input (an emitted event, started children) are
//! all there or none is. A record's position is `segment << 32 | offset`;
//! `prev` links each record to the previous one of the same instance, which
//! is how an instance's history is read without an index.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::codec::{DecodeError, Reader, Writer, crc32c};
use crate::machine::{ParentRef, ScopeRef, Timer, TimerKind};

const FRAME_MAGIC: u32 = 0x3146_4C4B; // "KLF1" little-endian
const FRAME_HEADER: u64 = 12;
/// A new segment is started once the current one passes this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// `segment << 32 | offset`.
pub type LogPos = u64;

pub fn pos(segment: u32, offset: u64) -> LogPos {
    (u64::from(segment) << 32) | offset
}
pub fn segment_of(p: LogPos) -> u32 {
    (p >> 32) as u32
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("lifecycle log I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "lifecycle log segment {path} is corrupt at byte {offset} ({reason}); it is not the last segment, so this is not a torn write. Restore the data directory from a backup, or move the segment away to start from the last snapshot"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a record applies.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordInput<'a> {
    /// A definition version (its YAML text).
    Define {
        version: u32,
        source: &'a str,
    },
    /// An instance started on a definition version.
    Start {
        version: u32,
        parent: Option<ParentRef>,
    },
    Event {
        name: &'a str,
    },
    Timer(Timer),
    Action {
        token: u64,
        ok: bool,
    },
    Child {
        token: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub time: i64,
    pub lifecycle: &'a str,
    pub key: &'a str,
    pub prev: LogPos,
    pub idempotency: Option<u128>,
    pub input: RecordInput<'a>,
    pub data: std::borrow::Cow<'a, Value>,
    pub from: &'a str,
    pub to: &'a str,
    pub note: &'a str,
}

const TAG_DEFINE: u8 = 1;
const TAG_START: u8 = 2;
const TAG_EVENT: u8 = 3;
const TAG_TIMER: u8 = 4;
const TAG_ACTION: u8 = 5;
const TAG_CHILD: u8 = 6;

/// Appends one record (with its length prefix) to a frame body.
pub fn encode(out: &mut Vec<u8>, r: &Record<'_>) {
    let mut body = Vec::with_capacity(64);
    let mut w = Writer { buf: &mut body };
    let tag = match &r.input {
        RecordInput::Define { .. } => TAG_DEFINE,
        RecordInput::Start { .. } => TAG_START,
        RecordInput::Event { .. } => TAG_EVENT,
        RecordInput::Timer(_) => TAG_TIMER,
        RecordInput::Action { .. } => TAG_ACTION,
        RecordInput::Child { .. } => TAG_CHILD,
    };
    w.u8(tag);
    w.ivarint(r.time);
    w.str(r.lifecycle);
    w.str(r.key);
    w.varint(r.prev);
    match r.idempotency {
        None => w.u8(0),
        Some(h) => {
            w.u8(1);
            w.buf.extend_from_slice(&h.to_le_bytes());
        }
    }
    match &r.input {
        RecordInput::Define { version, source } => {
            w.varint(u64::from(*version));
            w.str(source);
        }
        RecordInput::Start { version, parent } => {
            w.varint(u64::from(*version));
            match parent {
                None => w.u8(0),
                Some(p) => {
                    w.u8(1);
                    w.str(&p.lifecycle);
                    w.str(&p.key);
                    w.varint(p.token);
                }
            }
        }
        RecordInput::Event { name } => w.str(name),
        RecordInput::Timer(t) => encode_timer(&mut w, t),
        RecordInput::Action { token, ok } => {
            w.varint(*token);
            w.u8(u8::from(*ok));
        }
        RecordInput::Child { token } => w.varint(*token),
    }
    w.json(&r.data);
    w.str(r.from);
    w.str(r.to);
    w.str(r.note);
    let mut w = Writer { buf: out };
    w.bytes(&body);
}

pub(crate) fn encode_timer(w: &mut Writer<'_>, t: &Timer) {
    let (kind, attempt) = match t.kind {
        TimerKind::Timeout => (0u8, 0u16),
        TimerKind::Schedule => (1, 0),
        TimerKind::Retry { attempt } => (2, attempt),
    };
    w.u8(kind);
    w.varint(u64::from(attempt));
    w.varint(match t.scope {
        ScopeRef::Top => 0,
        ScopeRef::Branch(b) => u64::from(b) + 1,
    });
    w.ivarint(t.at);
    w.varint(t.token);
}

pub(crate) fn decode_timer(r: &mut Reader<'_>) -> Result<Timer, DecodeError> {
    let kind = r.u8()?;
    let attempt = u16::try_from(r.varint()?).map_err(|_| DecodeError("attempt out of range"))?;
    let scope = match r.varint()? {
        0 => ScopeRef::Top,
        b => {
            ScopeRef::Branch(u16::try_from(b - 1).map_err(|_| DecodeError("branch out of range"))?)
        }
    };
    let at = r.ivarint()?;
    let token = r.varint()?;
    let kind = match kind {
        0 => TimerKind::Timeout,
        1 => TimerKind::Schedule,
        2 => TimerKind::Retry { attempt },
        _ => return Err(DecodeError("unknown timer kind")),
    };
    Ok(Timer {
        kind,
        scope,
        at,
        token,
    })
}

/// Decodes one record body (without its length prefix).
pub(crate) fn decode(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    let mut r = Reader::new(body);
    let tag = r.u8()?;
    let time = r.ivarint()?;
    let lifecycle = r.str()?;
    let key = r.str()?;
    let prev = r.varint()?;
    let idempotency = match r.u8()? {
        0 => None,
        _ => {
            let b = r
                .buf
                .get(r.at..r.at + 16)
                .ok_or(DecodeError("truncated idempotency key"))?;
            r.at += 16;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(u128::from_le_bytes(a))
        }
    };
    let version = |r: &mut Reader<'_>| {
        u32::try_from(r.varint()?).map_err(|_| DecodeError("version out of range"))
    };
    let input = match tag {
        TAG_DEFINE => RecordInput::Define {
            version: version(&mut r)?,
            source: r.str()?,
        },
        TAG_START => {
            let version = version(&mut r)?;
            let parent = match r.u8()? {
                0 => None,
                _ => Some(ParentRef {
                    lifecycle: r.str()?.to_owned(),
                    key: r.str()?.to_owned(),
                    token: r.varint()?,
                }),
            };
            RecordInput::Start { version, parent }
        }
        TAG_EVENT => RecordInput::Event { name: r.str()? },
        TAG_TIMER => RecordInput::Timer(decode_timer(&mut r)?),
        TAG_ACTION => RecordInput::Action {
            token: r.varint()?,
            ok: r.u8()? != 0,
        },
        TAG_CHILD => RecordInput::Child { token: r.varint()? },
        _ => return Err(DecodeError("unknown record tag")),
    };
    let data = std::borrow::Cow::Owned(r.json()?);
    Ok(Record {
        time,
        lifecycle,
        key,
        prev,
        idempotency,
        input,
        data,
        from: r.str()?,
        to: r.str()?,
        note: r.str()?,
    })
}

/// The records of one frame body, in order.
pub(crate) fn records(body: &[u8]) -> impl Iterator<Item = Result<Record<'_>, DecodeError>> {
    let mut r = Reader::new(body);
    std::iter::from_fn(move || {
        if r.done() {
            return None;
        }
        Some(r.bytes().and_then(decode))
    })
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08x}.log"))
}

/// Segment numbers present in `dir`, ascending.
pub fn segments(dir: &Path) -> Result<Vec<u32>, LogError> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(n) = u32::from_str_radix(stem, 16) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Where a scan stopped: the position the next frame goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    pub segment: u32,
    pub offset: u64,
    /// Bytes cut off the tail (a torn last write).
    pub truncated: u64,
}

/// Calls `f` for every record at or after `from`, in order, and cuts a torn
/// frame off the end of the last segment.
pub fn scan(
    dir: &Path,
    from: LogPos,
    mut f: impl FnMut(LogPos, Record<'_>) -> Result<(), String>,
) -> Result<ScanEnd, LogError> {
    let segs = segments(dir)?;
    let start_seg = segment_of(from);
    let mut end = ScanEnd {
        segment: start_seg,
        offset: if from == 0 { 0 } else { from & 0xFFFF_FFFF },
        truncated: 0,
    };
    let last = segs.last().copied();
    // Replay must see every record after `from`: a missing segment (moved
    // to the archive too early, deleted by hand) is an error, not a gap.
    let wanted: Vec<u32> = segs.iter().copied().filter(|&s| s >= start_seg).collect();
    if from != 0 && !segs.is_empty() && wanted.first() != Some(&start_seg) {
        return Err(LogError::Corrupt {
            path: segment_path(dir, start_seg),
            offset: from & 0xFFFF_FFFF,
            reason: "the segment the snapshot continues in is missing (look in archive/)".into(),
        });
    }
    if let Some(gap) = wanted.windows(2).find(|w| w[1] != w[0] + 1) {
        return Err(LogError::Corrupt {
            path: segment_path(dir, gap[0] + 1),
            offset: 0,
            reason: "a segment is missing between two others".into(),
        });
    }
    for &seg in segs.iter().filter(|&&s| s >= start_seg) {
        let path = segment_path(dir, seg);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let mut off: u64 = if seg == start_seg {
            from & 0xFFFF_FFFF
        } else {
            0
        };
        end.segment = seg;
        loop {
            let o = off as usize;
            if o == bytes.len() {
                break;
            }
            let bad = |reason: &str| -> Result<(), LogError> {
                if Some(seg) == last {
                    Ok(())
                } else {
                    Err(LogError::Corrupt {
                        path: path.clone(),
                        offset: off,
                        reason: reason.to_owned(),
                    })
                }
            };
            let Some(header) = bytes.get(o..o + FRAME_HEADER as usize) else {
                bad("truncated frame header")?;
                break;
            };
            let word = |i: usize| {
                u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]])
            };
            let (magic, len, crc) = (word(0), word(4) as usize, word(8));
            let body_start = o + FRAME_HEADER as usize;
            let Some(body) = bytes.get(body_start..body_start + len) else {
                bad("truncated frame")?;
                break;
            };
            if magic != FRAME_MAGIC || crc32c(body) != crc {
                bad("checksum mismatch")?;
                break;
            }
            let mut r = Reader::new(body);
            while !r.done() {
                let rec_pos = pos(seg, (body_start + r.at) as u64);
                let rec = r.bytes().map_err(|e| LogError::Corrupt {
                    path: path.clone(),
                    offset: rec_pos & 0xFFFF_FFFF,
                    reason: e.to_string(),
                })?;
                let record = decode(rec).map_err(|e| LogError::Corrupt {
                    path: path.clone(),
                    offset: rec_pos & 0xFFFF_FFFF,
                    reason: e.to_string(),
                })?;
                f(rec_pos, record).map_err(|reason| LogError::Corrupt {
                    path: path.clone(),
                    offset: rec_pos & 0xFFFF_FFFF,
                    reason,
                })?;
            }
            off = (body_start + len) as u64;
        }
        end.offset = off;
        if (off as usize) < bytes.len() {
            end.truncated = bytes.len() as u64 - off;
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            file.set_len(off).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
    }
    Ok(end)
}

/// Reads the record at `p` from the log directory or, once compacted, the
/// archive: how history walks an instance's `prev` chain.
pub fn read_at(dirs: &[&Path], p: LogPos) -> Result<Option<Vec<u8>>, LogError> {
    let seg = segment_of(p);
    for dir in dirs {
        let path = segment_path(dir, seg);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path)(e)),
        };
        file.seek(SeekFrom::Start(p & 0xFFFF_FFFF))
            .map_err(io_err(&path))?;
        let mut head = [0u8; 10];
        let n = file.read(&mut head).map_err(io_err(&path))?;
        let mut r = Reader::new(&head[..n]);
        let Ok(len) = r.varint() else { return Ok(None) };
        let mut body = vec![0u8; len as usize];
        let have = n - r.at;
        let take = have.min(body.len());
        body[..take].copy_from_slice(&head[r.at..r.at + take]);
        if take < body.len() {
            file.read_exact(&mut body[take..]).map_err(io_err(&path))?;
        }
        return Ok(Some(body));
    }
    Ok(None)
}

/// The appending end of the log.
pub struct LogWriter {
    dir: PathBuf,
    segment: u32,
    offset: u64,
    /// Shared with the [`SyncHandle`]s of this segment.
    file: std::sync::Arc<File>,
    fsync: bool,
    segment_bytes: u64,
}

impl LogWriter {
    pub fn open(dir: &Path, segment: u32, offset: u64, fsync: bool) -> Result<LogWriter, LogError> {
        Self::open_with(dir, segment, offset, fsync, SEGMENT_BYTES)
    }

    /// Like [`LogWriter::open`] with another segment size (tests use small
    /// ones to exercise rolling and archiving).
    pub fn open_with(
        dir: &Path,
        segment: u32,
        offset: u64,
        fsync: bool,
        segment_bytes: u64,
    ) -> Result<LogWriter, LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = segment_path(dir, segment);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok(LogWriter {
            dir: dir.to_owned(),
            segment,
            offset,
            file: std::sync::Arc::new(file),
            fsync,
            segment_bytes: segment_bytes.clamp(4096, u64::from(u32::MAX) / 2),
        })
    }

    /// Position the first record of the next frame will have.
    pub fn next_record_pos(&self) -> LogPos {
        pos(self.segment, self.offset + FRAME_HEADER)
    }

    /// Position after the last written frame.
    pub fn end_pos(&self) -> LogPos {
        pos(self.segment, self.offset)
    }

    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// Starts a new segment when the current one is full. Called between
    /// frames, before record positions of the next frame are handed out.
    pub fn roll_if_full(&mut self) -> Result<(), LogError> {
        if self.offset < self.segment_bytes {
            return Ok(());
        }
        let next = self.segment + 1;
        *self = LogWriter::open_with(&self.dir, next, 0, self.fsync, self.segment_bytes)?;
        Ok(())
    }

    /// Writes one frame without waiting for the disk; [`LogWriter::sync_handle`]
    /// makes it durable (from another thread while the next frame is built).
    pub fn write(&mut self, body: &[u8]) -> Result<LogPos, LogError> {
        self.write_frame(body, false)
    }

    /// A handle that fsyncs the current segment (`None` with fsync off).
    pub fn sync_handle(&self) -> Option<SyncHandle> {
        self.fsync.then(|| SyncHandle {
            segment: self.segment,
            file: self.file.clone(),
            path: segment_path(&self.dir, self.segment),
        })
    }

    /// Writes one frame and, unless fsync is off, waits until it is on disk.
    pub fn append(&mut self, body: &[u8]) -> Result<LogPos, LogError> {
        self.write_frame(body, self.fsync)
    }

    fn write_frame(&mut self, body: &[u8], sync: bool) -> Result<LogPos, LogError> {
        let path = segment_path(&self.dir, self.segment);
        let len = u32::try_from(body.len()).map_err(|_| LogError::Io {
            path: path.clone(),
            source: std::io::Error::other("frame larger than 4 GiB"),
        })?;
        let mut frame = Vec::with_capacity(body.len() + FRAME_HEADER as usize);
        frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32c(body).to_le_bytes());
        frame.extend_from_slice(body);
        (&*self.file).write_all(&frame).map_err(io_err(&path))?;
        if sync {
            self.file.sync_data().map_err(io_err(&path))?;
        }
        self.offset += frame.len() as u64;
        Ok(self.end_pos())
    }
}

/// Makes the frames written to one segment durable.
#[derive(Clone)]
pub struct SyncHandle {
    pub segment: u32,
    file: std::sync::Arc<File>,
    path: PathBuf,
}

impl SyncHandle {
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(key: &'a str, name: &'a str) -> Record<'a> {
        Record {
            time: 1_700_000_000_000,
            lifecycle: "churn",
            key,
            prev: 42,
            idempotency: Some(7),
            input: RecordInput::Event { name },
            data: std::borrow::Cow::Owned(serde_json::json!({"auc": 0.9})),
            from: "testing",
            to: "staging",
            note: "",
        }
    }

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), 0, 0, true).unwrap();
        let mut body = Vec::new();
        encode(&mut body, &rec("a", "e1"));
        encode(&mut body, &rec("b", "e2"));
        let first = w.next_record_pos();
        w.append(&body).unwrap();
        let mut body2 = Vec::new();
        encode(&mut body2, &rec("c", "e3"));
        w.append(&body2).unwrap();
        let good_end = w.end_pos();
        // A torn third frame: header and half a body.
        let mut body3 = Vec::new();
        encode(&mut body3, &rec("d", "e4"));
        w.append(&body3).unwrap();
        let path = segment_path(dir.path(), 0);
        let full = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 5)
            .unwrap();

        let mut seen = Vec::new();
        let end = scan(dir.path(), 0, |p, r| {
            seen.push((p, r.key.to_owned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(seen[0].0, first);
        assert_eq!(pos(end.segment, end.offset), good_end);
        assert!(end.truncated > 0);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_end & 0xFFFF_FFFF);

        let body = read_at(&[dir.path()], seen[1].0).unwrap().unwrap();
        assert_eq!(decode(&body).unwrap(), rec("b", "e2"));
    }

    #[test]
    fn corruption_before_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), 0, 0, false).unwrap();
        let mut body = Vec::new();
        encode(&mut body, &rec("a", "e1"));
        w.append(&body).unwrap();
        let mut w2 = LogWriter::open(dir.path(), 1, 0, false).unwrap();
        w2.append(&body).unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xFF;
        fs::write(&path, bytes).unwrap();
        let err = scan(dir.path(), 0, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn every_input_kind_round_trips() {
        let inputs = [
            RecordInput::Define {
                version: 3,
                source: "lifecycle: x",
            },
            RecordInput::Start {
                version: 2,
                parent: Some(ParentRef {
                    lifecycle: "p".into(),
                    key: "k".into(),
                    token: 9,
                }),
            },
            RecordInput::Timer(Timer {
                kind: TimerKind::Retry { attempt: 2 },
                scope: ScopeRef::Branch(3),
                at: 123,
                token: 5,
            }),
            RecordInput::Action {
                token: 4,
                ok: false,
            },
            RecordInput::Child { token: 8 },
        ];
        for input in inputs {
            let r = Record {
                input,
                idempotency: None,
                ..rec("k", "e")
            };
            let mut buf = Vec::new();
            encode(&mut buf, &r);
            let mut rd = Reader::new(&buf);
            let body = rd.bytes().unwrap();
            assert_eq!(decode(body).unwrap(), r);
        }
    }
}
