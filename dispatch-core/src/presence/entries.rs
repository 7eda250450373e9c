//! The entries of an extract section: borrowed from the sending set, or
//! decoded from the wire.

use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::entry::{Raw, Record, WireEntry};
use super::{Config, Presence};

/// A sequence of entries by increasing clock, as an extract section holds
/// them. [`Presence::extract`] makes them without copying anything but slab
/// indexes (each entry is read from the set when it is serialized or
/// merged); decoding from the wire makes a list of [`WireEntry`].
#[derive(Clone)]
pub struct Entries<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Local { set: &'a Presence, slots: Vec<u32> },
    Wire(Vec<WireEntry<'a>>),
}

impl<'a> Entries<'a> {
    pub(crate) fn local(set: &'a Presence, slots: Vec<u32>) -> Self {
        Entries(Repr::Local { set, slots })
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Local { slots, .. } => slots.len(),
            Repr::Wire(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k`-th entry.
    pub fn get(&self, k: usize) -> Option<WireEntry<'a>> {
        match &self.0 {
            Repr::Local { set, slots } => slots.get(k).map(|&i| set.wire(i)),
            Repr::Wire(v) => v.get(k).copied(),
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = WireEntry<'a>> + '_ {
        (0..self.len()).filter_map(move |k| self.get(k))
    }

    /// The clock of the `k`-th entry (`k < len`).
    pub(crate) fn clock(&self, k: usize) -> u64 {
        match &self.0 {
            Repr::Local { set, slots } => set.record(slots[k]).clock(),
            Repr::Wire(v) => v[k].clock,
        }
    }

    /// The `k`-th entry (`k < len`).
    pub(crate) fn at(&self, k: usize) -> WireEntry<'a> {
        match &self.0 {
            Repr::Local { set, slots } => set.wire(slots[k]),
            Repr::Wire(v) => v[k],
        }
    }

    /// The `k`-th entry (`k < len`) with its id as bytes, unchecked.
    #[inline]
    pub(crate) fn raw(&self, k: usize) -> Raw<'a> {
        match &self.0 {
            Repr::Local { set, slots } => set.raw(slots[k]),
            Repr::Wire(v) => Raw::from(v[k]),
        }
    }

    /// The `k`-th entry (`k < len`) but for its type, left empty.
    #[inline]
    pub(crate) fn untyped(&self, k: usize) -> Raw<'a> {
        match &self.0 {
            Repr::Local { set, slots } => set.untyped(slots[k]),
            Repr::Wire(v) => Raw::from(v[k]),
        }
    }

    /// The stored record the `k`-th entry (`k < len`) was read from, for
    /// entries read from a set.
    #[inline]
    pub(crate) fn stored(&self, k: usize) -> Option<&'a Record> {
        match &self.0 {
            Repr::Local { set, slots } => Some(set.record(slots[k])),
            Repr::Wire(_) => None,
        }
    }

    /// The type of the `k`-th entry (`k < len`).
    #[inline]
    pub(crate) fn ty(&self, k: usize) -> &'a [u8] {
        match &self.0 {
            Repr::Local { set, slots } => set.type_bytes(set.record(slots[k]).ty),
            Repr::Wire(v) => v[k].ty.as_bytes(),
        }
    }

    /// Whether the entries were read from one replica of a set, so that no
    /// two share a (type, id).
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.0, Repr::Local { .. })
    }

    /// For entries read from a set whose length limits are within
    /// `config`'s, the number of types that set holds (a bound on the types
    /// they name); else `None`. Such entries pass the per-entry checks of a
    /// merge: the set stored only entries within its limits whose previous
    /// ref is below their clock, and reads a replica's entries by
    /// increasing clock.
    pub(crate) fn trusted(&self, config: &Config) -> Option<usize> {
        match &self.0 {
            Repr::Local { set, .. } => {
                let c = &set.config;
                let within = c.max_type_len <= config.max_type_len
                    && c.max_id_len <= config.max_id_len
                    && c.max_data_len <= config.max_data_len;
                within.then(|| set.types.len() - set.free_types.len())
            }
            Repr::Wire(_) => None,
        }
    }

    /// The position of the first entry with a clock above `clock`.
    pub(crate) fn first_after(&self, clock: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.clock(mid) <= clock {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether an entry has this clock (the clocks must be increasing).
    pub(crate) fn has_clock(&self, clock: u64) -> bool {
        let k = self.first_after(clock);
        k > 0 && self.clock(k - 1) == clock
    }
}

impl<'a> From<Vec<WireEntry<'a>>> for Entries<'a> {
    fn from(v: Vec<WireEntry<'a>>) -> Self {
        Entries(Repr::Wire(v))
    }
}

impl Default for Entries<'_> {
    fn default() -> Self {
        Entries(Repr::Wire(Vec::new()))
    }
}

impl PartialEq for Entries<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Entries<'_> {}

impl fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for k in 0..self.len() {
            seq.serialize_element(&self.at(k))?;
        }
        seq.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<WireEntry<'a>>::deserialize(deserializer).map(Entries::from)
    }
}
