//! The plain baseline of lines 1 and 3: the same entries put into plain
//! hash tables, timed in a fresh process just after each run of the
//! workload, so that those two lines can be read against what this host
//! does with the same kind of work at nearly the same moment.
//!
//! The plain tables keep a 40-byte record per entry (its clock, its type's
//! slot and its id and data bytes inline, as the set's record does), the
//! type names in 16-byte records, and hashbrown tables of (64-bit hash,
//! slot) for the types and for the ids. They check nothing but that merged
//! clocks increase, compare no names (a hash stands for its name), keep no
//! order among a type's members and record no dots, delta or changes: they
//! do less work per entry than the set. Their tables take more memory
//! (16-byte buckets, where the set's type index has 4-byte ones), so they
//! take more page faults. Both are timed on one host at nearly one moment,
//! so a slow line can be read against what the host did with plain tables
//! then; on a noisy host the ratio moves from run to run too, so read it
//! over several runs (`--runs N`).

use std::hash::BuildHasher;
use std::hint::black_box;
use std::time::Instant;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{faults_since, minor_faults, mix, ms, Namer};

/// Bytes of id and data a plain record holds.
const INLINE: usize = 26;

/// Bytes of a type name a plain type record holds.
const NAME: usize = 15;

/// An entry: 40 bytes, as the set's record.
#[derive(Clone, Copy)]
struct Rec {
    clock: u64,
    ty: u32,
    id_len: u8,
    data_len: u8,
    bytes: [u8; INLINE],
}

/// A type's name: 16 bytes, as the set's type record.
#[derive(Clone, Copy)]
struct TypeName {
    len: u8,
    bytes: [u8; NAME],
}

/// Entries in plain hash tables (see the module doc).
pub(crate) struct Plain {
    hasher: DefaultHashBuilder,
    clock: u64,
    records: Vec<Rec>,
    names: Vec<TypeName>,
    /// (hash of the name, type slot).
    types: HashTable<(u64, u32)>,
    /// (hash of the id, record index).
    ids: HashTable<(u64, u32)>,
}

impl Plain {
    pub(crate) fn new() -> Self {
        Plain {
            hasher: DefaultHashBuilder::default(),
            clock: 0,
            records: Vec::new(),
            names: Vec::new(),
            types: HashTable::new(),
            ids: HashTable::new(),
        }
    }

    /// How many entries it holds.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// How many types it holds.
    pub(crate) fn types(&self) -> usize {
        self.names.len()
    }

    /// The slot of the type `name`, added if new.
    fn type_slot(&mut self, name: &[u8]) -> u32 {
        let h = self.hasher.hash_one(name);
        if let Some(&(_, t)) = self.types.find(h, |&(k, _)| k == h) {
            return t;
        }
        assert!(name.len() <= NAME, "plain type names hold {NAME} bytes");
        let mut rec = TypeName {
            len: name.len() as u8,
            bytes: [0; NAME],
        };
        rec.bytes[..name.len()].copy_from_slice(name);
        let t = self.names.len() as u32;
        self.names.push(rec);
        self.types.insert_unique(h, (h, t), |&(k, _)| k);
        t
    }

    /// Puts an entry of type slot `ty` added at `clock`.
    fn put(&mut self, ty: u32, clock: u64, id: &[u8], data: &[u8]) {
        assert!(
            id.len() + data.len() <= INLINE,
            "plain records hold {INLINE} bytes of id and data"
        );
        let mut rec = Rec {
            clock,
            ty,
            id_len: id.len() as u8,
            data_len: data.len() as u8,
            bytes: [0; INLINE],
        };
        rec.bytes[..id.len()].copy_from_slice(id);
        rec.bytes[id.len()..id.len() + data.len()].copy_from_slice(data);
        let i = self.records.len() as u32;
        self.records.push(rec);
        let h = self.hasher.hash_one(id);
        self.ids.insert_unique(h, (h, i), |&(k, _)| k);
    }

