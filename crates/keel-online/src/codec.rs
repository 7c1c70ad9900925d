//! How feature values and entity keys become bytes.
//!
//! Both stores hold opaque bytes; this module is the one place that knows
//! their layout, so the embedded store and Redis hold the same bytes.
//!
//! * An **entity key** is the values of a view's join keys, in the view's
//!   order: per value a tag (`1` integer, `2` string) and the value —
//!   integers as 8 big-endian bytes with the sign bit flipped (so keys sort
//!   numerically), strings as a 4-byte length and their UTF-8. Every integer
//!   width is one integer: a key written from an `Int32` column is found by
//!   a request that sends the number.
//! * A **row** is its named values: a 2-byte count, then per value a 2-byte
//!   name length, the name, a type tag and the value's bytes
//!   (little-endian numbers, length-prefixed strings, bytes and lists).
//!   Names travel with the values so that a row written before a view
//!   gained or lost a feature still reads correctly.

use crate::OnlineError;

/// One value of a join key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    Int(i64),
    Str(String),
}

/// A feature value as the online store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    List(Vec<Value>),
}

const NULL: u8 = 0;
const BOOL: u8 = 1;
const INT32: u8 = 2;
const INT64: u8 = 3;
const FLOAT32: u8 = 4;
const FLOAT64: u8 = 5;
const STRING: u8 = 6;
const BYTES: u8 = 7;
const TIMESTAMP: u8 = 8;
const LIST: u8 = 9;

const KEY_INT: u8 = 1;
const KEY_STR: u8 = 2;

/// The bytes of an entity key.
pub fn encode_key(parts: &[KeyPart]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.len() * 9);
    for part in parts {
        match part {
            KeyPart::Int(v) => {
                out.push(KEY_INT);
                out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes());
            }
            KeyPart::Str(s) => {
                out.push(KEY_STR);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

/// The parts of an entity key's bytes.
pub fn decode_key(mut bytes: &[u8]) -> Result<Vec<KeyPart>, OnlineError> {
    let mut parts = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        match tag {
            KEY_INT => {
                let raw = take::<8>(&mut bytes)?;
                parts.push(KeyPart::Int((u64::from_be_bytes(raw) ^ (1 << 63)) as i64));
            }
            KEY_STR => {
                let len = u32::from_be_bytes(take::<4>(&mut bytes)?) as usize;
                parts.push(KeyPart::Str(take_string(&mut bytes, len)?));
            }
            other => return Err(corrupt(format!("entity key tag {other}"))),
        }
    }
    Ok(parts)
}

/// The bytes of a row of named values.
pub fn encode_row<'a, I>(values: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a str, &'a Value)>,
    I::IntoIter: ExactSizeIterator,
{
    let values = values.into_iter();
    let mut out = Vec::with_capacity(16 * values.len() + 2);
    out.extend_from_slice(&(values.len() as u16).to_le_bytes());
    for (name, value) in values {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        encode_value(value, &mut out);
    }
    out
}

/// The named values of a row's bytes.
pub fn decode_row(mut bytes: &[u8]) -> Result<Vec<(String, Value)>, OnlineError> {
    let n = u16::from_le_bytes(take::<2>(&mut bytes)?) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16::from_le_bytes(take::<2>(&mut bytes)?) as usize;
        let name = take_string(&mut bytes, len)?;
        out.push((name, decode_value(&mut bytes, 0)?));
    }
    if !bytes.is_empty() {
        return Err(corrupt(format!("{} bytes after a row", bytes.len())));
    }
    Ok(out)
}

/// The values of `names`, in that order, from a row's bytes (`Null` for
/// a name the row lacks), without allocating the row's names.
pub fn decode_row_as(mut bytes: &[u8], names: &[&str]) -> Result<Vec<Value>, OnlineError> {
    let mut out = vec![Value::Null; names.len()];
    let n = u16::from_le_bytes(take::<2>(&mut bytes)?) as usize;
    for _ in 0..n {
        let len = u16::from_le_bytes(take::<2>(&mut bytes)?) as usize;
        let name = take_slice(&mut bytes, len)?;
        let value = decode_value(&mut bytes, 0)?;
        if let Some(i) = names.iter().position(|w| w.as_bytes() == name) {
            out[i] = value;
        }
    }
    if !bytes.is_empty() {
        return Err(corrupt(format!("{} bytes after a row", bytes.len())));
    }
    Ok(out)
}

