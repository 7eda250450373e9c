//! The range hash: jump points of jump consistent hashing, generated one
//! power-of-two interval at a time, and the bucket they give a key.
//!
//! For a seed, the set `J` of jump points contains 0, and each `j >= 1`
//! independently with probability `1/(j+1)`. Jump consistent hashing maps a
//! key to `max(J ∩ [0, c))` for `c` buckets ([`bucket`]), uniform over the
//! buckets; growing `c` moves a key only to the new bucket. The ring draws
//! one bucket a round, each round from a fresh seed, until one is held.
//!
//! `J` is drawn per interval `[2^i, 2^(i+1))`. Bit `i` of the seed says
//! whether the interval holds any jump point (probability exactly 1/2). If it
//! does, its largest point is uniform in the interval; below a point `x` the
//! next one is uniform in `[0, x)`, and the interval ends at the first draw
//! below `2^i`. This is the exact jump-hash distribution (the idea behind
//! JumpBackHash), so with every slot of `[0, c)` usable the owner is the
//! jump-hash bucket, uniform over the slots. Draws are integer-only: a
//! wyrand step (one 64x64→128 multiply) per draw, scaled to the range by a
//! multiply-shift.

use super::Slot;

/// Spreads interval numbers apart so that their streams do not overlap.
const INTERVAL: u64 = 0xD1B5_4A32_D192_ED03;
/// wyrand's increment and xor constant: the draw stream of one interval.
const WY_ADD: u64 = 0xA076_1D64_78BD_642F;
const WY_XOR: u64 = 0xE703_7ED1_A0B4_28DB;
/// Salt of the per-(replica, round) seeds.
const ROUND: u64 = 0x8CB9_2BA7_2F3D_8DD7;
/// Replicas and rounds whose seed salts are precomputed.
const TABLE: usize = 8;

/// splitmix64's output function: a bijective 64-bit mixer.
#[inline(always)]
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The salt of replica `replica`, round `round`.
const fn salt(replica: u32, round: u32) -> u64 {
    let tag = ((replica as u64) << 32) | round as u64;
    mix(tag.wrapping_mul(ROUND).wrapping_add(WY_ADD))
}

/// [`salt`] for the first replicas and rounds, so that a lookup does not
/// compute it.
const SALTS: [[u64; TABLE]; TABLE] = {
    let mut t = [[0; TABLE]; TABLE];
    let mut r = 0;
    while r < TABLE {
        let mut k = 0;
        while k < TABLE {
            t[r][k] = salt(r as u32, k as u32);
            k += 1;
        }
        r += 1;
    }
    t
};

/// The next word of a wyrand stream: one 64x64→128 multiply.
#[inline(always)]
fn draw(state: &mut u64) -> u64 {
    *state = state.wrapping_add(WY_ADD);
    let r = u128::from(*state) * u128::from(*state ^ WY_XOR);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A uniform integer in `[0, p)` from a uniform 64-bit `word` (Lemire's
/// multiply-shift; the bias is below `p / 2^64`).
#[inline(always)]
fn below(word: u64, p: u64) -> u64 {
    ((u128::from(word) * u128::from(p)) >> 64) as u64
}

/// The seed of the probe for `replica` (0 = owner) in `round` (0 = first try)
/// of the key whose [`key_hash`](super::key_hash) is `hash`.
///
/// Replica 0, round 0 uses the key hash itself; every other pair draws an
/// independent set of jump points.
#[inline(always)]
pub(crate) fn seed(hash: u64, replica: u32, round: u32) -> u64 {
    if replica == 0 && round == 0 {
        hash
    } else if (replica as usize) < TABLE && (round as usize) < TABLE {
        mix(hash ^ SALTS[replica as usize][round as usize])
    } else {
        mix(hash ^ salt(replica, round))
    }
}

/// The largest jump point of `seed` that is at most `max` and `usable`, or
/// `None` when no jump point (0 included) is usable. [`bucket`] is the
/// probe with every slot usable.
///
/// Expected cost with every slot of `[0, max]` usable: about two intervals
/// visited and two draws, whatever `max`.
#[inline(always)]
pub(crate) fn probe(seed: u64, max: Slot, mut usable: impl FnMut(Slot) -> bool) -> Option<Slot> {
    if max > 0 {
        let top = 31 - max.leading_zeros();
        // Bit i set: the interval [2^i, 2^(i+1)) holds at least one jump point.
        let mut nonempty = (seed as u32) & (u32::MAX >> (31 - top));
        while nonempty != 0 {
            let i = 31 - nonempty.leading_zeros();
            nonempty ^= 1 << i;
            let lo = 1u64 << i;
            let mut state = seed.wrapping_add(u64::from(i + 1).wrapping_mul(INTERVAL));
            // The largest point: uniform in [2^i, 2^(i+1)), from the top i bits.
            let mut x = lo + ((draw(&mut state) >> 1) >> (63 - i));
            loop {
                // x < 2^32 since i <= 31.
                if x <= u64::from(max) && usable(x as Slot) {
                    return Some(x as Slot);
                }
                x = below(draw(&mut state), x);
                if x < lo {
                    break;
                }
            }
        }
    }
    if usable(0) {
        Some(0)
    } else {
        None
    }
}

/// The jump-hash bucket of `seed` for the slots `[0, max]`: its largest
/// jump point at most `max`, uniform over those slots.
#[inline(always)]
pub(crate) fn bucket(seed: u64, max: Slot) -> Slot {
    // Slot 0 is always a jump point, so the probe always finds one.
    probe(seed, max, |_| true).unwrap_or(0)
}

/// The weight of `slot` for the highest-random-weight fallback of `seed`:
/// distinct slots get distinct weights.
#[inline]
pub(crate) fn fallback_weight(seed: u64, slot: Slot) -> u64 {
    mix(seed ^ mix(u64::from(slot).wrapping_add(WY_ADD)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// With every slot usable, the owner for capacity c is uniform on [0, c),
    /// as jump consistent hashing promises.
    #[test]
    fn dense_probe_is_uniform() {
        let c = 37u32;
        let mut counts = vec![0u32; c as usize];
        let keys = 200_000u64;
        for k in 0..keys {
            let s = probe(mix(k), c - 1, |_| true).unwrap();
            counts[s as usize] += 1;
        }
        let mean = keys as u32 / c;
        for (slot, &n) in counts.iter().enumerate() {
            assert!(
                n.abs_diff(mean) < mean / 10,
                "slot {slot} got {n}, mean {mean}"
            );
        }
    }

    /// The dense probe agrees with the jump-point definition: growing the
    /// capacity by one moves a key only to the new bucket.
    #[test]
    fn dense_probe_is_consistent_in_capacity() {
        for k in 0..5_000u64 {
            let mut prev = probe(mix(k), 0, |_| true).unwrap();
            for max in 1..300u32 {
                let now = probe(mix(k), max, |_| true).unwrap();
                assert!(
                    now == prev || now == max,
                    "key {k} max {max}: {prev} -> {now}"
                );
                prev = now;
            }
        }
    }
}
