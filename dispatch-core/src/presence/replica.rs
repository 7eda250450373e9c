//! Replica identity and bookkeeping.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use super::index::Index;

/// A replica: a node name and the incarnation of this run of the node.
///
/// A node picks a new, larger incarnation on every restart; a newer
/// incarnation of a known name retires the older one and all its entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicaId {
    /// The node name, at most `Config::max_name_len` bytes.
    pub name: Box<str>,
    /// The incarnation; larger is newer.
    pub incarnation: u64,
}

impl ReplicaId {
    /// A replica id.
    pub fn new(name: &str, incarnation: u64) -> Self {
        ReplicaId {
            name: name.into(),
            incarnation,
        }
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.incarnation)
    }
}

/// What the set knows of one replica, from [`Presence::replicas`](super::Presence::replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo<'a> {
    /// The replica.
    pub id: &'a ReplicaId,
    /// The last clock of it we have merged.
    pub clock: u64,
    /// False while it is down (its entries are hidden).
    pub up: bool,
    /// How many entries it holds, hidden or not.
    pub entries: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct ReplicaSlot {
    pub(crate) id: ReplicaId,
    pub(crate) clock: u64,
    pub(crate) up: bool,
    /// Its entries by clock; also the index from its dots to records.
    pub(crate) entries: Dots,
    /// Its entries by id: slab index and the low 32 bits of the id's hash.
    pub(crate) ids: Index,
}

/// The slab index of a removed entry in [`Dots`], until compaction, and of
/// a clock a dense list skipped.
const HOLE: u32 = u32::MAX;

/// Holes beyond the live count that [`Dots`] tolerates before compacting.
const SLACK: usize = 16;

/// The entries of one replica by increasing clock: the clock and slab index
/// of each. It doubles as the index from a dot to its record.
///
/// While the clocks run on from the first one without a break (the usual
/// case: most operations of a replica add an entry, and deltas and extracts
/// bring them in clock order), the list is dense: only the slab indexes
/// are stored, position `k` holding clock `first + k`, so that an entry
/// costs 4 bytes rather than 12 and finding a clock is a subtraction. A
/// clock past the next one is taken as a few holes while the holes stay
/// within what compaction allows; otherwise (and for a clock below the
/// first) the clocks are written out and the list is sparse from then on.
/// A sparse list still finds a clock quickly where the clocks are dense:
/// they are distinct integers, so the position of a clock is bounded on
/// both sides by its distance to the first and last clocks.
///
/// A removed entry leaves a hole (its clock stays, so the order holds);
/// holes are squeezed out when they outnumber the live entries, so the
/// lists stay within twice the live entries plus [`SLACK`]. A dense list
/// first drops the holes at its two ends, which keeps it dense when the
/// oldest entries went first; an emptied list is dense again.
#[derive(Debug, Clone)]
pub(crate) struct Dots {
    /// The clock at each position; empty while the list is dense.
    clocks: Vec<u64>,
    /// Slab indexes, [`HOLE`] for removed entries and skipped clocks.
    slots: Vec<u32>,
    /// Whether position `k` holds clock `first + k` (and `clocks` is unused).
    dense: bool,
    /// The clock at position 0 of a dense list.
    first: u64,
    live: usize,
}

impl Default for Dots {
    fn default() -> Self {
        Dots {
            clocks: Vec::new(),
            slots: Vec::new(),
            dense: true,
            first: 0,
            live: 0,
        }
    }
}

impl Dots {
    /// How many live entries.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Positions that hold no live entry.
    fn holes(&self) -> usize {
        self.slots.len() - self.live
    }

    /// The clock at position `k` (`k` below the number of positions).
    #[inline]
    fn clock_at(&self, k: usize) -> u64 {
        if self.dense {
            self.first + k as u64
        } else {
            self.clocks[k]
        }
    }

    /// Makes room for `n` more entries.
    pub(crate) fn reserve(&mut self, n: usize) {
        if !self.dense {
            self.clocks.reserve(n);
        }
        self.slots.reserve(n);
    }

