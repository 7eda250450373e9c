//! Deltas: a contiguous clock range of one replica's operations.

use alloc::vec::Vec;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::entries::Entries;
use super::entry::{Raw, Record, WireEntry};
use super::error::MergeError;
use super::members::{records_fit, Member, MAX_RECORDS};
use super::replica::ReplicaId;
use super::{Config, Presence, Summary, MAX_CLOCK};

/// The operations of one replica with clocks in `(start, end]`, compacted.
///
/// `adds` are all entries added in the range that are alive at `end`, in
/// increasing clock order; `removes` are the dots `<= start` removed in the
/// range, increasing. An entry added and removed inside the range appears in
/// neither: a receiver that has it learns of its removal because it is not
/// among `adds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta<'a> {
    /// The replica whose operations these are.
    pub replica: ReplicaId,
    /// The clock before the first operation.
    pub start: u64,
    /// The clock after the last operation.
    pub end: u64,
    /// Entries added in `(start, end]` and alive at `end`.
    #[serde(borrow)]
    pub adds: Vec<WireEntry<'a>>,
    /// Dots `<= start` removed in the range.
    pub removes: Vec<u64>,
}

/// Merges inserting at least this many entries reserve room for their
/// types and insert in passes (see `Presence::insert_bulk`).
const BULK: usize = 1024;

/// The entries a large merge takes through each of its passes at a time.
const CHUNK: usize = 1024;

/// Where the data of a replica goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// A known replica slot and our clock for it.
    Known(u32, u64),
    /// A newer incarnation of the replica in this slot: retire it first.
    Replace(u32),
    /// A replica we do not know.
    New,
}

impl Target {
    pub(crate) fn clock(self) -> u64 {
        match self {
            Target::Known(_, c) => c,
            Target::Replace(_) | Target::New => 0,
        }
    }

    pub(crate) fn slot(self) -> Option<u32> {
        match self {
            Target::Known(s, _) => Some(s),
            Target::Replace(_) | Target::New => None,
        }
    }
}

impl Presence {
    /// Merges a delta from another replica and returns the diff.
    ///
    /// With our clock `c` for its replica: a delta starting after `c` is
    /// refused with [`MergeError::Gap`] (ask for a catch-up); a delta ending
    /// at or before `c` changes nothing. Otherwise its removes apply, our
    /// entries in `(start, c]` missing from `adds` are removed, adds after
    /// `c` are inserted and `c` becomes `end`. Idempotent; tolerates overlap
    /// and replay. Costs time in proportion to the delta. The delta is
    /// validated fully first: on error the set is unchanged.
    pub fn merge_delta(&mut self, d: &Delta<'_>) -> Result<Summary, MergeError> {
        let target = self
            .resolve(&d.replica, true)?
            .expect("deltas never skip: stale is an error");
        if d.start > d.end {
            return Err(MergeError::BadRange {
                start: d.start,
                end: d.end,
            });
        }
        let c = target.clock();
        if d.start > c {
            return Err(MergeError::Gap {
                have: c,
                need: d.start,
            });
        }
        let runs = self.check_entries(&d.adds[..], d.start, d.end)?;
        check_increasing(&d.removes, 0, d.start)?;
        let max = self.config.max_entries_per_replica;
        if d.removes.len() > max as usize {
            return Err(MergeError::TooManyEntries { max });
        }
        if d.end <= c && matches!(target, Target::Known(..)) {
            self.begin();
            return Ok(Summary::default());
        }
        let mut doomed = Vec::new();
        if let Some(s) = target.slot() {
            doomed.extend(d.removes.iter().filter_map(|&dot| self.find_dot(s, dot)));
            for i in self.alive_in_range(s, d.start, c) {
                if !contains_clock(&d.adds, self.record(i).clock()) {
                    doomed.push(i);
                }
            }
        }
        let gone = |p: &Presence, i: u32| {
            let ck = p.record(i).clock();
            if ck <= d.start {
                d.removes.binary_search(&ck).is_ok()
            } else {
                !contains_clock(&d.adds, ck)
            }
        };
        let new = self.check_new(target, &d.adds[..], c, &doomed, gone)?;
        self.begin();
        let s = self.target_slot(target, &d.replica);
        for i in doomed {
            self.remove_record(i, true);
        }
        self.insert_all(s, &d.adds[..], c, new, runs);
        let slot = self.replicas[s as usize]
            .as_mut()
            .expect("target slot is live");
        slot.clock = slot.clock.max(d.end);
        Ok(self.summary())
    }

