//! Slot claims and their conflict resolution.
//!
//! A member's slot is chosen by the node that owns the member, when it
//! registers it: the lowest slot free in that node's view of the type
//! ([`Ring::free_slot`](super::Ring::free_slot)). Two nodes that have not yet
//! seen each other's registration can claim the same slot. The rule that
//! settles it is pure, so every node that sees the same claims agrees: **the
//! slot is held by the claimant with the smallest member key**; the others
//! are contenders, not routable, until the holder leaves (then the next
//! smallest holds it) or until their node re-registers them on a free slot
//! (see [`Ring::displaced`](super::Ring::displaced)).

use super::Slot;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

/// What a claim gave the member that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    /// The member holds its slot: it is routable (subject to its online flag).
    Holds,
    /// A member with a smaller key holds the slot: this one is a contender,
    /// not routable until the holder leaves or it re-claims another slot.
    Contends,
}

/// Who claims which slot: the holder of each slot and the contenders.
#[derive(Debug, Clone)]
pub(crate) struct Claims<K> {
    /// Slot-indexed holders; trailing `None`s are trimmed.
    holders: Vec<Option<K>>,
    /// Claimants that lost their slot to a smaller key, by slot.
    contenders: BTreeMap<Slot, BTreeSet<K>>,
}

impl<K> Default for Claims<K> {
    fn default() -> Self {
        Claims {
            holders: Vec::new(),
            contenders: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Claims<K> {
    /// Records that `key` claims `slot`. The caller guarantees that `key`
    /// claims no slot yet.
    pub(crate) fn claim(&mut self, slot: Slot, key: K) -> Claim {
        let at = slot as usize;
        if at >= self.holders.len() {
            self.holders.resize_with(at + 1, || None);
        }
        match &mut self.holders[at] {
            None => {
                self.holders[at] = Some(key);
                Claim::Holds
            }
            Some(holder) if key < *holder => {
                let loser = core::mem::replace(holder, key);
                self.contenders.entry(slot).or_default().insert(loser);
                Claim::Holds
            }
            Some(_) => {
                self.contenders.entry(slot).or_default().insert(key);
                Claim::Contends
            }
        }
    }

    /// Withdraws `key`'s claim on `slot`. Returns whether `key` was the
    /// holder (then the smallest contender, if any, now holds the slot).
    pub(crate) fn release(&mut self, slot: Slot, key: &K) -> bool {
        let at = slot as usize;
        if self.holders.get(at).and_then(Option::as_ref) != Some(key) {
            if let Some(set) = self.contenders.get_mut(&slot) {
                set.remove(key);
                if set.is_empty() {
                    self.contenders.remove(&slot);
                }
            }
            return false;
        }
        let successor = self
            .contenders
            .get_mut(&slot)
            .and_then(|set| set.pop_first());
        if self.contenders.get(&slot).is_some_and(BTreeSet::is_empty) {
            self.contenders.remove(&slot);
        }
        self.holders[at] = successor;
        while self.holders.last().is_some_and(Option::is_none) {
            self.holders.pop();
        }
        true
    }

    /// The member holding `slot`.
    #[inline(always)]
    pub(crate) fn holder(&self, slot: Slot) -> Option<&K> {
        self.holders.get(slot as usize).and_then(Option::as_ref)
    }

    /// Every contender with the slot it claims, by slot then key.
    pub(crate) fn contenders(&self) -> impl Iterator<Item = (&K, Slot)> + '_ {
        self.contenders
            .iter()
            .flat_map(|(&slot, set)| set.iter().map(move |k| (k, slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_key_holds_and_successor_takes_over() {
        let mut c = Claims::default();
        assert_eq!(c.claim(3, "m"), Claim::Holds);
        assert_eq!(c.claim(3, "z"), Claim::Contends);
        assert_eq!(c.claim(3, "a"), Claim::Holds);
        assert_eq!(c.holder(3), Some(&"a"));
        assert_eq!(c.contenders().count(), 2);
        assert!(!c.release(3, &"z"));
        assert!(c.release(3, &"a"));
        assert_eq!(c.holder(3), Some(&"m"));
        assert_eq!(c.contenders().count(), 0);
        assert!(c.release(3, &"m"));
        assert_eq!(c.holder(3), None);
        assert!(c.holders.is_empty());
    }
}
