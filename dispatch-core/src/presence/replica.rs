//! Replica identity and bookkeeping.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

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
}

/// The slab index of a removed entry in [`Dots`], until compaction.
const HOLE: u32 = u32::MAX;

/// Holes beyond the live count that [`Dots`] tolerates before compacting.
const SLACK: usize = 16;

/// The entries of one replica by increasing clock: the clock and slab index
/// of each. It doubles as the index from a dot to its record: a replica's
/// clocks are distinct integers, so the position of a clock is bounded on
/// both sides by its distance to the first and last clocks, and a search
/// is short where the clocks are dense (the usual case).
///
/// A removed entry leaves a hole (its clock stays, so the order holds);
/// holes are squeezed out when they outnumber the live entries, so the
/// lists stay within twice the live entries plus [`SLACK`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Dots {
    clocks: Vec<u64>,
    /// Slab indexes, [`HOLE`] for removed entries.
    slots: Vec<u32>,
    live: usize,
}

impl Dots {
    /// How many live entries.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Makes room for `n` more entries.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.clocks.reserve(n);
        self.slots.reserve(n);
    }

    /// Adds the entry with this clock, which no entry of the list has.
    /// New entries usually have the largest clock: then this is a push.
    #[inline]
    pub(crate) fn insert(&mut self, clock: u64, i: u32) {
        if self.clocks.last().is_none_or(|&last| last < clock) {
            self.clocks.push(clock);
            self.slots.push(i);
            self.live += 1;
        } else {
            self.insert_before_last(clock, i);
        }
    }

    /// [`insert`](Self::insert) of a clock below the last one.
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
        if self.slots.len() - self.live > self.live + SLACK {
            self.compact();
        }
    }

    fn compact(&mut self) {
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
        if self.slots.capacity() > 4 * w + 4 * SLACK {
            self.clocks.shrink_to(2 * w);
            self.slots.shrink_to(2 * w);
        }
    }

    /// The live entries as (clock, slab index), by increasing clock.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        Self::live(&self.clocks, &self.slots)
    }

    /// The live entries with clocks in `(lo, hi]`, by increasing clock.
    pub(crate) fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        let a = self.clocks.partition_point(|&c| c <= lo);
        let b = self.clocks.partition_point(|&c| c <= hi).max(a);
        Self::live(&self.clocks[a..b], &self.slots[a..b])
    }

    /// The slab indexes of the live entries, by increasing clock.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().copied().filter(|&i| i != HOLE)
    }

    fn live<'a>(clocks: &'a [u64], slots: &'a [u32]) -> impl Iterator<Item = (u64, u32)> + 'a {
        clocks
            .iter()
            .copied()
            .zip(slots.iter().copied())
            .filter(|&(_, i)| i != HOLE)
    }
}