    /// Adds the entry with this clock, which no live entry of the list has.
    /// New entries usually have the next clock: then this is a push.
    #[inline]
    pub(crate) fn insert(&mut self, clock: u64, i: u32) {
        if self.dense {
            let n = self.slots.len();
            if n == 0 {
                self.first = clock;
            }
            // The clock after the last, unless the last is the largest.
            let next = self.first.checked_add(n as u64);
            if n == 0 || next == Some(clock) {
                self.slots.push(i);
                self.live += 1;
                return;
            }
            if self.insert_dense(clock, next, i) {
                return;
            }
            self.make_sparse();
        }
        if self.clocks.last().is_none_or(|&last| last < clock) {
            self.clocks.push(clock);
            self.slots.push(i);
            self.live += 1;
        } else {
            self.insert_before_last(clock, i);
        }
    }

    /// [`insert`](Self::insert) into a non-empty dense list of a clock
    /// other than `next`, the one after its last: fills a hole, or skips
    /// the clocks between as holes while the holes stay within what
    /// compaction allows. False if the list must become sparse for it.
    #[cold]
    fn insert_dense(&mut self, clock: u64, next: Option<u64>, i: u32) -> bool {
        if clock < self.first {
            return false;
        }
        let k = clock - self.first;
        if next.is_none_or(|next| clock < next) {
            // A position of the list: a hole, as the clock is not live.
            let k = k as usize;
            debug_assert!(self.slots[k] == HOLE);
            self.slots[k] = i;
            self.live += 1;
            return true;
        }
        let skip = k - self.slots.len() as u64;
        let room = (self.live + 1 + SLACK).saturating_sub(self.holes());
        if skip > room as u64 {
            return false;
        }
        self.slots.extend(core::iter::repeat_n(HOLE, skip as usize));
        self.slots.push(i);
        self.live += 1;
        true
    }

    /// Writes out the clocks of a dense list: it is sparse from then on.
    fn make_sparse(&mut self) {
        debug_assert!(self.dense && self.clocks.is_empty());
        let first = self.first;
        self.clocks = Vec::with_capacity(self.slots.capacity());
        self.clocks
            .extend((0..self.slots.len() as u64).map(|k| first + k));
        self.dense = false;
    }

    /// [`insert`](Self::insert) into a sparse list of a clock below its
    /// last one.
    #[cold]
    fn insert_before_last(&mut self, clock: u64, i: u32) {
        let p = self.clocks.partition_point(|&c| c < clock);
        debug_assert!(self.clocks[p] != clock || self.slots[p] == HOLE);
        if self.clocks[p] == clock {
            self.slots[p] = i;
        } else {
            self.clocks.insert(p, clock);
            self.slots.insert(p, i);
        }
        self.live += 1;
    }

    /// The position of `clock` in the list (live or hole), if it is there.
    fn position(&self, clock: u64) -> Option<usize> {
        if self.dense {
            let k = usize::try_from(clock.checked_sub(self.first)?).ok()?;
            return (k < self.slots.len()).then_some(k);
        }
        let (&first, &last) = (self.clocks.first()?, self.clocks.last()?);
        if clock < first || clock > last {
            return None;
        }
        // Distinct increasing integers: `clocks[k] >= first + k` and
        // `clocks[k] <= last - (len - 1 - k)`.
        let n = self.clocks.len();
        let hi = usize::try_from(clock - first).map_or(n - 1, |d| d.min(n - 1));
        let lo = usize::try_from(last - clock).map_or(0, |d| (n - 1).saturating_sub(d));
        let window = &self.clocks[lo..=hi];
        let k = lo + window.partition_point(|&c| c < clock);
        (self.clocks.get(k) == Some(&clock)).then_some(k)
    }

