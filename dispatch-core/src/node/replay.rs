//! The replay window: which nonces of one sender incarnation were already
//! accepted.
//!
//! A sender numbers its sealed datagrams with one counter for all its
//! receivers, so a receiver sees gaps (datagrams that went to others) and,
//! on a reordering network, late arrivals. The window keeps the highest
//! nonce accepted and a bitmap of the [`WINDOW`] below it: a nonce in the
//! bitmap, or below it, is refused. It is checked only after the tag has
//! verified, so a forger cannot move it.

/// How many nonces below the highest accepted one the window remembers.
/// A datagram overtaken by more than this many of the sender's later
/// datagrams (to anyone) is refused as too old.
pub const WINDOW: u32 = 1024;

const WORDS: usize = WINDOW as usize / 64;

/// Nonces accepted from one sender incarnation. 136 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// The highest nonce accepted, if any.
    top: Option<u128>,
    /// Bit `i` set: nonce `top - i` was accepted (bit 0 is `top` itself).
    seen: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: None,
            seen: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Accepts `nonce` if it was not accepted before and is not too old,
    /// remembering it.
    pub(crate) fn accept(&mut self, nonce: u128) -> bool {
        let Some(top) = self.top else {
            self.top = Some(nonce);
            self.seen = [0; WORDS];
            self.seen[0] = 1;
            return true;
        };
        if nonce > top {
            self.shift(nonce - top);
            self.top = Some(nonce);
            self.seen[0] |= 1;
            return true;
        }
        let back = top - nonce;
        if back >= u128::from(WINDOW) {
            return false;
        }
        let (word, bit) = (back as usize / 64, back as u32 % 64);
        if self.seen[word] & (1 << bit) != 0 {
            return false;
        }
        self.seen[word] |= 1 << bit;
        true
    }

    /// Moves the bitmap `by` nonces up (older bits fall off the end).
    fn shift(&mut self, by: u128) {
        if by >= u128::from(WINDOW) {
            self.seen = [0; WORDS];
            return;
        }
        let (words, bits) = (by as usize / 64, by as u32 % 64);
        for i in (0..WORDS).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let below = i.checked_sub(words + 1).map_or(0, |j| self.seen[j]);
            self.seen[i] = if bits == 0 {
                lo
            } else {
                lo << bits | below >> (64 - bits)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn replays_and_old_nonces_are_refused() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(1000));
        assert!(!w.accept(1000));
        assert!(w.accept(1003));
        assert!(w.accept(1001), "reordered, not seen");
        assert!(!w.accept(1001));
        assert!(w.accept(1000 + u128::from(WINDOW) + 1));
        assert!(!w.accept(1001), "fell out of the window");
        assert!(!w.accept(1003), "still remembered");
        assert!(w.accept(1002 + u128::from(WINDOW)));
    }

    proptest! {
        /// Against a model that remembers everything: the window accepts a
        /// nonce exactly when it is new and within WINDOW of the highest.
        #[test]
        fn the_window_matches_a_model(steps in prop::collection::vec(0u128..3000, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = BTreeSet::new();
            let mut top: Option<u128> = None;
            for n in steps {
                let fresh = !seen.contains(&n)
                    && top.is_none_or(|t| n > t || t - n < u128::from(WINDOW));
                prop_assert_eq!(w.accept(n), fresh, "nonce {}", n);
                if fresh {
                    seen.insert(n);
                    top = Some(top.map_or(n, |t| t.max(n)));
                }
            }
        }
    }
}
