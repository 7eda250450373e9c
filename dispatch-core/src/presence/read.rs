//! Reads: borrowed views of entries and of the last call's changes.

use super::entry::{Meta, Record, Ref, WireEntry};
use super::members::{Listed, Packed};
use super::replica::ReplicaId;
use super::store::ChangeRec;
use super::Presence;

/// A borrowed view of one entry; reading it copies nothing.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    set: &'a Presence,
    rec: &'a Record,
}

impl<'a> EntryRef<'a> {
    /// The service type.
    pub fn ty(&self) -> &'a str {
        self.set.type_name(self.rec.ty)
    }

    /// The service id.
    pub fn id(&self) -> &'a str {
        self.rec.id()
    }

    /// The replica that owns the entry.
    pub fn replica(&self) -> &'a ReplicaId {
        &self.set.replica(self.rec.replica()).id
    }

    /// The metadata.
    pub fn meta(&self) -> Meta<'a> {
        self.rec.meta()
    }

    /// The entry's ref: the dot of the operation that added it.
    pub fn reference(&self) -> Ref {
        Ref {
            incarnation: self.replica().incarnation,
            clock: self.rec.clock(),
        }
    }

    /// The ref of the entry this one replaced by an update, if any.
    pub fn prev(&self) -> Option<Ref> {
        let prev = self.rec.prev();
        (prev != 0).then(|| Ref {
            incarnation: self.replica().incarnation,
            clock: prev,
        })
    }
}

impl core::fmt::Debug for EntryRef<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EntryRef")
            .field("ty", &self.ty())
            .field("id", &self.id())
            .field("replica", self.replica())
            .field("meta", &self.meta())
            .field("ref", &self.reference())
            .field("prev", &self.prev())
            .finish()
    }
}

/// Whether an entry became visible or stopped being visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// It became visible.
    Join,
    /// It stopped being visible.
    Leave,
}

/// One change of the last mutating call.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// Join or leave.
    pub kind: ChangeKind,
    /// The entry (for a removed entry, as it was).
    pub entry: EntryRef<'a>,
}

/// Counts of what the set holds, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries, hidden ones included.
    pub entries: usize,
    /// Entries visible to reads.
    pub visible: usize,
    /// Service types with at least one entry.
    pub types: usize,
    /// Known replicas, ours included.
    pub replicas: usize,
    /// Bytes of ids, user data, type names and replica names.
    pub string_bytes: usize,
}

impl Presence {
    /// The visible entries of a type, ordered by (id, replica name): every
    /// node holding the same set lists them in the same order.
    pub fn entries_of_type<'a>(&'a self, ty: &str) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let members = match self.find_type(ty) {
            Some(t) => self.listed(t),
            None => Listed::List(&[]),
        };
        members.iter().filter_map(move |i| self.visible(i))
    }

    /// The visible entries with this service id, of every type and replica,
    /// in no particular order. Each replica indexes its own entries by id,
    /// so this costs one lookup per known replica.
    pub fn entries_of_id<'a>(&'a self, id: &'a str) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let h = self.hasher.bytes(id.as_bytes()) as u32;
        self.replicas
            .iter()
            .flatten()
            .flat_map(move |s| s.ids.iter_hash(h))
            .filter(move |&&(i, hh)| hh == h && self.record(i).id_bytes() == id.as_bytes())
            .filter_map(move |&(i, _)| self.visible(i))
    }

    /// The visible entry (`ty`, `id`) of the replica named `replica`.
    pub fn get(&self, replica: &str, ty: &str, id: &str) -> Option<EntryRef<'_>> {
        let r = self.find_replica(replica)?;
        let t = self.find_type(ty)?;
        self.visible(self.find_key(r, t, id.as_bytes())?)
    }

    /// Every visible entry, grouped by type in no particular type order.
    pub fn entries(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter_map(move |(i, r)| r.as_ref().and_then(|_| self.visible(i as u32)))
    }

    /// The entries that joined and left in the last mutating call, in the
    /// order they happened. An update is a leave of the old entry followed
    /// by a join of the new one.
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> + '_ {
        // The last slab index and kind of a join or leave, for `More`.
        let (mut last, mut last_kind) = (0, ChangeKind::Join);
        self.changes.iter().flat_map(move |c| {
            let (from, len, kind) = match *c {
                ChangeRec::Join(i) => (i, 1, Some(ChangeKind::Join)),
                ChangeRec::Leave(i) => (i, 1, Some(ChangeKind::Leave)),
                ChangeRec::More(n) => (last + 1, n, Some(last_kind)),
                ChangeRec::Gone(k) => (k, 1, None),
            };
            if let Some(kind) = kind {
                (last, last_kind) = (from + len - 1, kind);
            }
            (from..from + len).map(move |i| match kind {
                Some(kind) => Change {
                    kind,
                    entry: self.view(i),
                },
                None => Change {
                    kind: ChangeKind::Leave,
                    entry: EntryRef {
                        set: self,
                        rec: &self.removed[i as usize],
                    },
                },
            })
        })
    }

    /// Counts of what the set holds. Costs time in proportion to the set.
    pub fn stats(&self) -> Stats {
        let mut st = Stats::default();
        for s in self.replicas.iter().flatten() {
            st.replicas += 1;
            st.entries += s.entries.len();
            st.string_bytes += s.id.name.len();
            if s.up {
                st.visible += s.entries.len();
            }
        }
        st.replicas -= self.retired.len();
        for r in self.slab.iter().flatten() {
            st.string_bytes += r.string_len();
        }
        for t in self.types.iter().flatten() {
            if t.members != Packed::EMPTY {
                st.types += 1;
            }
            st.string_bytes += self.name_bytes(&t.name).len();
        }
        st
    }

    fn view(&self, i: u32) -> EntryRef<'_> {
        EntryRef {
            set: self,
            rec: self.record(i),
        }
    }

    fn visible(&self, i: u32) -> Option<EntryRef<'_>> {
        let rec = self.record(i);
        self.replica(rec.replica())
            .up
            .then_some(EntryRef { set: self, rec })
    }

    /// Record `i` for the merge code.
    #[inline]
    pub(crate) fn raw(&self, i: u32) -> super::entry::Raw<'_> {
        super::entry::Raw {
            ty: self.type_bytes(self.record(i).ty),
            ..self.untyped(i)
        }
    }

    /// Record `i` for the merge code, but for its type (left empty), for a
    /// pass that has read the type already.
    #[inline]
    pub(crate) fn untyped(&self, i: u32) -> super::entry::Raw<'_> {
        let r = self.record(i);
        let (id, meta, prev) = r.parts();
        super::entry::Raw {
            ty: &[],
            id,
            clock: r.clock(),
            prev,
            meta,
        }
    }

    /// Record `i` as it goes on the wire.
    pub(crate) fn wire(&self, i: u32) -> WireEntry<'_> {
        let r = self.record(i);
        WireEntry {
            ty: self.type_name(r.ty),
            id: r.id(),
            clock: r.clock(),
            prev: r.prev(),
            meta: r.meta(),
        }
    }
}