    /// How many positions hold clocks of at most `clock`.
    fn count_upto(&self, clock: u64) -> usize {
        if self.dense {
            match clock.checked_sub(self.first) {
                None => 0,
                Some(d) => usize::try_from(d)
                    .map_or(usize::MAX, |d| d.saturating_add(1))
                    .min(self.slots.len()),
            }
        } else {
            self.clocks.partition_point(|&c| c <= clock)
        }
    }

    /// The slab index of the live entry with this clock.
    pub(crate) fn get(&self, clock: u64) -> Option<u32> {
        let i = self.slots[self.position(clock)?];
        (i != HOLE).then_some(i)
    }

    /// Removes the live entry with this clock; compacts when the holes
    /// outnumber the live entries.
    pub(crate) fn remove(&mut self, clock: u64) {
        let Some(k) = self.position(clock) else {
            debug_assert!(false, "removed entries are listed");
            return;
        };
        debug_assert!(self.slots[k] != HOLE);
        self.slots[k] = HOLE;
        self.live -= 1;
        if self.live == 0 {
            // Empty: dense again, with no memory.
            *self = Dots::default();
        } else if self.holes() > self.live + SLACK {
            self.compact();
        }
    }

    fn compact(&mut self) {
        if self.dense {
            // Holes at either end go without breaking the run of clocks.
            let lead = self.slots.iter().take_while(|&&i| i == HOLE).count();
            self.slots.drain(..lead);
            self.first += lead as u64;
            let keep =
                self.slots.len() - self.slots.iter().rev().take_while(|&&i| i == HOLE).count();
            self.slots.truncate(keep);
            if self.holes() <= self.live + SLACK {
                self.shrink();
                return;
            }
            self.make_sparse();
        }
        let mut w = 0;
        for k in 0..self.slots.len() {
            if self.slots[k] != HOLE {
                self.clocks[w] = self.clocks[k];
                self.slots[w] = self.slots[k];
                w += 1;
            }
        }
        self.clocks.truncate(w);
        self.slots.truncate(w);
        self.shrink();
    }

    /// Gives memory back when the list fills less than a quarter of it.
    fn shrink(&mut self) {
        let n = self.slots.len();
        if self.slots.capacity() > 4 * n + 4 * SLACK {
            self.slots.shrink_to(2 * n);
            if !self.dense {
                self.clocks.shrink_to(2 * n);
            }
        }
    }

    /// The live entries as (clock, slab index), by increasing clock.
    pub(crate) fn iter(&self) -> Live<'_> {
        Live {
            dots: self,
            k: 0,
            end: self.slots.len(),
        }
    }

    /// The live entries with clocks in `(lo, hi]`, by increasing clock.
    pub(crate) fn range(&self, lo: u64, hi: u64) -> Live<'_> {
        let a = self.count_upto(lo);
        let b = self.count_upto(hi).max(a);
        Live {
            dots: self,
            k: a,
            end: b,
        }
    }

    /// The slab indexes of the live entries, by increasing clock.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().copied().filter(|&i| i != HOLE)
    }
}

/// The live entries of positions `k..end` of a [`Dots`], as (clock, slab
/// index).
pub(crate) struct Live<'a> {
    dots: &'a Dots,
    k: usize,
    end: usize,
}

impl Iterator for Live<'_> {
    type Item = (u64, u32);

    #[inline]
    fn next(&mut self) -> Option<(u64, u32)> {
        while self.k < self.end {
            let k = self.k;
            self.k += 1;
            let i = self.dots.slots[k];
            if i != HOLE {
                return Some((self.dots.clock_at(k), i));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.end - self.k))
    }
}

