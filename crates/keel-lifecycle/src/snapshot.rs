//! Snapshots: the whole engine state at a log position, so recovery reads
//! one file and replays only the log after it.
//!
//! ```text
//! snapshots/PPPPPPPPPPPPPPPP.snap   (P = log position, hex)
//! "KLS1" [format u32 LE] [position varint] [inputs applied varint]
//! definitions: [count] { [name] [versions] { [YAML text] } }
//! instances:   [count] { [def] [version] [key] [last record position] [instance] }
//! idempotency: [count] { [hash 16 bytes] [expires ivarint] }
//! [crc32c of everything before, u32 LE]
//! ```
//! Written to a temporary file, fsynced and renamed, so a crash leaves the
//! previous snapshot intact. Definitions are stored as text and compiled
//! again on load: the compiled form is never persisted.

use std::path::Path;
use std::sync::Arc;

use crate::codec::{DecodeError, Reader, Writer, crc32c};
use crate::engine::{DefSlot, IdempotencyTable, Slot, State};
use crate::error::LifecycleError;
use crate::log::{LogPos, decode_timer, encode_timer};
use crate::machine::{Extra, Instance, Machine, ParentRef, RunningAction, ScopeRef};

const MAGIC: &[u8; 4] = b"KLS1";
const FORMAT: u32 = 1;

pub(crate) fn encode(state: &State, at: LogPos) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 * state.slots.len() + 4096);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT.to_le_bytes());
    let mut w = Writer { buf: &mut buf };
    w.varint(at);
    w.varint(state.inputs_applied);
    w.varint(state.defs.len() as u64);
    for d in &state.defs {
        w.str(&d.name);
        w.varint(d.versions.len() as u64);
        for m in &d.versions {
            w.str(&m.source);
        }
    }
    let durable: Vec<&Slot> = state
        .slots
        .iter()
        .filter(|s| {
            state.defs[s.def as usize].versions[s.version as usize - 1].mode()
                == crate::definition::Mode::Durable
        })
        .collect();
    w.varint(durable.len() as u64);
    for s in durable {
        w.varint(u64::from(s.def));
        w.varint(u64::from(s.version));
        w.str(&s.key);
        w.varint(s.last_pos);
        encode_instance(&mut w, &s.inst);
    }
    w.varint(state.idem.order.len() as u64);
    for (expires, h) in &state.idem.order {
        w.buf.extend_from_slice(&h.to_le_bytes());
        w.ivarint(*expires);
    }
    let crc = crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

fn encode_instance(w: &mut Writer<'_>, inst: &Instance) {
    w.varint(u64::from(inst.state));
    w.varint(inst.seq);
    w.ivarint(inst.entered_at);
    w.json(inst.context_value());
    match inst.extra.as_deref() {
        None => w.u8(0),
        Some(e) => {
            w.u8(1);
            w.varint(e.branches.len() as u64);
            for b in &e.branches {
                w.varint(u64::from(*b));
            }
            w.varint(e.timers.len() as u64);
            for t in &e.timers {
                encode_timer(w, t);
            }
            w.varint(e.running.len() as u64);
            for r in &e.running {
                w.varint(match r.scope {
                    ScopeRef::Top => 0,
                    ScopeRef::Branch(b) => u64::from(b) + 1,
                });
                w.varint(u64::from(r.state));
                w.varint(u64::from(r.attempt));
                w.varint(r.token);
            }
            match &e.parent {
                None => w.u8(0),
                Some(p) => {
                    w.u8(1);
                    w.str(&p.lifecycle);
                    w.str(&p.key);
                    w.varint(p.token);
                }
            }
            w.varint(u64::from(e.pending_children));
            w.varint(e.map_token);
        }
    }
}

/// An instance alone, as a cluster stores it in a row.
pub(crate) fn encode_instance_bytes(inst: &Instance) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    encode_instance(&mut Writer { buf: &mut buf }, inst);
    buf
}

pub(crate) fn decode_instance_bytes(bytes: &[u8]) -> Result<Instance, DecodeError> {
    let mut r = Reader::new(bytes);
    decode_instance(&mut r)
}

fn small<T: TryFrom<u64>>(v: u64) -> Result<T, DecodeError> {
    T::try_from(v).map_err(|_| DecodeError("number out of range"))
}

fn decode_instance(r: &mut Reader<'_>) -> Result<Instance, DecodeError> {
    let state = small(r.varint()?)?;
    let seq = r.varint()?;
    let entered_at = r.ivarint()?;
    let ctx = r.json()?;
    let extra = match r.u8()? {
        0 => None,
        _ => {
            let mut e = Extra::default();
            for _ in 0..r.varint()? {
                e.branches.push(small(r.varint()?)?);
            }
            for _ in 0..r.varint()? {
                e.timers.push(decode_timer(r)?);
            }
            for _ in 0..r.varint()? {
                let scope = match r.varint()? {
                    0 => ScopeRef::Top,
                    b => ScopeRef::Branch(small(b - 1)?),
                };
                e.running.push(RunningAction {
                    scope,
                    state: small(r.varint()?)?,
                    attempt: small(r.varint()?)?,
                    token: r.varint()?,
                });
            }
            if r.u8()? != 0 {
                e.parent = Some(Box::new(ParentRef {
                    lifecycle: r.str()?.to_owned(),
                    key: r.str()?.to_owned(),
                    token: r.varint()?,
                }));
            }
            e.pending_children = small(r.varint()?)?;
            e.map_token = r.varint()?;
            Some(Box::new(e))
        }
    };
    Ok(Instance {
        state,
        seq,
        entered_at,
        context: (!ctx.is_null()).then(|| Box::new(ctx)),
        extra,
    })
}

