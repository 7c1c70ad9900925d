//! Byte encoding shared by the log and snapshots: LEB128 varints,
//! length-prefixed strings, and a reader that reports truncation instead
//! of panicking.

pub(crate) struct Writer<'a> {
    pub buf: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub fn ivarint(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// JSON null is written as an empty byte string.
    pub fn json(&mut self, v: &serde_json::Value) {
        if v.is_null() {
            self.varint(0);
        } else {
            // serde_json never fails writing a Value into a Vec.
            let body = serde_json::to_vec(v).unwrap_or_default();
            self.bytes(&body);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecodeError(pub &'static str);

pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }
    pub fn done(&self) -> bool {
        self.at >= self.buf.len()
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let v = *self.buf.get(self.at).ok_or(DecodeError("truncated byte"))?;
        self.at += 1;
        Ok(v)
    }
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }
    pub fn ivarint(&mut self) -> Result<i64, DecodeError> {
        let u = self.varint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
        let end = self
            .at
            .checked_add(len)
            .ok_or(DecodeError("length overflow"))?;
        let b = self
            .buf
            .get(self.at..end)
            .ok_or(DecodeError("truncated bytes"))?;
        self.at = end;
        Ok(b)
    }
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError("invalid UTF-8"))
    }
    pub fn json(&mut self) -> Result<serde_json::Value, DecodeError> {
        let b = self.bytes()?;
        if b.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(b).map_err(|_| DecodeError("invalid JSON"))
    }
}

/// CRC-32C (Castagnoli), the checksum of log frames and snapshots.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const CRC: crc::Crc<u32, crc::Table<16>> =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
    CRC.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(a: u64, b: i64, s in ".{0,40}", n in proptest::option::of(any::<i32>())) {
            let mut buf = Vec::new();
            let mut w = Writer { buf: &mut buf };
            let json = n.map_or(serde_json::Value::Null, |n| serde_json::json!({"n": n, "s": s}));
            w.varint(a);
            w.ivarint(b);
            w.str(&s);
            w.json(&json);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.varint().unwrap(), a);
            prop_assert_eq!(r.ivarint().unwrap(), b);
            prop_assert_eq!(r.str().unwrap(), s.as_str());
            prop_assert_eq!(r.json().unwrap(), json);
            prop_assert!(r.done());
        }

        #[test]
        fn truncation_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.varint().and_then(|_| r.str().map(|_| ())).and_then(|_| r.json().map(|_| ()));
        }
    }

    #[test]
    fn crc32c_known_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
