//! The replicated presence set: every service instance of the cluster.
//!
//! Each node holds a [`Presence`]. Only replica `r` creates or removes `r`'s
//! entries, and every local operation advances `r`'s clock by one, so `r`'s
//! entries at clock `C` are a pure function of its first `C` operations. This
//! makes the set a delta-CRDT with no tombstones: a peer's knowledge of `r`
//! is one number, and what it lacks is described exactly by a [`Delta`] (a
//! contiguous clock range) or an [`Extract`] (the live entries it lacks and
//! the clocks of the older entries that are still alive).
//!
//! Feed it, then drain it: local operations return the entry's [`Ref`],
//! merges and replica lifecycle calls return a [`Summary`], and
//! [`Presence::changes`] lists the entries that joined and left in the last
//! mutating call (until the next one). [`Presence::take_delta`] drains the
//! local operations to push to peers; [`Presence::catch_up`] and
//! [`Presence::extract`] answer a lagging peer. Deltas and extracts borrow
//! the set: encode them (`postcard::to_slice`) and drop them.
//!
//! Everything from the network is validated fully before anything changes:
//! on error the set is unchanged and the [`MergeError`] says why.
//!
//! ```
//! use dispatch_core::presence::{Config, Meta, Presence, ReplicaId};
//!
//! let mut a = Presence::new(ReplicaId::new("a", 1), Config::default()).unwrap();
//! let mut b = Presence::new(ReplicaId::new("b", 1), Config::default()).unwrap();
//! a.add("uploader", "u1", Meta::online(0, b"")).unwrap();
//! let bytes = postcard::to_allocvec(&a.take_delta().unwrap()).unwrap();
//! let delta: dispatch_core::presence::Delta<'_> = postcard::from_bytes(&bytes).unwrap();
//! let summary = b.merge_delta(&delta).unwrap();
//! assert_eq!(summary.joins, 1);
//! assert_eq!(b.entries_of_type("uploader").count(), 1);
//! ```

mod config;
mod delta;
mod entries;
mod entry;
mod error;
mod extract;
mod generations;
pub(crate) mod hash;
mod index;
mod members;
mod read;
mod replica;
mod store;
mod type_index;

pub use config::{
    Config, MAX_CLOCK, MAX_ENTRIES, MAX_ENTRIES_PER_REPLICA, MAX_GENERATIONS, MAX_GENERATION_OPS,
    MAX_LEN, MAX_REPLICAS,
};
pub use delta::Delta;
pub use entries::Entries;
pub use entry::{Meta, Ref, State, WireEntry};
pub use error::{ConfigError, MergeError, OpError, ReplicaError};
pub use extract::{Context, Extract, ReplicaExtract};
pub use read::{Change, ChangeKind, EntryRef, Stats};
pub use replica::{ReplicaId, ReplicaInfo};

use alloc::boxed::Box;
use alloc::vec::Vec;
use hashbrown::HashTable;

use entry::Record;
use generations::Window;
use hash::Keyed;
use replica::ReplicaSlot;
use store::{ChangeRec, TypeRec};
use type_index::TypeIndex;

/// The slot of our own replica in the replica table.
const ME: u32 = 0;

/// What a mutating call changed: how many entries became visible and how
/// many stopped being visible. [`Presence::changes`] lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries that became visible.
    pub joins: u32,
    /// Entries that stopped being visible.
    pub leaves: u32,
    /// Extract sections skipped because they came from an incarnation older
    /// than the one we know (count them; they are harmless).
    pub stale: u32,
    /// Extract sections skipped because they start after the clock we have
    /// (the extract was made for a newer state of ours: ask again).
    pub gaps: u32,
}