fn decode(bytes: &[u8], known_actions: &[&str]) -> Result<(State, LogPos), String> {
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err("not a Keel lifecycle snapshot".into());
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    let format = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    if format != FORMAT {
        return Err(format!(
            "snapshot format {format} is not supported (this Keel reads {FORMAT})"
        ));
    }
    let mut r = Reader::new(&body[8..]);
    let e = |e: DecodeError| e.to_string();
    let at = r.varint().map_err(e)?;
    let mut state = State {
        inputs_applied: r.varint().map_err(e)?,
        ..State::default()
    };
    for _ in 0..r.varint().map_err(e)? {
        let name: Arc<str> = Arc::from(r.str().map_err(e)?);
        let mut slot = DefSlot {
            name: name.clone(),
            versions: Vec::new(),
            keys: std::collections::HashMap::new(),
            counts: Vec::new(),
        };
        let versions = r.varint().map_err(e)?;
        for v in 1..=versions {
            let source = r.str().map_err(e)?;
            let def = crate::parse::parse_definition(source, known_actions).map_err(|err| {
                format!("definition `{name}` version {v} no longer parses: {err}")
            })?;
            let m = Machine::compile(def, v as u32, Arc::from(source))?;
            slot.counts.push(vec![0; m.state_count()]);
            slot.versions.push(Arc::new(m));
        }
        if slot.versions.is_empty() {
            return Err(format!("definition `{name}` has no version"));
        }
        state.def_ids.insert(name, state.defs.len() as u32);
        state.defs.push(slot);
    }
    let n = r.varint().map_err(e)?;
    state.slots.reserve(n as usize);
    for _ in 0..n {
        let def: u32 = small(r.varint().map_err(e)?).map_err(e)?;
        let version: u32 = small(r.varint().map_err(e)?).map_err(e)?;
        let key: Arc<str> = Arc::from(r.str().map_err(e)?);
        let last_pos = r.varint().map_err(e)?;
        let inst = decode_instance(&mut r).map_err(e)?;
        let d = state
            .defs
            .get_mut(def as usize)
            .ok_or("instance of an unknown definition")?;
        let counts = d
            .counts
            .get_mut((version as usize).wrapping_sub(1))
            .ok_or("instance of an unknown definition version")?;
        *counts
            .get_mut(inst.state as usize)
            .ok_or("instance in an unknown state")? += 1;
        d.keys.insert(key.clone(), state.slots.len() as u32);
        state.slots.push(Slot {
            def,
            version,
            key,
            last_pos,
            inst,
        });
    }
    let mut idem = IdempotencyTable::default();
    for _ in 0..r.varint().map_err(e)? {
        let b = r
            .buf
            .get(r.at..r.at + 16)
            .ok_or("truncated idempotency table")?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        r.at += 16;
        let expires = r.ivarint().map_err(e)?;
        let h = u128::from_le_bytes(a);
        idem.seen.insert(h, expires);
        idem.order.push_back((expires, h));
    }
    state.idem = idem;
    Ok((state, at))
}

fn snapshots(dir: &Path) -> Result<Vec<(LogPos, std::path::PathBuf)>, LifecycleError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| LifecycleError::io(dir, e))?;
    for entry in rd.flatten() {
        let name = entry.file_name();
        if let Some(p) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            out.push((p, entry.path()));
        }
    }
    out.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    Ok(out)
}

/// The newest snapshot that reads back whole; an unreadable one is
/// skipped with a warning (the log before it is still there until a newer
/// snapshot has been written).
pub(crate) fn load_latest(
    dir: &Path,
    known_actions: &[&str],
) -> Result<Option<(State, LogPos)>, LifecycleError> {
    for (p, path) in snapshots(dir)? {
        let bytes = std::fs::read(&path).map_err(|e| LifecycleError::io(&path, e))?;
        match decode(&bytes, known_actions) {
            Ok((state, at)) if at == p => return Ok(Some((state, at))),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "snapshot position does not match its name; skipped")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable snapshot skipped")
            }
        }
    }
    Ok(None)
}

/// Writes a snapshot atomically and keeps only it and the one before;
/// returns the position of the older one kept.
pub(crate) fn write(dir: &Path, at: LogPos, bytes: &[u8]) -> Result<LogPos, LifecycleError> {
    use std::io::Write;
    let tmp = dir.join(format!("{at:016x}.snap.tmp"));
    let path = dir.join(format!("{at:016x}.snap"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| LifecycleError::io(&tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| LifecycleError::io(&tmp, e))?;
        f.sync_all().map_err(|e| LifecycleError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| LifecycleError::io(&path, e))?;
    crate::log::sync_dir(dir)?;
    let all = snapshots(dir)?;
    for (_, old) in all.iter().skip(2) {
        let _ = std::fs::remove_file(old);
    }
    Ok(all.iter().take(2).map(|(p, _)| *p).min().unwrap_or(at))
}
