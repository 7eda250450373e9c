//! Storage: the slab of records, the interned types and the indexes.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;

use super::entry::{Meta, Name, Record, MAX_SLOT, NAME_INLINE};
use super::hash::Keyed;
use super::index::Index;
use super::members::{id_prefix, Listed, Member, Members, Packed};
use super::replica::{Dots, ReplicaId, ReplicaSlot};
use super::{Presence, Summary};

/// Change buffers keep at most this capacity between calls.
const KEEP_CAPACITY: usize = 1024;

/// Replicas with at least this many entries, and a quarter of the set, are
/// removed by sweeping the indexes once.
const BULK_MIN: usize = 4096;

/// Types with at most this many members are scanned rather than searched
/// when a member leaves.
const SCAN_MAX: usize = 64;

/// Batches of more than this many new members of one type are sorted and
/// merged into its members rather than inserted one by one.
const MERGE_MIN: usize = 16;

/// Types searched together by [`Presence::add_later`].
const WINDOW: usize = 16;

/// One recorded change of the last mutating call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ChangeRec {
    /// A live record (slab index) became visible.
    Join(u32),
    /// A live record (slab index) was hidden.
    Leave(u32),
    /// The next `n` slab indexes after the last one of the previous change,
    /// which is a `Join` or a `Leave`, did the same: a bulk merge into fresh
    /// slab slots, or a replica whose entries sit together in the slab going
    /// down, records two changes, not one per entry.
    More(u32),
    /// A record left and was removed; index into `Presence::removed`.
    Gone(u32),
}

/// An interned service type.
#[derive(Debug, Clone)]
pub(crate) struct TypeRec {
    pub(crate) name: Name,
    pub(crate) members: Packed,
}

const _: () = assert!(core::mem::size_of::<Option<TypeRec>>() == 16);

/// A bucket of a string-keyed index: a slab (or type) index and the low
/// 32 bits of its keyed hash. The table hash is [`spread`] of those bits.
pub(crate) type Slot = (u32, u32);