    /// Decides where data from `id` goes. `Ok(None)`: skip it as stale
    /// (only when `stale_is_error` is false).
    pub(crate) fn resolve(
        &self,
        id: &ReplicaId,
        stale_is_error: bool,
    ) -> Result<Option<Target>, MergeError> {
        let max = self.config.max_name_len;
        if id.name.len() > max as usize {
            return Err(MergeError::NameTooLong {
                len: id.name.len(),
                max,
            });
        }
        let Some(r) = self.find_replica(&id.name) else {
            let max = self.config.max_replicas;
            if self.replica_idx.len() >= max as usize {
                return Err(MergeError::TooManyReplicas { max });
            }
            return Ok(Some(Target::New));
        };
        let known = &self.replica(r).id;
        if id.incarnation < known.incarnation {
            if stale_is_error {
                return Err(MergeError::StaleIncarnation {
                    have: known.incarnation,
                    got: id.incarnation,
                });
            }
            return Ok(None);
        }
        if r == super::ME {
            return Err(MergeError::OwnReplica);
        }
        if id.incarnation == known.incarnation {
            Ok(Some(Target::Known(r, self.replica(r).clock)))
        } else {
            Ok(Some(Target::Replace(r)))
        }
    }

    /// Checks entries: clocks strictly increasing inside `(lo, hi]`, lengths,
    /// previous refs, and no two sharing a (type, id). Returns a bound on the
    /// types they name: how many runs of entries of one type they hold, or
    /// for entries that need no checks (see `Seq::trusted`) the types of
    /// the set they were read from.
    pub(crate) fn check_entries<'a, E: Seq<'a> + ?Sized>(
        &self,
        entries: &E,
        lo: u64,
        hi: u64,
    ) -> Result<usize, MergeError> {
        let c = &self.config;
        if hi > MAX_CLOCK {
            return Err(MergeError::ClockTooLarge {
                clock: hi,
                max: MAX_CLOCK,
            });
        }
        if entries.count() > c.max_entries_per_replica as usize {
            return Err(MergeError::TooManyEntries {
                max: c.max_entries_per_replica,
            });
        }
        if let Some(types) = entries.trusted(c) {
            // Only the range can fail, and with increasing clocks the first
            // entry out of it is the first one or the first after `hi`.
            let n = entries.count();
            let k = if n > 0 && entries.raw(0).clock <= lo {
                0
            } else {
                entries.first_after(hi)
            };
            if k < n {
                return Err(MergeError::ClockOutOfRange {
                    clock: entries.raw(k).clock,
                });
            }
            return Ok(types.min(n));
        }
        let mut last = lo;
        let (mut runs, mut last_ty) = (0, None);
        for k in 0..entries.count() {
            let e = entries.raw(k);
            if last_ty != Some(e.ty) {
                runs += 1;
                last_ty = Some(e.ty);
            }
            if e.clock <= lo || e.clock > hi {
                return Err(MergeError::ClockOutOfRange { clock: e.clock });
            }
            if e.clock <= last {
                return Err(MergeError::ClocksNotIncreasing { clock: e.clock });
            }
            last = e.clock;
            if e.prev >= e.clock {
                return Err(MergeError::BadPrev { clock: e.clock });
            }
            if e.ty.len() > c.max_type_len as usize {
                return Err(MergeError::TypeTooLong {
                    len: e.ty.len(),
                    max: c.max_type_len,
                });
            }
            if e.id.len() > c.max_id_len as usize {
                return Err(MergeError::IdTooLong {
                    len: e.id.len(),
                    max: c.max_id_len,
                });
            }
            if e.meta.data.len() > c.max_data_len as usize {
                return Err(MergeError::DataTooLong {
                    len: e.meta.data.len(),
                    max: c.max_data_len,
                });
            }
        }
        // Entries read from one replica of a set cannot share a key.
        if !entries.unique_keys() {
            // A bucket is four bytes: an entry's position in the low bits,
            // and in the bits its positions leave free, bits of its key's
            // hash that rule out most other keys before their entry is
            // read (hashbrown takes the bucket from the low bits of the
            // hash and its tag from the top seven: these are in between).
            // The table is sized for every entry up front and never grows,
            // so the hashes need not be kept for rehashing (the closure
            // that recomputes one is never called). A 100,000-entry
            // section costs 640 KiB of fresh pages rather than 2.1 MiB.
            let count = entries.count();
            let bits = u32::BITS - ((count.max(1) - 1) as u32).leading_zeros();
            let position = u32::MAX.checked_shr(u32::BITS - bits).unwrap_or(0);
            let h = self.hasher;
            let key_hash = |e: Raw<'_>| h.words(h.bytes(e.ty), h.bytes(e.id));
            let mut seen: HashTable<u32> = HashTable::with_capacity(count);
            for n in 0..count {
                let e = entries.raw(n);
                let hash = key_hash(e);
                let tag = (hash >> 25) as u32 & !position;
                let dup = seen.find(hash, |&x| {
                    x & !position == tag && {
                        let o = entries.raw((x & position) as usize);
                        o.id == e.id && o.ty == e.ty
                    }
                });
                if dup.is_some() {
                    return Err(MergeError::DuplicateKey { clock: e.clock });
                }
                seen.insert_unique(hash, tag | n as u32, |&x| {
                    key_hash(entries.raw((x & position) as usize))
                });
            }
        }
        Ok(runs)
    }