/// The replicated set of service entries of a cluster, as one node holds it.
///
/// Storage: a slab of 40-byte entry records addressed by `u32`, each
/// holding its id and user data (and the previous ref of an updated entry)
/// itself when they fit in 22 bytes, and its clock (at most [`MAX_CLOCK`])
/// in one word with its replica slot; interned types in 16-byte records
/// (names of up to 11 bytes held inline, longer ones in a table of their
/// own, so that a type record holds no pointer) in a keyed-hash index of
/// four-byte buckets (the type slot and a few bits of its hash), each with
/// its members in the deterministic read order (a lone member's slab index
/// held in the type record, two or more in a list of their own, every
/// listed member carrying the first eight bytes of its id so that ordering
/// seldom reads a record); and per replica, its entries by clock and a
/// keyed-hash index of them by id, so that down, up and purge cost time in
/// proportion to that replica (a purge drops the replica's index whole, and
/// a merge that brings a replica's entries grows only that replica's
/// index). The buckets of an index by id hold a `u32` slab index plus 32
/// bits of the hash, so that growing it never reads the records, and it is
/// split in shards that grow one at a time. The members of a type
/// double as the index by (replica, type, id), being ordered by (id,
/// replica), and a replica's list as the index by dot. Merging a delta costs
/// time in proportion to the delta.
#[derive(Debug, Clone)]
pub struct Presence {
    config: Config,
    hasher: Keyed,
    slab: Vec<Option<Record>>,
    free: Vec<u32>,
    types: Vec<Option<TypeRec>>,
    /// The member lists of the types with two or more members.
    lists: Vec<Vec<members::Member>>,
    free_lists: Vec<u32>,
    free_types: Vec<u32>,
    /// The names of the types whose name is too long for their record,
    /// by slot (see `entry::Name`).
    long_names: Vec<Box<[u8]>>,
    free_names: Vec<u32>,
    /// Types whose last member left in this call; freed at the next call so
    /// that the change views can still name them.
    empty_types: Vec<u32>,
    type_idx: TypeIndex,
    replicas: Vec<Option<ReplicaSlot>>,
    free_replicas: Vec<u32>,
    /// Replica slots retired in this call; freed at the next call.
    retired: Vec<u32>,
    replica_idx: HashTable<u32>,
    changes: Vec<ChangeRec>,
    /// Records removed by the last call, kept for the change views.
    removed: Vec<Record>,
    pending: Window,
    generations: Vec<Window>,
}

impl Presence {
    /// An empty set whose own replica is `me`, or why `config` is refused.
    pub fn new(me: ReplicaId, config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        if me.name.len() > config.max_name_len as usize {
            return Err(ConfigError::NameTooLong {
                len: me.name.len(),
                max: config.max_name_len,
            });
        }
        let hasher = Keyed::new(config.hash_seed);
        let generations = config
            .generations
            .iter()
            .map(|&cap| Window::new(u64::from(cap)))
            .collect();
        let mut set = Presence {
            hasher,
            slab: Vec::new(),
            free: Vec::new(),
            types: Vec::new(),
            lists: Vec::new(),
            free_lists: Vec::new(),
            free_types: Vec::new(),
            long_names: Vec::new(),
            free_names: Vec::new(),
            empty_types: Vec::new(),
            type_idx: TypeIndex::default(),
            replicas: Vec::new(),
            free_replicas: Vec::new(),
            retired: Vec::new(),
            replica_idx: HashTable::new(),
            changes: Vec::new(),
            removed: Vec::new(),
            pending: Window::new(u64::MAX),
            generations,
            config,
        };
        let slot = set.register(me);
        debug_assert_eq!(slot, ME);
        Ok(set)
    }

    /// Adds the entry (`ty`, `id`) to our replica and returns its ref.
    ///
    /// Fails with [`OpError::AlreadyExists`] if we already have it (use
    /// [`update`](Self::update)), or when a limit is passed.
    pub fn add(&mut self, ty: &str, id: &str, meta: Meta<'_>) -> Result<Ref, OpError> {
        self.check_local(ty, id, &meta)?;
        let th = self.hasher.bytes(ty.as_bytes()) as u32;
        let (id, idh) = (id.as_bytes(), self.hasher.bytes(id.as_bytes()));
        let t = self.find_type_h(ty.as_bytes(), th);
        // Where the new member goes in its type, found by the same search
        // that rules out a duplicate.
        let mut at = None;
        if let Some(t) = t {
            match self.member_pos(t, id, ME) {
                Ok(_) => return Err(OpError::AlreadyExists),
                Err(pos) => at = Some(pos),
            }
        }
        let max = self.config.max_entries_per_replica;
        if self.replica(ME).entries.len() >= max as usize {
            return Err(OpError::TooManyEntries { max });
        }
        if !self.entries_fit(self.live_records(), 1) {
            return Err(OpError::SetFull {
                max: self.entry_cap(),
            });
        }
        self.check_clock()?;
        self.begin();
        // `begin` frees the types emptied by the last call, maybe this one.
        let t = match t {
            Some(t) if self.types[t as usize].is_some() => t,
            _ => {
                at = Some(0);
                self.new_type(ty.as_bytes(), th)
            }
        };
        let clock = self.local_op(None);
        self.insert_hashed(ME, t, id, idh, clock, 0, meta, at);
        Ok(self.my_ref(clock))
    }

