//! Just enough of the protocol buffers wire format to walk a message field by
//! field: varints, length-delimited fields, and fixed 32/64-bit fields, which
//! are skipped. Groups (long deprecated, and unused by ONNX) are an error.
//!
//! The reader never allocates and never trusts a length: every length is
//! checked against the bytes that remain, so a hostile input costs at most one
//! pass over its bytes per level a caller descends into.

use std::fmt;

/// What a field holds, by wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2: a string, bytes, a packed array or an embedded message.
    Bytes(&'a [u8]),
    /// Wire types 1 and 5, whose contents nothing here needs.
    Fixed,
}

impl Value<'_> {
    /// The wire type's name, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Varint(_) => "a varint",
            Value::Bytes(_) => "a length-delimited field",
            Value::Fixed => "a fixed-width field",
        }
    }
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    /// Offset of the field's tag within the message being read.
    pub offset: usize,
}

/// Bytes that are not a well-formed message; `offset` is relative to the
/// message being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

/// Walks the fields of one message, in the order they were written.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Fields {
            buf,
            pos: 0,
            failed: false,
        }
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) -> WireError {
        self.failed = true;
        WireError {
            offset,
            message: message.into(),
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error(start, "the message ends inside a varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && byte > 1 {
                return Err(self.error(start, "a varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error(start, "a varint is longer than 10 bytes"))
    }

    fn take(&mut self, len: u64, start: usize) -> Result<&'a [u8], WireError> {
        let remaining = self.buf.len() - self.pos;
        match usize::try_from(len) {
            Ok(len) if len <= remaining => {
                let bytes = &self.buf[self.pos..self.pos + len];
                self.pos += len;
                Ok(bytes)
            }
            _ => Err(self.error(
                start,
                format!("a field claims {len} bytes but only {remaining} remain"),
            )),
        }
    }

    fn field(&mut self) -> Result<Field<'a>, WireError> {
        let offset = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(self.error(offset, format!("field number {number} is out of range")));
        }
        let number = number as u32;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8, offset)?;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len, offset)?)
            }
            3 | 4 => {
                return Err(self.error(
                    offset,
                    format!("field {number} is a group, which this reader does not support"),
                ));
            }
            5 => {
                self.take(4, offset)?;
                Value::Fixed
            }
            t => return Err(self.error(offset, format!("field {number} has wire type {t}"))),
        };
        Ok(Field {
            number,
            value,
            offset,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    /// Stops after the first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        Some(self.field())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encoders for building test messages by hand.
    pub(crate) fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub(crate) fn varint_field(number: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(number) << 3, out);
        varint(v, out);
    }

    pub(crate) fn bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint((u64::from(number) << 3) | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn all(buf: &[u8]) -> Result<Vec<Field<'_>>, WireError> {
        Fields::new(buf).collect()
    }

    #[test]
    fn reads_each_wire_type() {
        let mut buf = Vec::new();
        varint_field(1, 300, &mut buf);
        bytes_field(2, b"abc", &mut buf);
        buf.extend_from_slice(&[(3 << 3) | 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(&[(4 << 3) | 5, 0, 0, 0, 0]);
        varint_field(5, u64::MAX, &mut buf);
        let fields = all(&buf).unwrap();
        let values: Vec<(u32, Value)> = fields.iter().map(|f| (f.number, f.value)).collect();
        assert_eq!(
            values,
            vec![
                (1, Value::Varint(300)),
                (2, Value::Bytes(b"abc")),
                (3, Value::Fixed),
                (4, Value::Fixed),
                (5, Value::Varint(u64::MAX)),
            ]
        );
        assert_eq!(fields[1].offset, 3);
    }

    #[test]
    fn rejects_truncation_overflow_and_groups() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x08], "ends inside a varint"),
            (&[0x08, 0x80], "ends inside a varint"),
            (&[0x12, 0x05, b'a'], "claims 5 bytes but only 1 remain"),
            (&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], "but only 0 remain"),
            (&[0x09, 0, 0], "claims 8 bytes"),
            (&[0x0b], "is a group"),
            (&[0x0c], "is a group"),
            (&[0x0e], "wire type 6"),
            (&[0x00], "field number 0"),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                "overflows 64 bits",
            ),
        ];
        for (bytes, expected) in cases {
            let err = all(bytes).unwrap_err();
            assert!(err.message.contains(expected), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn stops_after_an_error() {
        let mut fields = Fields::new(&[0x0b, 0x08, 0x01]);
        assert!(fields.next().unwrap().is_err());
        assert!(fields.next().is_none());
    }
}