/// Appends one value's bytes.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
        Value::Int32(v) => {
            out.push(INT32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Int64(v) => {
            out.push(INT64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Float32(v) => {
            out.push(FLOAT32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Float64(v) => {
            out.push(FLOAT64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::String(s) => {
            out.push(STRING);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::Timestamp(v) => {
            out.push(TIMESTAMP);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::List(items) => {
            out.push(LIST);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for item in items {
                encode_value(item, out);
            }
        }
    }
}

/// Reads one value off the front of `bytes`.
pub fn decode_value(bytes: &mut &[u8], depth: u8) -> Result<Value, OnlineError> {
    let tag = take::<1>(bytes)?[0];
    Ok(match tag {
        NULL => Value::Null,
        BOOL => Value::Bool(take::<1>(bytes)?[0] != 0),
        INT32 => Value::Int32(i32::from_le_bytes(take::<4>(bytes)?)),
        INT64 => Value::Int64(i64::from_le_bytes(take::<8>(bytes)?)),
        FLOAT32 => Value::Float32(f32::from_le_bytes(take::<4>(bytes)?)),
        FLOAT64 => Value::Float64(f64::from_le_bytes(take::<8>(bytes)?)),
        STRING => {
            let len = u32::from_le_bytes(take::<4>(bytes)?) as usize;
            Value::String(take_string(bytes, len)?)
        }
        BYTES => {
            let len = u32::from_le_bytes(take::<4>(bytes)?) as usize;
            Value::Bytes(take_slice(bytes, len)?.to_vec())
        }
        TIMESTAMP => Value::Timestamp(i64::from_le_bytes(take::<8>(bytes)?)),
        LIST if depth == 0 => {
            let n = u32::from_le_bytes(take::<4>(bytes)?) as usize;
            if n > bytes.len() {
                return Err(corrupt(format!(
                    "a list of {n} values in {} bytes",
                    bytes.len()
                )));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_value(bytes, depth + 1)?);
            }
            Value::List(items)
        }
        other => return Err(corrupt(format!("value tag {other}"))),
    })
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], OnlineError> {
    let head = take_slice(bytes, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok(out)
}

fn take_slice<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], OnlineError> {
    if bytes.len() < n {
        return Err(corrupt(format!("{n} bytes expected, {} left", bytes.len())));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn take_string(bytes: &mut &[u8], n: usize) -> Result<String, OnlineError> {
    let raw = take_slice(bytes, n)?;
    String::from_utf8(raw.to_vec()).map_err(|_| corrupt("a string that is not UTF-8".into()))
}

fn corrupt(what: String) -> OnlineError {
    OnlineError::Corrupt(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::Int32),
            any::<i64>().prop_map(Value::Int64),
            any::<f32>()
                .prop_filter("NaN != NaN", |v| !v.is_nan())
                .prop_map(Value::Float32),
            any::<f64>()
                .prop_filter("NaN != NaN", |v| !v.is_nan())
                .prop_map(Value::Float64),
            ".{0,12}".prop_map(Value::String),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
            any::<i64>().prop_map(Value::Timestamp),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => scalar(),
            1 => proptest::collection::vec(scalar(), 0..5).prop_map(Value::List),
        ]
    }

    fn key_part() -> impl Strategy<Value = KeyPart> {
        prop_oneof![
            any::<i64>().prop_map(KeyPart::Int),
            ".{0,10}".prop_map(KeyPart::Str)
        ]
    }

    proptest! {
        #[test]
        fn rows_round_trip(values in proptest::collection::vec(("[a-z_]{1,8}", value()), 0..8)) {
            let bytes = encode_row(values.iter().map(|(n, v)| (n.as_str(), v)));
            let back = decode_row(&bytes).unwrap();
            prop_assert_eq!(&back, &values);
            // By name: the last value of each name, Null for an absent one.
            let mut names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
            names.push("absent_name_");
            let picked = decode_row_as(&bytes, &names).unwrap();
            for (name, got) in names.iter().zip(&picked) {
                let want = values.iter().rev().find(|(n, _)| n == name).map_or(Value::Null, |(_, v)| v.clone());
                if names.iter().filter(|n| *n == name).count() == 1 {
                    prop_assert_eq!(got, &want);
                }
            }
        }

        #[test]
        fn keys_round_trip_and_sort_like_their_values(a in proptest::collection::vec(key_part(), 1..3), b in proptest::collection::vec(key_part(), 1..3)) {
            let (ka, kb) = (encode_key(&a), encode_key(&b));
            prop_assert_eq!(decode_key(&ka).unwrap(), a.clone());
            if a.len() == 1 && b.len() == 1
                && let (KeyPart::Int(x), KeyPart::Int(y)) = (&a[0], &b[0]) {
                prop_assert_eq!(ka.cmp(&kb), x.cmp(y));
            }
        }

        #[test]
        fn truncated_rows_are_errors_never_panics(values in proptest::collection::vec(("[a-z]{1,4}", value()), 1..4), cut in 0usize..64) {
            let bytes = encode_row(values.iter().map(|(n, v)| (n.as_str(), v)));
            let cut = cut % bytes.len();
            prop_assert!(decode_row(&bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes);
            let _ = decode_key(&bytes);
        }
    }

    #[test]
    fn integer_widths_share_one_key() {
        assert_eq!(
            encode_key(&[KeyPart::Int(7)]),
            encode_key(&[KeyPart::Int(i64::from(7i32))])
        );
        assert_ne!(
            encode_key(&[KeyPart::Int(7)]),
            encode_key(&[KeyPart::Str("7".into())])
        );
    }
}