    /// Adds an entry, as a local add of the set does.
    pub(crate) fn add(&mut self, ty: &str, id: &str, data: &[u8]) {
        let t = self.type_slot(ty.as_bytes());
        self.clock += 1;
        self.put(t, self.clock, id.as_bytes(), data);
    }

    /// Adds every entry of `other` with the clock it has there, as line
    /// 3's merge does: room first, then per entry its type, its record and
    /// its id. Like the set's, it refuses clocks that do not increase.
    pub(crate) fn merge(&mut self, other: &Plain) {
        self.records.reserve(other.len());
        self.ids.reserve(other.len(), |&(k, _)| k);
        self.types.reserve(other.types(), |&(k, _)| k);
        self.names.reserve(other.types());
        let mut last = 0;
        for rec in &other.records {
            assert!(rec.clock > last, "a plain merge takes increasing clocks");
            last = rec.clock;
            let name = &other.names[rec.ty as usize];
            let t = self.type_slot(&name.bytes[..name.len as usize]);
            let id = &rec.bytes[..rec.id_len as usize];
            let data = &rec.bytes[rec.id_len as usize..(rec.id_len + rec.data_len) as usize];
            self.put(t, rec.clock, id, data);
        }
    }
}

/// Line 1 and line 3 of the plain baseline, each in milliseconds with its
/// page faults (where the system counts them).
pub(crate) struct PlainRun {
    pub(crate) lines: [(f64, Option<u64>); 2],
}

/// Runs lines 1 and 3 of the workload on plain tables: two sets of `size`
/// entries made with the workload's names, then the second merged into
/// the first (which holds one more entry). The steps between them that
/// allocate or free memory in a run of the set (the first-touch timing of
/// line 1) are done here too, so that the allocator is in the same state.
pub(crate) fn run(size: u64, types: u64) -> PlainRun {
    let f = minor_faults();
    let t = Instant::now();
    let mut s1 = Plain::new();
    let (mut ty, mut id) = (Namer::new("topic"), Namer::new("user"));
    for i in 0..size {
        s1.add(ty.name(mix(i) % types), id.name(i), &i.to_le_bytes());
    }
    let mut s2 = Plain::new();
    let (mut ty, mut id) = (Namer::new("topic"), Namer::new("user"));
    for i in 0..size {
        s2.add(ty.name(i), id.name(i), &i.to_le_bytes());
    }
    let create = ms(t);
    // Times first touches of as many fresh pages, as a run of the set does
    // after line 1; only the count is reported.
    let create_faults = faults_since(f).map(|(n, _)| n);

    s1.add("topic-extra", "user-extra", b"extra");
    let f = minor_faults();
    let t = Instant::now();
    s1.merge(black_box(&s2));
    let merge = ms(t);
    let merge_faults = minor_faults().zip(f).map(|(now, before)| now - before);
    assert_eq!(
        s1.len() as u64,
        2 * size + 1,
        "the plain merge adds every entry"
    );
    black_box(&s1);
    PlainRun {
        lines: [(create, create_faults), (merge, merge_faults)],
    }
}

#[cfg(test)]
mod tests {
    use super::Plain;

    #[test]
    fn a_plain_merge_keeps_every_entry_and_shares_the_types_it_has() {
        let mut a = Plain::new();
        a.add("topic1", "user1", b"x");
        a.add("topic2", "user2", b"y");
        let mut b = Plain::new();
        b.add("topic2", "user3", b"zz");
        b.add("topic3", "user4", b"");
        a.merge(&b);
        assert_eq!((a.len(), a.types()), (4, 3));
        // The merged records name a's type slots and keep their bytes.
        let last = a.records[3];
        let name = a.names[last.ty as usize];
        assert_eq!(&name.bytes[..name.len as usize], b"topic3");
        assert_eq!(&last.bytes[..last.id_len as usize], b"user4");
        assert_eq!(last.clock, 2, "a merged entry keeps its clock");
        let third = a.records[2];
        assert_eq!(third.ty, a.records[1].ty, "topic2 is one type");
        let end = (third.id_len + third.data_len) as usize;
        assert_eq!(&third.bytes[..end], b"user3zz");
    }
}
