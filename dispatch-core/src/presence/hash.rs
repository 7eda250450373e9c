//! The keyed hash of the indexes.
//!
//! Peers choose the strings we index, so the hash is keyed by
//! `Config::hash_seed`: without the seed an attacker cannot aim many keys at
//! one bucket. It is a folded-multiply hash in the style of wyhash and
//! foldhash, integer-only; it is not a MAC and is never sent on the wire.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const P3: u64 = 0x5899_65cc_7537_4cc3;

/// A keyed hasher; `Copy`, so closures can take it by value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed {
    k0: u64,
    k1: u64,
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The little-endian value of up to eight bytes, read without copying them
/// into a buffer first (whose wide reload would stall on the byte stores).
#[inline]
pub(crate) fn tail_le(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        // Two overlapping reads: the shared bytes are equal, so OR is exact.
        let lo = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
        lo | hi << ((n - 4) * 8)
    } else if n > 0 {
        u64::from(b[0]) | u64::from(b[n / 2]) << (n / 2 * 8) | u64::from(b[n - 1]) << ((n - 1) * 8)
    } else {
        0
    }
}

impl Keyed {
    /// A hasher keyed by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let k0 = splitmix(seed);
        Keyed {
            k0,
            k1: splitmix(k0) | 1,
        }
    }

    /// The hash of a byte string. Always inlined: it is on every insert
    /// and lookup path, and as a call it costs a good part of itself.
    #[inline(always)]
    pub(crate) fn bytes(&self, b: &[u8]) -> u64 {
        let n = b.len();
        if n < 16 {
            // Service types and ids are mostly this short. Two words hold
            // the bytes (from 8 on, the first eight and the last eight,
            // overlapping), which is one-to-one for a given length; the
            // length turns the key, so that strings of two lengths meet
            // only by chance of the key. One keyed fold mixes them.
            let (lo, hi) = if n >= 8 {
                let (mut a, mut z) = ([0u8; 8], [0u8; 8]);
                a.copy_from_slice(&b[..8]);
                z.copy_from_slice(&b[n - 8..]);
                (u64::from_le_bytes(a), u64::from_le_bytes(z))
            } else {
                (tail_le(b), 0)
            };
            let h = fold(lo ^ self.k0, hi ^ self.k1.rotate_left(n as u32 * 4));
            return fold(h ^ P0, P2 ^ self.k0);
        }
        let mut h = self.k0 ^ fold(b.len() as u64 ^ P0, self.k1);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = fold(h ^ u64::from_le_bytes(w) ^ P1, self.k1 ^ P2);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            h = fold(h ^ tail_le(rest) ^ P3, self.k1 ^ P1);
        }
        fold(h ^ self.k0, P2)
    }

    /// The hash of two words.
    #[inline]
    pub(crate) fn words(&self, a: u64, b: u64) -> u64 {
        fold(fold(a ^ self.k0 ^ P0, b ^ self.k1 ^ P1), P3 ^ self.k0)
    }
}

#[cfg(test)]
mod tests {
    use super::Keyed;

    #[test]
    fn seed_changes_hash_and_inputs_are_distinguished() {
        let a = Keyed::new(1);
        let b = Keyed::new(2);
        assert_ne!(a.bytes(b"user1"), b.bytes(b"user1"));
        assert_ne!(a.bytes(b"user1"), a.bytes(b"user2"));
        assert_ne!(a.bytes(b""), a.bytes(b"\0"));
        assert_ne!(a.bytes(b"12345678"), a.bytes(b"123456789"));
        assert_ne!(a.words(1, 2), a.words(2, 1));
        assert_eq!(a.bytes(b"topic"), Keyed::new(1).bytes(b"topic"));
    }

    #[test]
    fn strings_that_differ_hash_apart_at_every_length() {
        // Zero bytes against shorter strings, the last short length against
        // the first long one, and one byte changed anywhere.
        let k = Keyed::new(7);
        let mut seen = std::collections::HashSet::new();
        for n in 0..=40usize {
            let zeros = std::vec![0u8; n];
            assert!(seen.insert(k.bytes(&zeros)), "{n} zero bytes");
            let ones = std::vec![1u8; n];
            assert!(n == 0 || seen.insert(k.bytes(&ones)), "{n} one bytes");
            for at in 0..n {
                let mut x = ones.clone();
                x[at] = 2;
                assert!(seen.insert(k.bytes(&x)), "{n} bytes, {at} changed");
            }
        }
    }

    #[test]
    fn tail_is_the_little_endian_value() {
        let b = b"\x01\x02\x03\x04\x05\x06\x07\x08";
        for n in 0..=8 {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&b[..n]);
            assert_eq!(super::tail_le(&b[..n]), u64::from_le_bytes(w), "{n} bytes");
        }
    }
}
