//! XXH64 (seed 0), the one hash behind every HyperLogLog in a profile.
//!
//! Sketches made on different machines, processes and Keel versions must
//! merge, so the hash is fixed, implemented here from the public XXH64
//! specification, and pinned by its published test vectors. Anyone can
//! recompute it elsewhere (`xxhash.xxh64(b).intdigest()` in Python): strings
//! hash their UTF-8 bytes, numbers the 8 little-endian bytes of the `f64`
//! after `-0.0` has become `0.0`.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge_round(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline(always)]
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[inline(always)]
fn read_u64(bytes: &[u8]) -> u64 {
    let mut lane = [0u8; 8];
    lane.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(lane)
}

#[inline(always)]
fn read_u32(bytes: &[u8]) -> u64 {
    let mut lane = [0u8; 4];
    lane.copy_from_slice(&bytes[..4]);
    u64::from(u32::from_le_bytes(lane))
}

/// XXH64 of `bytes` with seed 0.
pub(crate) fn xxh64(bytes: &[u8]) -> u64 {
    let len = bytes.len() as u64;
    let mut rest = bytes;
    let mut h = if rest.len() >= 32 {
        let mut v1 = P1.wrapping_add(P2);
        let mut v2 = P2;
        let mut v3 = 0u64;
        let mut v4 = 0u64.wrapping_sub(P1);
        while rest.len() >= 32 {
            v1 = round(v1, read_u64(&rest[0..]));
            v2 = round(v2, read_u64(&rest[8..]));
            v3 = round(v3, read_u64(&rest[16..]));
            v4 = round(v4, read_u64(&rest[24..]));
            rest = &rest[32..];
        }
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        merge_round(h, v4)
    } else {
        P5
    };
    h = h.wrapping_add(len);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read_u32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    avalanche(h)
}

/// XXH64 of the 8 little-endian bytes of `word`: [`xxh64`] unrolled for the
/// hot path of numeric profiles.
#[inline(always)]
pub(crate) fn xxh64_u64(word: u64) -> u64 {
    let mut h = P5.wrapping_add(8);
    h ^= round(0, word);
    h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    avalanche(h)
}

/// The hash of a finite number: `-0.0` and `0.0` are the same value.
#[inline(always)]
pub(crate) fn hash_f64(x: f64) -> u64 {
    xxh64_u64((x + 0.0).to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vectors() {
        let cases: [(&[u8], u64); 8] = [
            (b"", 0xEF46_DB37_51D8_E999),
            (b"a", 0xD24E_C4F1_A98C_6E5B),
            (b"abc", 0x44BC_2CF5_AD77_0999),
            (b"Hello, World!", 0xC49A_ACF8_080F_E47F),
            (b"0123456789abcdef0123456789abcdef", 0x642A_9495_8E71_E6C5),
            (
                b"Nobody inspects the spammish repetition",
                0xFBCE_A83C_8A37_8BF1,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x0B24_2D36_1FDA_71BC,
            ),
            (&[b'a'; 32], 0x856E_8432_98F9_9AD7),
        ];
        for (input, want) in cases {
            assert_eq!(
                xxh64(input),
                want,
                "xxh64({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn word_hash_is_xxh64_of_its_bytes() {
        for word in [0u64, 1, 42, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 63] {
            assert_eq!(xxh64_u64(word), xxh64(&word.to_le_bytes()));
        }
        assert_eq!(hash_f64(-0.0), hash_f64(0.0));
        assert_ne!(hash_f64(1.0), hash_f64(-1.0));
    }
}
