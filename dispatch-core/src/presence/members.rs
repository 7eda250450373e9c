//! The members of a type: its entries in read order.

use alloc::vec::Vec;

use super::hash::tail_le;
use super::Presence;

/// A member of a type in a list: a slab index and the first eight bytes of
/// its id (big-endian, zero-padded), so that ordering members seldom reads
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// The slab index of the record.
    pub(crate) idx: u32,
    key: [u32; 2],
}

/// The first eight bytes of an id as a number (big-endian, zero-padded):
/// where two differ, the ids are ordered as these numbers are.
#[inline]
pub(crate) fn id_prefix(id: &[u8]) -> u64 {
    tail_le(&id[..id.len().min(8)]).swap_bytes()
}

impl Member {
    #[inline]
    pub(crate) fn new(idx: u32, id: &[u8]) -> Self {
        let k = id_prefix(id);
        Member {
            idx,
            key: [(k >> 32) as u32, k as u32],
        }
    }

    /// The id prefix as a number: where two differ, the ids are ordered as
    /// these numbers are; where they are equal, the ids must be compared.
    #[inline]
    pub(crate) fn prefix(&self) -> u64 {
        (u64::from(self.key[0]) << 32) | u64::from(self.key[1])
    }
}

/// The members of a type: none, one (its slab index alone: a type named
/// after an instance has one, and such types are most of the types of a
/// large set, so their records stay small), or two or more in a list of
/// [`Presence`]'s, each with its id prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Members {
    Empty,
    One(u32),
    /// A list's slot in `Presence::lists`.
    Many(u32),
}

/// [`Members`] in the four bytes of a type record: `u32::MAX` for none, a
/// slab index below [`MAX_RECORDS`] for one, and a list slot with the top
/// bit set for two or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed(u32);

/// Slab indexes stay below this, so that the top bit of [`Packed`] is free
/// (merges and adds that would pass it are refused).
pub(crate) const MAX_RECORDS: usize = (1 << 31) - 1;

const MANY: u32 = 1 << 31;

/// Whether a set holding `live` records has room for `new` more: slab
/// indexes must stay below [`MAX_RECORDS`].
#[inline]
pub(crate) fn records_fit(live: usize, new: usize) -> bool {
    live.saturating_add(new) <= MAX_RECORDS
}

impl Packed {
    pub(crate) const EMPTY: Packed = Packed(u32::MAX);

    #[inline]
    pub(crate) fn of(m: Members) -> Packed {
        match m {
            Members::Empty => Packed::EMPTY,
            Members::One(i) => {
                debug_assert!((i as usize) < MAX_RECORDS);
                Packed(i)
            }
            Members::Many(k) => {
                debug_assert!((k as usize) < MAX_RECORDS);
                Packed(MANY | k)
            }
        }
    }

    #[inline]
    pub(crate) fn get(self) -> Members {
        match self.0 {
            u32::MAX => Members::Empty,
            x if x & MANY == 0 => Members::One(x),
            x => Members::Many(x & !MANY),
        }
    }
}

/// A type's members as read, in read order: one slab index, or a list.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listed<'a> {
    One(u32),
    List(&'a [Member]),
}

impl<'a> Listed<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Listed::One(_) => 1,
            Listed::List(l) => l.len(),
        }
    }

    /// The slab index of the `k`-th member (`k < len`).
    #[inline]
    pub(crate) fn idx(&self, k: usize) -> u32 {
        match self {
            Listed::One(i) => *i,
            Listed::List(l) => l[k].idx,
        }
    }

    /// The slab indexes in read order.
    pub(crate) fn iter(self) -> impl Iterator<Item = u32> + 'a {
        (0..self.len()).map(move |k| self.idx(k))
    }
}