    /// Counts the entries after `c` to insert and checks that none collides
    /// with a kept entry and that the replica stays within its limit.
    /// `gone(i)` says whether our record `i` is removed by the same data.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_new<'a, E: Seq<'a> + ?Sized>(
        &self,
        target: Target,
        entries: &E,
        c: u64,
        doomed: &[u32],
        gone: impl Fn(&Presence, u32) -> bool,
    ) -> Result<usize, MergeError> {
        let first = entries.first_after(c);
        let new = first..entries.count();
        let mut have = 0;
        if let Some(s) = target.slot() {
            have = self.replica(s).entries.len();
            for k in new.clone() {
                let e = entries.raw(k);
                let hit = self
                    .find_type_h(e.ty, self.hasher.bytes(e.ty) as u32)
                    .and_then(|t| self.find_key(s, t, e.id));
                if let Some(i) = hit {
                    if !gone(self, i) {
                        return Err(MergeError::DuplicateKey { clock: e.clock });
                    }
                }
            }
        }
        let max = self.config.max_entries_per_replica;
        if have - doomed.len() + new.len() > max as usize {
            return Err(MergeError::TooManyEntries { max });
        }
        let live = self.live_records() - self.freed_by(target, doomed);
        if !self.entries_fit(live, new.len()) {
            return Err(MergeError::SetFull {
                max: self.entry_cap(),
            });
        }
        Ok(new.len())
    }

    /// How many live entries applying data to `target` removes before it
    /// inserts: the entries `doomed`, or the whole older incarnation it
    /// replaces.
    pub(crate) fn freed_by(&self, target: Target, doomed: &[u32]) -> usize {
        match target {
            Target::Replace(old) => self.replica(old).entries.len(),
            Target::Known(..) | Target::New => doomed.len(),
        }
    }

    /// The most entries the set may hold: `Config::max_entries`, and never
    /// more than one set can index.
    pub(crate) fn entry_cap(&self) -> usize {
        (self.config.max_entries as usize).min(MAX_RECORDS)
    }

    /// Whether `new` more entries fit beside `live` ones.
    pub(crate) fn entries_fit(&self, live: usize, new: usize) -> bool {
        records_fit(live, new) && live.saturating_add(new) <= self.entry_cap()
    }

    /// The slot data for `target` goes to, retiring and registering as needed.
    pub(crate) fn target_slot(&mut self, target: Target, id: &ReplicaId) -> u32 {
        match target {
            Target::Known(s, _) => s,
            Target::Replace(old) => {
                self.retire(old);
                self.register(id.clone())
            }
            Target::New => self.register(id.clone()),
        }
    }

    /// Inserts the `new` entries after clock `c` into replica slot `s`.
    /// `runs`, from [`check_entries`](Self::check_entries), bounds the types
    /// they add.
    pub(crate) fn insert_all<'a, E: Seq<'a> + ?Sized>(
        &mut self,
        s: u32,
        entries: &E,
        c: u64,
        new: usize,
        runs: usize,
    ) {
        let first = entries.first_after(c);
        if new >= BULK {
            self.reserve_records(s, new);
            self.reserve_types(runs.min(new));
            self.insert_bulk(s, entries, first, new);
            return;
        }
        self.reserve(s, new);
        let h = self.hasher;
        // Runs of entries of one type intern it once.
        let mut last: Option<(&[u8], u32)> = None;
        for k in first..entries.count() {
            let e = entries.raw(k);
            let t = match last {
                Some((ty, t)) if ty == e.ty => t,
                _ => self.intern_type_h(e.ty, h.bytes(e.ty) as u32),
            };
            last = Some((e.ty, t));
            self.insert_hashed(s, t, e.id, h.bytes(e.id), e.clock, e.prev, e.meta, None);
        }
    }

    /// [`insert_all`](Self::insert_all) of the `new` entries from position
    /// `first` on, with room reserved (types too, but not the index by id),
    /// in passes over chunks of [`CHUNK`] entries: their types are interned,
    /// then their records go in (a type created for an entry getting it as
    /// first member; the record of an entry read from a set is a copy of
    /// the one it was read from, see `Presence::put_copy`); every round of chunks, their ids are indexed, shard
    /// by shard (see `Index::insert_batch`); last, the members of the types
    /// that had some are added, type by type. Entry by entry, the stores to many
    /// tables fill the store buffer and every cache miss stalls; a pass over
    /// one table lets its misses overlap, and a chunk's worth of state stays
    /// in cache. The slab, type and member slots, and the changes, end up as
    /// entry by entry.
    fn insert_bulk<'a, E: Seq<'a> + ?Sized>(
        &mut self,
        s: u32,
        entries: &E,
        first: usize,
        new: usize,
    ) {
        let h = self.hasher;
        let chunk = CHUNK.min(new);
        // Per entry of a chunk: its type and whether it was created for it.
        let mut tys: Vec<(u32, bool)> = Vec::with_capacity(chunk);
        // Per entry: its slab index and id hash, for the index by id to take
        // a round at a time.
        let mut ids = self.replica_mut(s).ids.batch(new);
        // (type, member) of the entries of types that were not created
        // for them: they are added to their members last.
        let mut later: Vec<(u32, Member)> = Vec::new();
        // Runs of entries of one type intern it once. The hashes are
        // compared first: where types change at every entry, comparing the
        // names would cost a call each.
        let mut last: Option<(u32, &[u8], u32)> = None;
        let mut from = first;
        while from < entries.count() {
            let to = entries.count().min(from + CHUNK);
            tys.clear();
            for k in from..to {
                let ty = entries.ty(k);
                let th = h.bytes(ty) as u32;
                let (t, created) = match last {
                    Some((lh, l, t)) if lh == th && l == ty => (t, false),
                    _ => match self.find_type_h(ty, th) {
                        Some(t) => (t, false),
                        None => (self.new_type(ty, th), true),
                    },
                };
                last = Some((th, ty, t));
                tys.push((t, created));
            }
            for (k, &(t, created)) in (from..to).zip(&tys) {
                // A record of another set is copied whole; an entry from
                // the wire is written from its parts.
                let (i, id) = match entries.stored(k) {
                    Some(rec) => (self.put_copy(s, t, rec), rec.id_bytes()),
                    None => {
                        let e = entries.untyped(k);
                        (self.put_record(s, t, e.id, e.clock, e.prev, e.meta), e.id)
                    }
                };
                // A type created for this entry has no members: no need to
                // read it (for a type that had some, that is a cache miss).
                if created {
                    self.first_member(t, i);
                } else {
                    later.push((t, Member::new(i, id)));
                }
                ids.push((i, h.bytes(id) as u32));
            }
            from = to;
            if ids.is_full() || from == entries.count() {
                self.replica_mut(s).ids.insert_batch(&mut ids);
            }
        }
        // Members of one type must be added together; where every type is
        // known to get one (as when the entries name a type each), no sort
        // is needed.
        if !self.distinct_types(&later) {
            later.sort_unstable_by_key(|&(t, m)| (t, m.idx));
        }
        self.add_later(s, &later);
    }

    /// Our records of replica `r` with clocks in `(lo, hi]`, by clock.
    /// Costs the logarithm of the replica's entry count plus the range.
    pub(crate) fn alive_in_range(&self, r: u32, lo: u64, hi: u64) -> Vec<u32> {
        if hi <= lo {
            return Vec::new();
        }
        self.replica(r)
            .entries
            .range(lo, hi)
            .map(|(_, i)| i)
            .collect()
    }
}