    /// Removes the entry (`ty`, `id`) of our replica; returns the ref it had.
    pub fn remove(&mut self, ty: &str, id: &str) -> Result<Ref, OpError> {
        let idx = self.find_local(ty, id).ok_or(OpError::NotFound)?;
        self.check_clock()?;
        self.begin();
        let old = self.record(idx).clock();
        self.local_op(Some(old));
        self.remove_record(idx, true);
        Ok(self.my_ref(old))
    }

    /// Replaces the metadata of our entry (`ty`, `id`): a remove plus an add,
    /// whose new ref is returned; the entry's previous ref is the old one.
    ///
    /// An update that changes nothing returns `Ok(None)`, does not advance
    /// the clock, records nothing and reports nothing.
    pub fn update(&mut self, ty: &str, id: &str, meta: Meta<'_>) -> Result<Option<Ref>, OpError> {
        let idx = self.find_local(ty, id).ok_or(OpError::NotFound)?;
        if self.record(idx).meta() == meta {
            return Ok(None);
        }
        self.check_local(ty, id, &meta)?;
        self.check_clock()?;
        self.begin();
        let old = self.record(idx).clock();
        let clock = self.local_op(Some(old));
        self.remove_record(idx, true);
        self.insert_record(ME, ty, id, clock, old, meta);
        Ok(Some(self.my_ref(clock)))
    }

    /// Hides the entries of a replica that stopped answering; they are
    /// reported as leaves. Merges into it still apply, silently. Costs time
    /// in proportion to its entries and allocates nothing per entry.
    pub fn replica_down(&mut self, id: &ReplicaId) -> Result<Summary, ReplicaError> {
        let r = self.lifecycle_slot(id)?;
        self.begin();
        let slot = self.replicas[r as usize]
            .as_mut()
            .expect("lifecycle_slot returns a live slot");
        if slot.up {
            slot.up = false;
            let list = core::mem::take(&mut slot.entries);
            self.push_all(false, list.slots());
            self.replicas[r as usize]
                .as_mut()
                .expect("lifecycle_slot returns a live slot")
                .entries = list;
        }
        Ok(self.summary())
    }

    /// Shows again the entries of a replica that was down, reported as joins.
    pub fn replica_up(&mut self, id: &ReplicaId) -> Result<Summary, ReplicaError> {
        let r = self.lifecycle_slot(id)?;
        self.begin();
        let slot = self.replicas[r as usize]
            .as_mut()
            .expect("lifecycle_slot returns a live slot");
        if !slot.up {
            slot.up = true;
            let list = core::mem::take(&mut slot.entries);
            self.push_all(true, list.slots());
            self.replicas[r as usize]
                .as_mut()
                .expect("lifecycle_slot returns a live slot")
                .entries = list;
        }
        Ok(self.summary())
    }

    /// Forgets a replica that is down for good, with all its entries (they
    /// were reported as leaves when it went down, so nothing is reported).
    pub fn remove_down_replica(&mut self, id: &ReplicaId) -> Result<Summary, ReplicaError> {
        let r = self.lifecycle_slot(id)?;
        if self.replica(r).up {
            return Err(ReplicaError::NotDown);
        }
        self.begin();
        self.retire(r);
        Ok(self.summary())
    }

    /// Our own replica.
    pub fn me(&self) -> &ReplicaId {
        &self.replica(ME).id
    }

