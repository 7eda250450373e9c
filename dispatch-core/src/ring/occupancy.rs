//! A set of slots as a bitset, with its size and largest member kept at hand
//! so that a lookup reads them in O(1).

use super::Slot;
use alloc::vec::Vec;

/// A set of slot numbers. Storage grows to the largest slot in the set and
/// shrinks back when the top slots empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Occupancy {
    words: Vec<u64>,
    len: u32,
    max: Option<Slot>,
}

impl Occupancy {
    /// Adds `slot`; does nothing if it is already in.
    pub(crate) fn insert(&mut self, slot: Slot) {
        let (w, bit) = split(slot);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        if self.words[w] & bit == 0 {
            self.words[w] |= bit;
            self.len += 1;
            self.max = Some(self.max.map_or(slot, |m| m.max(slot)));
        }
    }

    /// Removes `slot`; does nothing if it is not in.
    pub(crate) fn remove(&mut self, slot: Slot) {
        let (w, bit) = split(slot);
        let Some(word) = self.words.get_mut(w) else {
            return;
        };
        if *word & bit == 0 {
            return;
        }
        *word &= !bit;
        self.len -= 1;
        if self.max == Some(slot) {
            while self.words.last() == Some(&0) {
                self.words.pop();
            }
            self.max = self
                .words
                .last()
                .map(|&top| ((self.words.len() - 1) * 64) as Slot + (63 - top.leading_zeros()));
        }
    }

    /// Adds `slot` if `present`, removes it otherwise.
    pub(crate) fn set(&mut self, slot: Slot, present: bool) {
        if present {
            self.insert(slot);
        } else {
            self.remove(slot);
        }
    }

    /// Whether `slot` is in the set.
    #[inline(always)]
    pub(crate) fn contains(&self, slot: Slot) -> bool {
        let (w, bit) = split(slot);
        self.words.get(w).is_some_and(|&word| word & bit != 0)
    }

    /// How many slots are in the set.
    #[inline(always)]
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// The largest slot in the set.
    #[inline(always)]
    pub(crate) fn max(&self) -> Option<Slot> {
        self.max
    }

    /// The smallest slot not in the set.
    pub(crate) fn first_vacant(&self) -> u64 {
        self.words
            .iter()
            .position(|&w| w != u64::MAX)
            .map_or(self.words.len() as u64 * 64, |w| {
                w as u64 * 64 + u64::from(self.words[w].trailing_ones())
            })
    }

    /// The slots in the set, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            core::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let b = rest.trailing_zeros();
                rest &= rest - 1;
                Some((w * 64) as Slot + b)
            })
        })
    }
}

#[inline(always)]
fn split(slot: Slot) -> (usize, u64) {
    ((slot / 64) as usize, 1u64 << (slot % 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn tracks_len_max_and_vacancy() {
        let mut o = Occupancy::default();
        assert_eq!((o.len(), o.max(), o.first_vacant()), (0, None, 0));
        for s in [0, 1, 2, 64, 130] {
            o.insert(s);
        }
        o.insert(2);
        assert_eq!((o.len(), o.max(), o.first_vacant()), (5, Some(130), 3));
        o.remove(130);
        assert_eq!((o.len(), o.max()), (4, Some(64)));
        o.remove(64);
        o.remove(64);
        assert_eq!((o.len(), o.max()), (3, Some(2)));
        assert_eq!(o.iter().collect::<alloc::vec::Vec<_>>(), vec![0, 1, 2]);
        for s in 0..64 {
            o.insert(s);
        }
        assert_eq!(o.first_vacant(), 64);
        assert!(o.contains(63) && !o.contains(64) && !o.contains(100_000));
    }
}