fn contains_clock(entries: &[WireEntry<'_>], clock: u64) -> bool {
    entries.binary_search_by_key(&clock, |e| e.clock).is_ok()
}

/// Entries by position, as deltas (slices) and extracts ([`Entries`]) hold them.
pub(crate) trait Seq<'a> {
    fn count(&self) -> usize;
    fn raw(&self, k: usize) -> Raw<'a>;
    /// The type of the `k`-th entry: [`raw`](Self::raw)`(k).ty`, without
    /// reading the rest.
    fn ty(&self, k: usize) -> &'a [u8];
    /// [`raw`](Self::raw)`(k)`, but its type may be left empty: for a pass
    /// that read it with [`ty`](Self::ty).
    fn untyped(&self, k: usize) -> Raw<'a>;
    /// The record of another set the `k`-th entry was read from, if it was
    /// (see `Presence::put_copy`).
    fn stored(&self, k: usize) -> Option<&'a Record>;
    fn first_after(&self, clock: u64) -> usize;
    /// Whether no two entries can share a (type, id), so that checking is moot.
    fn unique_keys(&self) -> bool;
    /// `Some(bound on the types they name)` if the entries are known to pass
    /// every per-entry check under `config` but the clock range.
    fn trusted(&self, config: &Config) -> Option<usize>;
}