    /// Our own clock: the number of local operations so far.
    pub fn clock(&self) -> u64 {
        self.replica(ME).clock
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The replicas we know, ours first, with their clock and state.
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaInfo<'_>> + '_ {
        self.replica_idx_order().map(move |r| {
            let s = self.replica(r);
            ReplicaInfo {
                id: &s.id,
                clock: s.clock,
                up: s.up,
                entries: s.entries.len(),
            }
        })
    }

    fn check_local(&self, ty: &str, id: &str, meta: &Meta<'_>) -> Result<(), OpError> {
        let c = &self.config;
        if ty.len() > c.max_type_len as usize {
            return Err(OpError::TypeTooLong {
                len: ty.len(),
                max: c.max_type_len,
            });
        }
        if id.len() > c.max_id_len as usize {
            return Err(OpError::IdTooLong {
                len: id.len(),
                max: c.max_id_len,
            });
        }
        if meta.data.len() > c.max_data_len as usize {
            return Err(OpError::DataTooLong {
                len: meta.data.len(),
                max: c.max_data_len,
            });
        }
        Ok(())
    }

    /// Refuses an operation once our clock has no room for another one.
    fn check_clock(&self) -> Result<(), OpError> {
        if self.replica(ME).clock >= MAX_CLOCK {
            return Err(OpError::ClockExhausted { max: MAX_CLOCK });
        }
        Ok(())
    }

    fn find_local(&self, ty: &str, id: &str) -> Option<u32> {
        let t = self.find_type(ty)?;
        self.find_key(ME, t, id.as_bytes())
    }

    /// Advances our clock for one operation that removes the dot `removed`,
    /// if any, and records it in the pending delta and the generations.
    fn local_op(&mut self, removed: Option<u64>) -> u64 {
        let before = self.replica(ME).clock;
        for w in core::iter::once(&mut self.pending).chain(self.generations.iter_mut()) {
            w.before_op(before);
            if let Some(dot) = removed {
                w.removed(dot);
            }
        }
        let slot = self.replicas[ME as usize]
            .as_mut()
            .expect("our own replica is never freed");
        slot.clock = before + 1;
        slot.clock
    }

    fn my_ref(&self, clock: u64) -> Ref {
        Ref {
            incarnation: self.me().incarnation,
            clock,
        }
    }

    fn lifecycle_slot(&self, id: &ReplicaId) -> Result<u32, ReplicaError> {
        let r = self.find_replica(&id.name).ok_or(ReplicaError::Unknown)?;
        if self.replica(r).id.incarnation != id.incarnation {
            return Err(ReplicaError::Unknown);
        }
        if r == ME {
            return Err(ReplicaError::OwnReplica);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::{Meta, OpError, Presence, ReplicaId, MAX_CLOCK, ME};
    use alloc::string::ToString;
    use alloc::vec::Vec;

    #[test]
    fn a_replica_at_the_largest_clock_refuses_operations_unchanged() {
        let mut p = Presence::new(ReplicaId::new("a", 1), super::Config::default()).unwrap();
        p.add("t", "x", Meta::online(0, b"")).unwrap();
        // No test can make 2^48 operations: start just below the limit.
        p.replicas[ME as usize].as_mut().unwrap().clock = MAX_CLOCK - 1;
        let last = p.add("t", "y", Meta::online(0, b"")).unwrap();
        assert_eq!(last.clock, MAX_CLOCK);
        let full = Err(OpError::ClockExhausted { max: MAX_CLOCK });
        assert_eq!(p.add("t", "z", Meta::online(0, b"")), full);
        assert_eq!(p.remove("t", "x"), full);
        assert_eq!(p.update("t", "y", Meta::online(1, b"")), full.map(Some));
        let listed: Vec<(&str, u64)> = p
            .entries_of_type("t")
            .map(|e| (e.id(), e.reference().clock))
            .collect();
        assert_eq!(listed, [("x", 1), ("y", MAX_CLOCK)]);
        assert!(OpError::ClockExhausted { max: MAX_CLOCK }
            .to_string()
            .contains("new incarnation"));
    }
}