impl Presence {
    /// The members of the live type `t`, in read order.
    #[inline]
    pub(crate) fn listed(&self, t: u32) -> Listed<'_> {
        match self.type_members(t) {
            Members::Empty => Listed::List(&[]),
            Members::One(i) => Listed::One(i),
            Members::Many(k) => Listed::List(&self.lists[k as usize]),
        }
    }

    /// How the live type `t` holds its members.
    #[inline]
    pub(crate) fn type_members(&self, t: u32) -> Members {
        self.types[t as usize]
            .as_ref()
            .expect("a record's type is live")
            .members
            .get()
    }

    fn set_type_members(&mut self, t: u32, m: Members) {
        self.types[t as usize]
            .as_mut()
            .expect("a record's type is live")
            .members = Packed::of(m);
    }

    /// The members of the live type `t` as a list member, reading the
    /// record of a lone member for its id prefix.
    pub(crate) fn member_list(&self, t: u32) -> Vec<Member> {
        match self.listed(t) {
            Listed::One(i) => alloc::vec![Member::new(i, self.record(i).id_bytes())],
            Listed::List(l) => l.to_vec(),
        }
    }

    /// Puts `key` at position `at` among the members of the live type `t`.
    // Always inlined, for the reason given at `Presence::put_record`.
    #[inline(always)]
    pub(crate) fn insert_member(&mut self, t: u32, at: usize, key: Member) {
        match self.type_members(t) {
            Members::Empty => self.set_type_members(t, Members::One(key.idx)),
            Members::One(i) => {
                let one = Member::new(i, self.record(i).id_bytes());
                let mut v = Vec::with_capacity(2);
                v.push(one);
                v.insert(at, key);
                let k = self.new_list(v);
                self.set_type_members(t, Members::Many(k));
            }
            Members::Many(k) => self.lists[k as usize].insert(at, key),
        }
    }

    /// Makes `v`, in read order, the members of the live type `t`.
    pub(crate) fn set_members(&mut self, t: u32, v: Vec<Member>) {
        let m = match (self.type_members(t), v.len()) {
            (Members::Many(k), n) if n >= 2 => {
                self.lists[k as usize] = v;
                Members::Many(k)
            }
            (old, n) => {
                if let Members::Many(k) = old {
                    self.free_list(k);
                }
                match n {
                    0 => Members::Empty,
                    1 => Members::One(v[0].idx),
                    _ => Members::Many(self.new_list(v)),
                }
            }
        };
        self.set_type_members(t, m);
    }

    /// Keeps only the members of the live type `t` that `keep` accepts.
    pub(crate) fn retain_members(&mut self, t: u32, keep: impl Fn(u32) -> bool) {
        match self.type_members(t) {
            Members::Empty => {}
            Members::One(i) => {
                if !keep(i) {
                    self.set_type_members(t, Members::Empty);
                }
            }
            Members::Many(k) => {
                self.lists[k as usize].retain(|m| keep(m.idx));
                self.shrink_members(t, k);
            }
        }
    }

    /// Removes the member at position `at` of the live type `t`.
    pub(crate) fn remove_member(&mut self, t: u32, at: usize) {
        match self.type_members(t) {
            Members::Empty => {}
            Members::One(_) => self.set_type_members(t, Members::Empty),
            Members::Many(k) => {
                self.lists[k as usize].remove(at);
                self.shrink_members(t, k);
            }
        }
    }

    /// Turns the list `k` of type `t` into the smaller forms when it holds
    /// fewer than two members.
    fn shrink_members(&mut self, t: u32, k: u32) {
        let m = match self.lists[k as usize].as_slice() {
            [] => Members::Empty,
            [one] => Members::One(one.idx),
            _ => return,
        };
        self.free_list(k);
        self.set_type_members(t, m);
    }

    /// Stores a member list and returns its slot.
    fn new_list(&mut self, v: Vec<Member>) -> u32 {
        match self.free_lists.pop() {
            Some(k) => {
                self.lists[k as usize] = v;
                k
            }
            None => {
                self.lists.push(v);
                (self.lists.len() - 1) as u32
            }
        }
    }

    /// Frees the list slot `k` and its memory.
    fn free_list(&mut self, k: u32) {
        self.lists[k as usize] = Vec::new();
        self.free_lists.push(k);
    }
}

#[cfg(test)]
mod tests {
    use super::{records_fit, Members, Packed, MAX_RECORDS};

    #[test]
    fn the_set_takes_records_up_to_its_limit_and_no_more() {
        assert!(records_fit(0, MAX_RECORDS));
        assert!(records_fit(MAX_RECORDS - 1, 1));
        assert!(!records_fit(MAX_RECORDS, 1));
        assert!(!records_fit(MAX_RECORDS - 1, 2));
        assert!(!records_fit(usize::MAX, usize::MAX));
        assert!(records_fit(MAX_RECORDS, 0));
    }

    #[test]
    fn packed_members_read_back_as_stored() {
        let top = (MAX_RECORDS - 1) as u32;
        for m in [
            Members::Empty,
            Members::One(0),
            Members::One(top),
            Members::Many(0),
            Members::Many(top),
        ] {
            assert_eq!(Packed::of(m).get(), m);
        }
    }
}