impl<'a> Seq<'a> for [WireEntry<'a>] {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn raw(&self, k: usize) -> Raw<'a> {
        Raw::from(self[k])
    }
    #[inline]
    fn ty(&self, k: usize) -> &'a [u8] {
        self[k].ty.as_bytes()
    }
    #[inline]
    fn untyped(&self, k: usize) -> Raw<'a> {
        Raw::from(self[k])
    }
    #[inline]
    fn stored(&self, _: usize) -> Option<&'a Record> {
        None
    }
    fn first_after(&self, clock: u64) -> usize {
        self.partition_point(|e| e.clock <= clock)
    }
    fn unique_keys(&self) -> bool {
        false
    }
    fn trusted(&self, _: &Config) -> Option<usize> {
        None
    }
}

impl<'a> Seq<'a> for Entries<'a> {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn raw(&self, k: usize) -> Raw<'a> {
        Entries::raw(self, k)
    }
    #[inline]
    fn ty(&self, k: usize) -> &'a [u8] {
        Entries::ty(self, k)
    }
    #[inline]
    fn untyped(&self, k: usize) -> Raw<'a> {
        Entries::untyped(self, k)
    }
    #[inline]
    fn stored(&self, k: usize) -> Option<&'a Record> {
        Entries::stored(self, k)
    }
    fn first_after(&self, clock: u64) -> usize {
        Entries::first_after(self, clock)
    }
    fn unique_keys(&self) -> bool {
        self.is_local()
    }
    fn trusted(&self, config: &Config) -> Option<usize> {
        Entries::trusted(self, config)
    }
}

/// Checks that `clocks` are strictly increasing and inside `(lo, hi]`.
pub(crate) fn check_increasing(clocks: &[u64], lo: u64, hi: u64) -> Result<(), MergeError> {
    let mut last = lo;
    for &clock in clocks {
        if clock <= lo || clock > hi {
            return Err(MergeError::ClockOutOfRange { clock });
        }
        if clock <= last {
            return Err(MergeError::ClocksNotIncreasing { clock });
        }
        last = clock;
    }
    Ok(())
}
