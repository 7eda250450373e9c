//! [`Rings`]: one [`Ring`] per service type, updated one change at a time.

use super::{Claim, Member, Ring, Routing, Slot, SlotOutOfRange, DEFAULT_SLOT_LIMIT};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The rings of every service type `T`, with members keyed by `K`.
///
/// Each change touches the ring of its own type only, so the presence set's
/// join/leave diff is applied entry by entry and no ring is rebuilt. A ring
/// that loses its last member is dropped.
#[derive(Debug, Clone)]
pub struct Rings<T, K> {
    rings: BTreeMap<T, Ring<K>>,
    slot_limit: Slot,
}

impl<T: Ord, K: Ord + Clone> Default for Rings<T, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Ord, K: Ord + Clone> Rings<T, K> {
    /// No rings; each new ring accepts slots below [`DEFAULT_SLOT_LIMIT`].
    pub fn new() -> Self {
        Self::with_slot_limit(DEFAULT_SLOT_LIMIT)
    }

    /// No rings; each new ring accepts slots below `slot_limit`.
    pub fn with_slot_limit(slot_limit: Slot) -> Self {
        Rings {
            rings: BTreeMap::new(),
            slot_limit,
        }
    }

    /// [`Ring::insert`] into the ring of `ty`, created if needed. On error
    /// nothing changes.
    pub fn insert(
        &mut self,
        ty: T,
        key: K,
        slot: Slot,
        online: bool,
    ) -> Result<Claim, SlotOutOfRange> {
        if slot >= self.slot_limit {
            return Err(SlotOutOfRange {
                slot,
                limit: self.slot_limit,
            });
        }
        let limit = self.slot_limit;
        self.rings
            .entry(ty)
            .or_insert_with(|| Ring::with_slot_limit(limit))
            .insert(key, slot, online)
    }

    /// [`Ring::remove`] from the ring of `ty`.
    pub fn remove(&mut self, ty: &T, key: &K) -> Option<Member> {
        let ring = self.rings.get_mut(ty)?;
        let removed = ring.remove(key);
        if ring.is_empty() {
            self.rings.remove(ty);
        }
        removed
    }

    /// [`Ring::set_online`] in the ring of `ty`.
    pub fn set_online(&mut self, ty: &T, key: &K, online: bool) -> bool {
        self.rings
            .get_mut(ty)
            .is_some_and(|r| r.set_online(key, online))
    }

    /// The ring of `ty`, `None` if the type has no member.
    pub fn ring(&self, ty: &T) -> Option<&Ring<K>> {
        self.rings.get(ty)
    }

    /// [`Ring::lookup`] in the ring of `ty`.
    pub fn lookup(&self, ty: &T, key: &[u8], routing: Routing) -> Option<&K> {
        self.rings.get(ty)?.lookup(key, routing)
    }

    /// [`Ring::lookup_n`] in the ring of `ty` (empty for an unknown type).
    pub fn lookup_n(&self, ty: &T, key: &[u8], n: usize, routing: Routing) -> Vec<&K> {
        self.rings
            .get(ty)
            .map(|r| r.lookup_n(key, n, routing))
            .unwrap_or_default()
    }

    /// [`Ring::free_slot`] of `ty`; 0 for a type with no member.
    pub fn free_slot(&self, ty: &T) -> Option<Slot> {
        self.rings.get(ty).map_or(Some(0), Ring::free_slot)
    }

    /// Every type with at least one member, with its ring.
    pub fn iter(&self) -> impl Iterator<Item = (&T, &Ring<K>)> + '_ {
        self.rings.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_touches_its_own_type_only() {
        let mut rings = Rings::new();
        rings.insert("up", 1u32, 0, true).unwrap();
        rings.insert("down", 2u32, 0, true).unwrap();
        assert_eq!(rings.lookup(&"up", b"x", Routing::OnlineOnly), Some(&1));
        assert_eq!(rings.free_slot(&"up"), Some(1));
        assert_eq!(rings.free_slot(&"none"), Some(0));
        assert_eq!(
            rings.remove(&"up", &1),
            Some(Member {
                slot: 0,
                online: true
            })
        );
        assert!(rings.ring(&"up").is_none());
        assert_eq!(rings.lookup(&"down", b"x", Routing::OnlineOnly), Some(&2));
        assert!(rings
            .lookup_n(&"up", b"x", 2, Routing::OnlineOnly)
            .is_empty());
    }
}
