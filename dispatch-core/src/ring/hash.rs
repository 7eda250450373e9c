//! The key hash: XXH64 with seed 0, written here so that every node, on every
//! platform, computes the same 64-bit value for the same key bytes.
//!
//! The function is the published XXH64 (xxHash 0.8, 64-bit variant). Input
//! words are read little-endian whatever the target's byte order, so a
//! big-endian node agrees with a little-endian one. Golden vectors in
//! `tests/ring_props.rs` pin it.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// The routing hash of a key: [`xxh64`] with seed 0.
///
/// This value is part of the wire contract: changing it would make nodes of
/// different versions route the same key to different instances.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh64(key, 0)
}

/// XXH64 of `bytes` with `seed`, bit-exact with the reference implementation.
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    let len = bytes.len() as u64;
    let mut rest = bytes;
    let mut h = if rest.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            let (stripe, tail) = rest.split_at(32);
            for (lane, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, read_u64(&stripe[lane * 8..]));
            }
            rest = tail;
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for acc in v {
            h = merge(h, acc);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= u64::from(read_u32(rest)).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    avalanche(h)
}

#[inline(always)]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline(always)]
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// The first 8 bytes of `b`, little-endian. Callers guarantee `b.len() >= 8`.
#[inline(always)]
fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// The first 4 bytes of `b`, little-endian. Callers guarantee `b.len() >= 4`.
#[inline(always)]
fn read_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}
