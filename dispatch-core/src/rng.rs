//! The seeded pseudo-random generator of the core and its simulator.
//!
//! xoshiro256** seeded through splitmix64: small, fast, no dependency, and
//! the same sequence on every platform, so a seed replays the same run
//! anywhere. The node draws from it for its own choices (transfer identifiers,
//! timer jitter) with a seed from its configuration. Not for cryptography.

/// A seeded xoshiro256** generator. The same seed gives the same sequence on
/// every platform.
///
/// Tests may use it for their own endpoints (for example to pick a gossip
/// peer) so that the whole run follows from one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

/// One part per million of certainty: [`Rng::chance`] of `PPM` is "always".
pub const PPM: u32 = 1_000_000;

impl Rng {
    /// A generator whose whole sequence follows from `seed`. Any seed,
    /// including zero, is fine: splitmix64 spreads it over the state.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut sm);
        }
        Rng { s }
    }

    /// A new generator seeded from this one, for a component that should
    /// draw from its own stream (so adding draws to one part of a test does
    /// not shift every other part).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..bound`, without modulo bias; `0` when
    /// `bound` is `0`.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Lemire's widening multiply with rejection of the biased low zone.
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(bound);
            // The low half is below `threshold` with probability < bound / 2^64.
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// `true` with probability `ppm` parts per million ([`PPM`] or more is
    /// always true, `0` never).
    pub fn chance(&mut self, ppm: u32) -> bool {
        match ppm {
            0 => false,
            p if p >= PPM => true,
            p => self.below(u64::from(PPM)) < u64::from(p),
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_golden_values() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: [u64; 4] = core::array::from_fn(|_| a.next_u64());
        let ys: [u64; 4] = core::array::from_fn(|_| b.next_u64());
        assert_eq!(xs, ys);
        assert_ne!(xs, core::array::from_fn(|_| Rng::new(43).next_u64()));
        // splitmix64 reference output for seed 0 (Vigna's splitmix64.c).
        let mut sm = 0;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn below_stays_in_bounds_and_covers_them() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let x = r.below(7);
            assert!(x < 7);
            seen[x as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn chance_matches_its_rate() {
        let mut r = Rng::new(7);
        assert!(!r.chance(0));
        assert!(r.chance(PPM));
        let hits = (0..100_000).filter(|_| r.chance(250_000)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
    }
}
