//! The index of the interned types by name.
//!
//! A bucket is one `u32`: the type slot in the top bits and, below it, a
//! few bits of the name's hash that rule out most other types before their
//! name is read. Four-byte buckets keep the table of a set with many types
//! small (a bulk merge that brings a type per entry probes it for each
//! entry), and the check bits keep those probes from reading the type
//! records of the types they pass over.
//!
//! The check bits leave 24 bits for the slot. A set that interns more
//! types than that rebuilds its index once with a single check bit, which
//! is room for every slot a set can have (fewer than 2^31, see
//! `members::MAX_RECORDS`).

use hashbrown::HashTable;

use super::store::spread;

/// Check bits while the type slots fit in the rest.
const CHECK_BITS: u32 = 8;

/// Check bits once the slots need more room: slots stay below 2^31.
const WIDE_CHECK_BITS: u32 = 1;

#[derive(Debug, Clone)]
pub(crate) struct TypeIndex {
    table: HashTable<u32>,
    /// How many low bits of a bucket are hash bits.
    check: u32,
}

impl Default for TypeIndex {
    fn default() -> Self {
        TypeIndex::with_check_bits(CHECK_BITS)
    }
}

impl TypeIndex {
    fn with_check_bits(check: u32) -> Self {
        TypeIndex {
            table: HashTable::new(),
            check,
        }
    }

    #[inline]
    fn mask(&self) -> u32 {
        (1 << self.check) - 1
    }

    /// The type whose name hashes to `h` and for which `is(t)` holds.
    #[inline]
    pub(crate) fn find(&self, h: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
        let (mask, check) = (self.mask(), self.check);
        self.table
            .find(spread(h), |&x| (x ^ h) & mask == 0 && is(x >> check))
            .map(|&x| x >> check)
    }

    /// Adds type slot `t`, absent, whose name hashes to `h`; `hash_of(t)`
    /// gives the hash of any indexed type, for growing the table.
    #[inline]
    pub(crate) fn insert(&mut self, t: u32, h: u32, hash_of: impl Fn(u32) -> u32) {
        if u64::from(t) >> (32 - self.check) != 0 {
            self.widen(&hash_of);
        }
        let (mask, check) = (self.mask(), self.check);
        let rehash = |&x: &u32| spread(hash_of(x >> check));
        self.table
            .insert_unique(spread(h), (t << check) | (h & mask), rehash);
    }

    /// Removes type slot `t`, whose name hashes to `h`.
    pub(crate) fn remove(&mut self, t: u32, h: u32) {
        let check = self.check;
        if let Ok(e) = self.table.find_entry(spread(h), |&x| x >> check == t) {
            e.remove();
        }
    }

    /// Makes room for `n` more types.
    pub(crate) fn reserve(&mut self, n: usize, hash_of: impl Fn(u32) -> u32) {
        let check = self.check;
        self.table
            .reserve(n, |&x: &u32| spread(hash_of(x >> check)));
    }

    /// Rebuilds the table with room for every slot a set can have.
    #[cold]
    fn widen(&mut self, hash_of: &impl Fn(u32) -> u32) {
        let old = core::mem::replace(self, TypeIndex::with_check_bits(WIDE_CHECK_BITS));
        let (mask, check) = (self.mask(), self.check);
        let rehash = |&x: &u32| spread(hash_of(x >> check));
        self.table.reserve(old.table.len(), rehash);
        for x in old.table {
            let t = x >> old.check;
            let h = hash_of(t);
            self.table
                .insert_unique(spread(h), (t << check) | (h & mask), rehash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TypeIndex;
    use alloc::vec::Vec;

    /// A hash with many collisions in its low bits, so that the check bits
    /// and the name comparison both matter.
    fn h(t: u32) -> u32 {
        (t % 7).wrapping_mul(0x9e37_79b9) ^ (t % 3)
    }

    #[test]
    fn finds_what_it_holds_before_and_after_widening() {
        // Six slot bits before the index must widen.
        let mut ix = TypeIndex::with_check_bits(26);
        let mut held = Vec::new();
        for t in 0..200u32 {
            ix.insert(t, h(t), h);
            held.push(t);
            if t % 5 == 0 {
                ix.remove(t / 2, h(t / 2));
                held.retain(|&x| x != t / 2);
            }
        }
        assert!(ix.check < 26, "the index widened");
        for t in 0..200u32 {
            let found = ix.find(h(t), |x| x == t);
            assert_eq!(found.is_some(), held.contains(&t), "type {t}");
        }
        assert_eq!(ix.table.len(), held.len());
    }
}