/// The table hash of a stored 32-bit hash: both halves of the table hash
/// (bucket index and control byte) depend on all 32 bits.
#[inline]
pub(crate) fn spread(h: u32) -> u64 {
    (u64::from(h) | (u64::from(h) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The hash of the name of the live type `t`, for growing the type index
/// (which borrows the set, hence the parts).
fn type_hash(types: &[Option<TypeRec>], long: &[Box<[u8]>], hasher: Keyed, t: u32) -> u32 {
    let name = &types[t as usize]
        .as_ref()
        .expect("the type index holds live types")
        .name;
    hasher.bytes(long_or_inline(long, name)) as u32
}

/// The bytes of a type name, given the table of long names.
#[inline]
fn long_or_inline<'a>(long: &'a [Box<[u8]>], name: &'a Name) -> &'a [u8] {
    match name {
        Name::Long(k) => &long[*k as usize],
        short => short.inline().unwrap_or_default(),
    }
}

/// Byte-wise order of two strings, eight bytes at a time.
#[inline]
fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        let (x, y) = (u64::from_be_bytes(wx), u64::from_be_bytes(wy));
        if x != y {
            return x.cmp(&y);
        }
    }
    let n = a.len().min(b.len()) / 8 * 8;
    a[n..].cmp(&b[n..])
}

fn rec(slab: &[Option<Record>], i: u32) -> &Record {
    slab[i as usize]
        .as_ref()
        .expect("indexes hold only live slab slots")
}

impl Presence {
    /// Starts a mutating call: forgets the changes of the last one and frees
    /// what was kept only for their views.
    pub(crate) fn begin(&mut self) {
        self.changes.clear();
        self.removed.clear();
        if self.changes.capacity() > KEEP_CAPACITY {
            self.changes.shrink_to(KEEP_CAPACITY);
        }
        if self.removed.capacity() > KEEP_CAPACITY {
            self.removed.shrink_to(KEEP_CAPACITY);
        }
        while let Some(r) = self.retired.pop() {
            self.replicas[r as usize] = None;
            self.free_replicas.push(r);
        }
        while let Some(t) = self.empty_types.pop() {
            let empty = matches!(&self.types[t as usize], Some(tr) if tr.members == Packed::EMPTY);
            if empty {
                let tr = self.types[t as usize].take().expect("checked above");
                let h = self.hasher.bytes(self.name_bytes(&tr.name)) as u32;
                self.type_idx.remove(t, h);
                if let Name::Long(k) = tr.name {
                    self.long_names[k as usize] = Box::default();
                    self.free_names.push(k);
                }
                self.free_types.push(t);
            }
        }
    }

    /// The summary of the changes recorded so far in this call.
    pub(crate) fn summary(&self) -> Summary {
        let mut sum = Summary::default();
        let mut joining = false;
        for c in &self.changes {
            match *c {
                ChangeRec::Join(_) => (sum.joins, joining) = (sum.joins + 1, true),
                ChangeRec::Leave(_) => (sum.leaves, joining) = (sum.leaves + 1, false),
                ChangeRec::More(n) if joining => sum.joins += n,
                ChangeRec::More(n) => sum.leaves += n,
                ChangeRec::Gone(_) => sum.leaves += 1,
            }
        }
        sum
    }

    /// Records that the live record `i` became visible.
    pub(crate) fn push_join(&mut self, i: u32) {
        self.push_change(true, i);
    }

    /// Records that each of the live records `list` joined (`join`) or
    /// left, finding the runs of consecutive indexes as it goes.
    pub(crate) fn push_all(&mut self, join: bool, list: impl Iterator<Item = u32>) {
        let mut run: Option<(u32, u32)> = None;
        for i in list {
            match run {
                Some((first, n)) if u64::from(first) + u64::from(n) + 1 == u64::from(i) => {
                    run = Some((first, n + 1));
                }
                _ => {
                    self.push_run(join, run);
                    run = Some((i, 0));
                }
            }
        }
        self.push_run(join, run);
    }

    /// Records the run of `first` and the `n` indexes after it, if any.
    fn push_run(&mut self, join: bool, run: Option<(u32, u32)>) {
        if let Some((first, n)) = run {
            self.push_change(join, first);
            if n > 0 {
                match self.changes.last_mut() {
                    Some(ChangeRec::More(m)) => *m += n,
                    _ => self.changes.push(ChangeRec::More(n)),
                }
            }
        }
    }

    /// Records a join or leave of the live record `i`, extending the run of
    /// the last change when `i` follows it.
    fn push_change(&mut self, join: bool, i: u32) {
        let (first, extra) = match *self.changes.as_slice() {
            [.., ChangeRec::Join(j), ChangeRec::More(n)] if join => (j, n),
            [.., ChangeRec::Leave(j), ChangeRec::More(n)] if !join => (j, n),
            [.., ChangeRec::Join(j)] if join => (j, 0),
            [.., ChangeRec::Leave(j)] if !join => (j, 0),
            _ => (u32::MAX, u32::MAX),
        };
        if u64::from(first) + u64::from(extra) + 1 == u64::from(i) {
            match self.changes.last_mut() {
                Some(ChangeRec::More(n)) => *n += 1,
                _ => self.changes.push(ChangeRec::More(1)),
            }
        } else if join {
            self.changes.push(ChangeRec::Join(i));
        } else {
            self.changes.push(ChangeRec::Leave(i));
        }
    }

    /// How many records the slab holds.
    pub(crate) fn live_records(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    #[inline]
    pub(crate) fn record(&self, i: u32) -> &Record {
        rec(&self.slab, i)
    }

    #[inline]
    pub(crate) fn replica(&self, r: u32) -> &ReplicaSlot {
        self.replicas[r as usize]
            .as_ref()
            .expect("replica slots in use are live")
    }

    #[inline]
    pub(crate) fn replica_mut(&mut self, r: u32) -> &mut ReplicaSlot {
        self.replicas[r as usize]
            .as_mut()
            .expect("replica slots in use are live")
    }

    pub(crate) fn type_name(&self, t: u32) -> &str {
        // Only `&str` names are interned, so the check never fails.
        core::str::from_utf8(self.type_bytes(t)).unwrap_or_default()
    }

    #[inline]
    pub(crate) fn type_bytes(&self, t: u32) -> &[u8] {
        let tr = self.types[t as usize]
            .as_ref()
            .expect("a type stays interned while a record or change names it");
        self.name_bytes(&tr.name)
    }

    /// The bytes of a type name, inline or in the table of long names.
    #[inline]
    pub(crate) fn name_bytes<'a>(&'a self, name: &'a Name) -> &'a [u8] {
        long_or_inline(&self.long_names, name)
    }

    /// Slots of the known replicas, in slot order (ours first).
    pub(crate) fn replica_idx_order(&self) -> impl Iterator<Item = u32> + '_ {
        self.replicas.iter().enumerate().filter_map(move |(r, s)| {
            let r = r as u32;
            (s.is_some() && !self.retired.contains(&r)).then_some(r)
        })
    }

    pub(crate) fn find_replica(&self, name: &str) -> Option<u32> {
        let h = self.hasher.bytes(name.as_bytes());
        self.replica_idx
            .find(h, |&r| *self.replica(r).id.name == *name)
            .copied()
    }

    pub(crate) fn find_type(&self, name: &str) -> Option<u32> {
        let name = name.as_bytes();
        self.find_type_h(name, self.hasher.bytes(name) as u32)
    }

    /// [`find_type`](Self::find_type) with the name's hash already computed.
    pub(crate) fn find_type_h(&self, name: &[u8], h: u32) -> Option<u32> {
        self.type_idx.find(h, |t| self.type_bytes(t) == name)
    }

    /// The record (`ty`, `id`) of replica slot `replica`.
    pub(crate) fn find_key(&self, replica: u32, ty: u32, id: &[u8]) -> Option<u32> {
        // The members of a type are ordered by (id, replica): the key is a
        // search there.
        let at = self.member_pos(ty, id, replica).ok()?;
        Some(self.listed(ty).idx(at))
    }

    /// The record of replica slot `replica` with this clock.
    pub(crate) fn find_dot(&self, replica: u32, clock: u64) -> Option<u32> {
        self.replica(replica).entries.get(clock)
    }

    /// Registers a replica and returns its slot.
    pub(crate) fn register(&mut self, id: ReplicaId) -> u32 {
        let h = self.hasher.bytes(id.name.as_bytes());
        let slot = ReplicaSlot {
            id,
            clock: 0,
            up: true,
            entries: Dots::default(),
            ids: Index::default(),
        };
        let r = match self.free_replicas.pop() {
            Some(r) => {
                self.replicas[r as usize] = Some(slot);
                r
            }
            None => {
                self.replicas.push(Some(slot));
                (self.replicas.len() - 1) as u32
            }
        };
        // Records pack the slot beside their clock (see `entry::MAX_SLOT`).
        debug_assert!(
            u64::from(r) <= MAX_SLOT,
            "replica slot {r} past the records' limit"
        );
        let (hasher, replicas) = (self.hasher, &self.replicas);
        self.replica_idx.insert_unique(h, r, |&x| {
            let name = &replicas[x as usize]
                .as_ref()
                .expect("indexed replicas are live")
                .id
                .name;
            hasher.bytes(name.as_bytes())
        });
        r
    }

    /// Removes a replica and all its entries. Visible entries are reported
    /// as leaves; the slot is freed at the next call.
    pub(crate) fn retire(&mut self, r: u32) {
        let s = self.replica(r);
        let h = self.hasher.bytes(s.id.name.as_bytes());
        let report = s.up;
        if let Ok(e) = self.replica_idx.find_entry(h, |&x| x == r) {
            e.remove();
        }
        let slot = self.replica_mut(r);
        let list = core::mem::take(&mut slot.entries);
        // Its index by id goes whole: the records below leave it unread.
        slot.ids = Index::default();
        if list.len() >= BULK_MIN && list.len() * 4 >= self.live_records() {
            self.unlink_bulk(list.slots(), list.len(), report);
        } else {
            for i in list.slots() {
                self.unlink(i, report, false);
            }
        }
        self.retired.push(r);
    }

    /// Removes many records of one replica at once, whose index by id the
    /// caller has dropped: instead of one search per record, the member
    /// lists of their types are swept once against a bitmap of the doomed
    /// slab slots. Used when they are a large share of the set, so the
    /// sweep still costs time in proportion to them.
    fn unlink_bulk(&mut self, list: impl Iterator<Item = u32>, n: usize, report: bool) {
        let mut dead = vec![0u64; self.slab.len().div_ceil(64)];
        let mut touched = vec![0u64; self.types.len().div_ceil(64)];
        self.free.reserve(n);
        if report {
            self.removed.reserve(n);
            self.changes.reserve(n);
        }
        for i in list {
            dead[i as usize / 64] |= 1 << (i % 64);
            let record = self.slab[i as usize]
                .take()
                .expect("listed records are live");
            touched[record.ty as usize / 64] |= 1 << (record.ty % 64);
            self.free.push(i);
            if report {
                self.removed.push(record);
                self.changes
                    .push(ChangeRec::Gone((self.removed.len() - 1) as u32));
            }
        }
        let is_dead = |i: u32| dead[i as usize / 64] >> (i % 64) & 1 == 1;
        for (w, &bits) in touched.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let t = (w * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                self.retain_members(t, |i| !is_dead(i));
                if self.type_members(t) == Members::Empty {
                    self.empty_types.push(t);
                }
            }
        }
    }

    /// Interns a type name whose hash is `h`.
    pub(crate) fn intern_type_h(&mut self, name: &[u8], h: u32) -> u32 {
        match self.find_type_h(name, h) {
            Some(t) => t,
            None => self.new_type(name, h),
        }
    }

    /// Interns a type name known to be absent, whose hash is `h`.
    pub(crate) fn new_type(&mut self, name: &[u8], h: u32) -> u32 {
        // A constant, stored whole; the name is copied in place (see
        // `Bytes::set_concat`).
        const BLANK: TypeRec = TypeRec {
            name: Name::EMPTY,
            members: Packed::EMPTY,
        };
        let tr = BLANK;
        let t = match self.free_types.pop() {
            Some(t) => {
                self.types[t as usize] = Some(tr);
                t
            }
            None => {
                self.types.push(Some(tr));
                (self.types.len() - 1) as u32
            }
        };
        if name.len() <= NAME_INLINE {
            if let Some(tr) = &mut self.types[t as usize] {
                tr.name.set_inline(name);
            }
        } else {
            let k = match self.free_names.pop() {
                Some(k) => {
                    self.long_names[k as usize] = name.into();
                    k
                }
                None => {
                    self.long_names.push(name.into());
                    (self.long_names.len() - 1) as u32
                }
            };
            if let Some(tr) = &mut self.types[t as usize] {
                tr.name = Name::Long(k);
            }
        }
        let (types, long, hasher) = (&self.types, &self.long_names, self.hasher);
        self.type_idx
            .insert(t, h, |x| type_hash(types, long, hasher, x));
        t
    }

    /// Makes room for up to `n` more types.
    pub(crate) fn reserve_types(&mut self, n: usize) {
        let extra = n.saturating_sub(self.free_types.len());
        self.types.reserve_exact(extra);
        let (types, long, hasher) = (&self.types, &self.long_names, self.hasher);
        self.type_idx
            .reserve(n, |x| type_hash(types, long, hasher, x));
    }

    /// Makes room for `n` more records of replica `r`, indexed by id.
    pub(crate) fn reserve(&mut self, r: u32, n: usize) {
        self.reserve_records(r, n);
        self.replica_mut(r).ids.reserve(n);
    }

    /// [`reserve`](Self::reserve) without the index by id, for a bulk insert
    /// that hands it the ids at once (see `Index::insert_batch`).
    pub(crate) fn reserve_records(&mut self, r: u32, n: usize) {
        let extra = n.saturating_sub(self.free.len());
        // Exact: a bulk merge would otherwise leave up to half the slab unused.
        self.slab.reserve_exact(extra);
        if let Some(s) = self.replicas[r as usize].as_mut() {
            // Headroom, so that the next small merge does not copy a big list.
            s.entries.reserve(n + n / 8);
        }
    }

    /// Orders a member against a member key: by id, then replica name, then
    /// incarnation. Every node derives the same order from the same set.
    fn member_cmp(&self, m: Member, prefix: u64, id: &[u8], name: &str, inc: u64) -> Ordering {
        match m.prefix().cmp(&prefix) {
            Ordering::Equal => {}
            other => return other,
        }
        let x = self.record(m.idx);
        cmp_bytes(x.id_bytes(), id).then_with(|| {
            let rid = &self.replica(x.replica()).id;
            (*rid.name)
                .cmp(name)
                .then_with(|| rid.incarnation.cmp(&inc))
        })
    }

    /// Where the member for `id` of replica slot `replica` is, or would go,
    /// in type `t`.
    pub(crate) fn member_pos(&self, t: u32, id: &[u8], replica: u32) -> Result<usize, usize> {
        // The prefix is computed here, in a register: a `Member` built by
        // the caller would be stored in halves and reloaded whole, a load
        // that waits for every pending store (the index writes) to land.
        let prefix = id_prefix(id);
        let rid = &self.replica(replica).id;
        let cmp = |m: Member| self.member_cmp(m, prefix, id, &rid.name, rid.incarnation);
        match self.listed(t) {
            // A lone member is compared whole (its prefix is not stored).
            Listed::One(i) => match cmp(Member::new(i, self.record(i).id_bytes())) {
                Ordering::Equal => Ok(0),
                Ordering::Less => Err(1),
                Ordering::Greater => Err(0),
            },
            Listed::List(l) => l.binary_search_by(|&m| cmp(m)),
        }
    }

    /// Stores a new record of replica `r`, already validated, and reports
    /// it as a join when `r` is up. Returns its slab index.
    pub(crate) fn insert_record(
        &mut self,
        r: u32,
        ty: &str,
        id: &str,
        clock: u64,
        prev: u64,
        meta: Meta<'_>,
    ) -> u32 {
        let ty = ty.as_bytes();
        let t = self.intern_type_h(ty, self.hasher.bytes(ty) as u32);
        let id = id.as_bytes();
        self.insert_hashed(r, t, id, self.hasher.bytes(id), clock, prev, meta, None)
    }

    /// [`insert_record`](Self::insert_record) into the interned type `t`,
    /// with the id's hash already computed. `at` is the member position in
    /// `t` when the caller has searched it already.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_hashed(
        &mut self,
        r: u32,
        t: u32,
        id: &[u8],
        id_hash: u64,
        clock: u64,
        prev: u64,
        meta: Meta<'_>,
        at: Option<usize>,
    ) -> u32 {
        let i = self.store_record(r, t, id, clock, prev, meta, at);
        self.index_id(r, i, id_hash as u32);
        i
    }

    /// Stores a new record of replica `r` in the interned type `t`, in its
    /// type's members and its replica's list, and reports it as a join when
    /// `r` is up; the index by id is left to [`index_id`](Self::index_id).
    /// `at` is the member position in `t` when the caller has searched it
    /// already. Returns the record's slab index.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn store_record(
        &mut self,
        r: u32,
        t: u32,
        id: &[u8],
        clock: u64,
        prev: u64,
        meta: Meta<'_>,
        at: Option<usize>,
    ) -> u32 {
        let i = self.put_record(r, t, id, clock, prev, meta);
        let at = at.unwrap_or_else(|| match self.member_pos(t, id, r) {
            Ok(at) | Err(at) => at,
        });
        self.insert_member(t, at, Member::new(i, id));
        i
    }

    /// [`store_record`](Self::store_record) but for the members of its type:
    /// the caller adds it there, with [`add_members`](Self::add_members) or
    /// [`first_member`](Self::first_member).
    // Always inlined: as a call, its by-value arguments go through the
    // stack, and reloading them wide waits for every pending store to land.
    #[inline(always)]
    pub(crate) fn put_record(
        &mut self,
        r: u32,
        t: u32,
        id: &[u8],
        clock: u64,
        prev: u64,
        meta: Meta<'_>,
    ) -> u32 {
        // The bytes are copied in place (see `Bytes::set_concat`).
        let i = self.place(Record::blank(meta.slot, clock, r, t));
        if let Some(x) = &mut self.slab[i as usize] {
            x.set_bytes(id, meta, prev);
        }
        self.file_record(r, clock, i);
        i
    }

    /// [`put_record`](Self::put_record) of a copy of `src`, a record of
    /// another set, into replica slot `r` and type slot `t`: its bytes hold
    /// only what the entry itself carries (its id, state, data and previous
    /// clock), so they are copied whole rather than read apart and joined
    /// again, in place (see `Bytes::set_copy`).
    #[inline(always)]
    pub(crate) fn put_copy(&mut self, r: u32, t: u32, src: &Record) -> u32 {
        let i = self.place(Record::blank(src.slot, src.clock(), r, t));
        if let Some(x) = &mut self.slab[i as usize] {
            x.bytes.set_copy(&src.bytes);
        }
        self.file_record(r, src.clock(), i);
        i
    }

    /// Stores `record` in a free slab slot, or a new one, and returns it.
    #[inline(always)]
    fn place(&mut self, record: Record) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(record);
                i
            }
            None => {
                self.slab.push(Some(record));
                (self.slab.len() - 1) as u32
            }
        }
    }

    /// Files the stored record `i` of replica slot `r` under its clock, and
    /// reports it as a join if the replica is up.
    #[inline(always)]
    fn file_record(&mut self, r: u32, clock: u64, i: u32) {
        let s = self.replicas[r as usize].as_mut().expect("live replica");
        s.entries.insert(clock, i);
        if s.up {
            self.push_join(i);
        }
    }

    /// Makes the stored record `i` the only member of type `t`, which has
    /// none (it was just interned): this needs no search.
    pub(crate) fn first_member(&mut self, t: u32, i: u32) {
        let tr = self.types[t as usize].as_mut().expect("live type");
        debug_assert!(tr.members == Packed::EMPTY);
        tr.members = Packed::of(Members::One(i));
    }

    /// Whether `later`'s (type, member) pairs are known to name distinct
    /// types. The check marks them in a bitmap of all the types, so it is
    /// made only where that costs no more than `later` itself; elsewhere
    /// the answer is no.
    pub(crate) fn distinct_types(&self, later: &[(u32, Member)]) -> bool {
        let words = self.types.len().div_ceil(64);
        if words > later.len() {
            return false;
        }
        let mut seen = vec![0u64; words];
        later.iter().all(|&(t, _)| {
            let (w, bit) = (t as usize / 64, 1u64 << (t % 64));
            let new = seen[w] & bit == 0;
            seen[w] |= bit;
            new
        })
    }

    /// Adds the stored records of replica slot `r` in `later`, (type,
    /// member) pairs grouped by type (sorted, or of distinct types) and not
    /// yet members, to the members of their types. A type given one record
    /// (the common case) has it searched for in a window of such types: the
    /// first loads of each search (the type's member list, its middle
    /// member) do not depend on another search, so they are issued together
    /// and their cache misses overlap; the record itself is read only where
    /// id prefixes tie.
    pub(crate) fn add_later(&mut self, r: u32, later: &[(u32, Member)]) {
        let mut single: Vec<(u32, Member)> = Vec::new();
        let mut list: Vec<u32> = Vec::new();
        for group in later.chunk_by(|a, b| a.0 == b.0) {
            if let [one] = group {
                single.push(*one);
            } else {
                list.clear();
                list.extend(group.iter().map(|&(_, m)| m.idx));
                self.add_members(group[0].0, &list);
            }
        }
        let rid = &self.replica(r).id;
        let (name, inc) = (rid.name.clone(), rid.incarnation);
        let mut at: Vec<usize> = Vec::with_capacity(WINDOW);
        for window in single.chunks(WINDOW) {
            at.clear();
            // The first loads of each search, issued together: the type's
            // members and the prefixes of its first, middle and last
            // member (between them, the cache lines of a short list).
            let keys: Vec<(Listed<'_>, [u64; 3])> = window
                .iter()
                .map(|&(t, _)| {
                    let m = self.listed(t);
                    let marks = match m {
                        Listed::One(i) => [id_prefix(self.record(i).id_bytes()); 3],
                        Listed::List(l) => match (l.first(), l.last()) {
                            (Some(a), Some(z)) => [a.prefix(), l[l.len() / 2].prefix(), z.prefix()],
                            _ => [0; 3],
                        },
                    };
                    (m, marks)
                })
                .collect();
            for (&(listed, [first, mid, last]), &(_, key)) in keys.iter().zip(window) {
                let prefix = key.prefix();
                let cmp = |&y: &Member| match y.prefix().cmp(&prefix) {
                    Ordering::Equal => {
                        let id = self.record(key.idx).id_bytes();
                        self.member_cmp(y, prefix, id, &name, inc)
                    }
                    other => other,
                };
                let m = match listed {
                    Listed::List(l) => l,
                    Listed::One(i) => {
                        let one = Member::new(i, self.record(i).id_bytes());
                        at.push(match cmp(&one) {
                            Ordering::Greater => 0,
                            _ => 1,
                        });
                        continue;
                    }
                };
                // Below the first or above the last member, the key goes at
                // an end. Else a short list is counted through without
                // branches: the members whose prefix is below the key's come
                // first, and unless one ties with it, that count is the
                // position.
                if prefix < first {
                    at.push(0);
                    continue;
                }
                if prefix > last {
                    at.push(m.len());
                    continue;
                }
                if m.len() <= SCAN_MAX {
                    let below = m.iter().filter(|y| y.prefix() < prefix).count();
                    let ties = m.iter().filter(|y| y.prefix() == prefix).count();
                    if ties == 0 {
                        at.push(below);
                        continue;
                    }
                }
                // The middle member's prefix, loaded above, often settles
                // which half to search.
                let half = m.len() / 2;
                let pos = if prefix < mid {
                    m[..half].binary_search_by(cmp)
                } else if prefix > mid {
                    m[half..]
                        .binary_search_by(cmp)
                        .map(|p| p + half)
                        .map_err(|p| p + half)
                } else {
                    m.binary_search_by(cmp)
                };
                at.push(match pos {
                    Ok(p) | Err(p) => p,
                });
            }
            drop(keys);
            for (&(t, key), &p) in window.iter().zip(&at) {
                self.insert_member(t, p, key);
            }
        }
    }

    /// Adds the stored records `list` (slab indexes, not yet members) to the
    /// members of type `t`. A few are searched for one by one; more are
    /// sorted and merged with the members in one pass, so that a large
    /// merge into one type costs `n log n`, not `n` squared moves.
    pub(crate) fn add_members(&mut self, t: u32, list: &[u32]) {
        if list.len() <= MERGE_MIN {
            for &i in list {
                let x = self.record(i);
                let at = match self.member_pos(t, x.id_bytes(), x.replica()) {
                    Ok(at) | Err(at) => at,
                };
                let key = Member::new(i, x.id_bytes());
                self.insert_member(t, at, key);
            }
            return;
        }
        let mut add: Vec<Member> = list
            .iter()
            .map(|&i| Member::new(i, self.record(i).id_bytes()))
            .collect();
        add.sort_unstable_by(|&a, &b| self.member_order(a, b));
        let old = self.member_list(t);
        let mut all = Vec::with_capacity(old.len() + add.len());
        let (mut x, mut y) = (0, 0);
        while x < old.len() && y < add.len() {
            if self.member_order(old[x], add[y]) == Ordering::Less {
                all.push(old[x]);
                x += 1;
            } else {
                all.push(add[y]);
                y += 1;
            }
        }
        all.extend_from_slice(&old[x..]);
        all.extend_from_slice(&add[y..]);
        self.set_members(t, all);
    }

    /// The read order of two members.
    fn member_order(&self, a: Member, b: Member) -> Ordering {
        let y = self.record(b.idx);
        let rid = &self.replica(y.replica()).id;
        self.member_cmp(a, b.prefix(), y.id_bytes(), &rid.name, rid.incarnation)
    }

    /// Adds the stored record `i` of replica slot `r`, whose id hashes to
    /// `id_hash` (low 32 bits), to that replica's index by id.
    pub(crate) fn index_id(&mut self, r: u32, i: u32, id_hash: u32) {
        self.replica_mut(r).ids.insert_unique((i, id_hash));
    }

    /// Removes a record; reports it as a leave when its replica is up and
    /// `report` is set.
    pub(crate) fn remove_record(&mut self, i: u32, report: bool) {
        self.unlink(i, report, true);
    }

    /// Removes record `i` from its type and (if `from_list`) from its
    /// replica's list and index by id, then keeps it for the change views
    /// or drops it. A replica that goes whole drops its list and index
    /// itself.
    fn unlink(&mut self, i: u32, report: bool, from_list: bool) {
        let x = self.record(i);
        let (r, t, clock) = (x.replica(), x.ty, x.clock());
        let id_hash = from_list.then(|| self.hasher.bytes(x.id_bytes()) as u32);
        // Small types are scanned for the index itself, which reads no
        // other record; large ones are searched by key.
        let members = self.listed(t);
        let at = if members.len() <= SCAN_MAX {
            members.iter().position(|m| m == i).ok_or(0)
        } else {
            self.member_pos(t, x.id_bytes(), r)
        };
        if let Ok(at) = at {
            self.remove_member(t, at);
            if self.type_members(t) == Members::Empty {
                self.empty_types.push(t);
            }
        }
        let record = self.slab[i as usize].take().expect("live record");
        self.free.push(i);
        let s = self.replicas[r as usize]
            .as_mut()
            .expect("a record's replica is live");
        if let Some(h) = id_hash {
            s.entries.remove(clock);
            s.ids.remove(h, |&(x, _)| x == i);
        }
        if report && s.up {
            self.removed.push(record);
            self.changes
                .push(ChangeRec::Gone((self.removed.len() - 1) as u32));
        }
    }
}