#[cfg(test)]
mod tests {
    use super::{Dots, SLACK};
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// What a list must answer, from a map of the live entries.
    fn check(d: &Dots, model: &BTreeMap<u64, u32>, probes: &[u64]) {
        assert_eq!(d.len(), model.len());
        let got: Vec<(u64, u32)> = d.iter().collect();
        let want: Vec<(u64, u32)> = model.iter().map(|(&c, &i)| (c, i)).collect();
        assert_eq!(got, want);
        assert_eq!(
            d.slots().collect::<Vec<_>>(),
            want.iter().map(|e| e.1).collect::<Vec<_>>()
        );
        for &c in probes {
            assert_eq!(d.get(c), model.get(&c).copied(), "clock {c}");
            for &hi in probes {
                let got: Vec<(u64, u32)> = d.range(c, hi).collect();
                let want: Vec<(u64, u32)> = if hi > c {
                    model.range(c + 1..=hi).map(|(&c, &i)| (c, i)).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want, "range ({c}, {hi}]");
            }
        }
        assert!(
            d.slots.len() <= 2 * d.len() + SLACK + 1,
            "holes are bounded"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Add the clock after the last one plus this gap.
        Next(u8),
        /// Add a clock this far below the last one, if free.
        Below(u16),
        /// Remove the live entry at this fraction of the list.
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3).prop_map(Op::Next),
            1 => any::<u8>().prop_map(Op::Next),
            1 => any::<u16>().prop_map(Op::Below),
            5 => any::<u16>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn a_list_answers_as_a_map_of_its_live_entries(
            start in prop_oneof![Just(1u64), Just(u64::MAX - 300), 0u64..1000],
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let mut d = Dots::default();
            let mut model = BTreeMap::new();
            let mut last = start;
            let mut slot = 0u32;
            for op in ops {
                match op {
                    Op::Next(gap) => {
                        let Some(c) = last.checked_add(u64::from(gap) + 1) else { continue };
                        d.insert(c, slot);
                        model.insert(c, slot);
                        last = c;
                    }
                    Op::Below(back) => {
                        let Some(c) = last.checked_sub(u64::from(back)) else { continue };
                        if model.contains_key(&c) || model.is_empty() {
                            continue;
                        }
                        d.insert(c, slot);
                        model.insert(c, slot);
                    }
                    Op::Remove(at) => {
                        if model.is_empty() {
                            continue;
                        }
                        let k = usize::from(at) % model.len();
                        let c = *model.keys().nth(k).expect("in range");
                        d.remove(c);
                        model.remove(&c);
                    }
                }
                slot += 1;
            }
            let mut probes: Vec<u64> = model.keys().copied().collect();
            probes.extend([0, start, last, last.saturating_add(1), u64::MAX]);
            probes.extend(model.keys().map(|c| c.saturating_sub(1)));
            probes.sort_unstable();
            probes.dedup();
            probes.truncate(40);
            check(&d, &model, &probes);
        }
    }

    #[test]
    fn consecutive_clocks_store_no_clocks() {
        let mut d = Dots::default();
        for c in 1..=1000u64 {
            d.insert(c, c as u32);
        }
        // The oldest half leaves: the list drops them and stays dense.
        for c in 1..=600u64 {
            d.remove(c);
        }
        // Removals between adds leave one skipped clock each.
        for c in (1002..=1100u64).step_by(2) {
            d.insert(c, c as u32);
        }
        assert!(d.dense && d.clocks.is_empty());
        assert_eq!(d.len(), 400 + 50);
        assert_eq!(d.get(601), Some(601));
        assert_eq!(d.get(1001), None);
        assert_eq!(d.get(1100), Some(1100));
        // Removals all over the list make holes that only clocks can drop.
        for c in (602..=1000u64).step_by(2) {
            d.remove(c);
        }
        for c in (601..=999u64).step_by(4) {
            d.remove(c);
        }
        assert!(!d.dense);
        assert_eq!(d.get(603), Some(603));
        assert_eq!(d.get(601), None);
        // Emptied, the list is dense again.
        let live: Vec<u64> = d.iter().map(|e| e.0).collect();
        for c in live {
            d.remove(c);
        }
        assert!(d.dense && d.len() == 0);
        d.insert(5, 5);
        assert_eq!(d.iter().collect::<Vec<_>>(), [(5, 5)]);
    }
}
