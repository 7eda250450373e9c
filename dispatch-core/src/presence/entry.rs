//! Entries: the service instances the set holds, and their metadata.

use alloc::boxed::Box;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Whether an instance takes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    /// Routing may pick it.
    Online,
    /// Routing skips it unless the caller allows offline instances.
    Offline,
}

/// The metadata of an entry: its state, its ring slot and small user bytes.
///
/// Borrowed, so that reads and the wire format need not copy it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Meta<'a> {
    /// Online or offline.
    pub state: State,
    /// The ring slot chosen by the ring layer; the set only stores it.
    pub slot: u32,
    /// User bytes, at most `Config::max_data_len`.
    pub data: &'a [u8],
}

impl<'a> Meta<'a> {
    /// Online metadata with this slot and data.
    pub const fn online(slot: u32, data: &'a [u8]) -> Self {
        Meta {
            state: State::Online,
            slot,
            data,
        }
    }
}

/// The tag of an entry: the incarnation and clock of the replica operation
/// that added it. With the replica name it identifies the entry everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    /// The incarnation of the replica that wrote the entry.
    pub incarnation: u64,
    /// The replica's clock after the operation that added the entry.
    pub clock: u64,
}

/// An entry as it travels inside deltas and extracts (borrowed strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry<'a> {
    /// The service type.
    pub ty: &'a str,
    /// The service id.
    pub id: &'a str,
    /// The clock of the operation that added it (its ref).
    pub clock: u64,
    /// The clock of the entry it replaced (its previous ref), 0 if none.
    pub prev: u64,
    /// Its metadata.
    #[serde(borrow)]
    pub meta: Meta<'a>,
}

/// The most bytes of id, data and previous clock stored in the record
/// itself.
const INLINE: usize = 22;

/// A length of inline bytes. An enum so that the values above [`INLINE`]
/// are free for the compiler to tag [`Bytes`] with: it stays 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Len {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
}

const LENS: [Len; INLINE + 1] = {
    use Len::*;
    [
        L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18, L19,
        L20, L21, L22,
    ]
};

/// Copies `src` into `dst`, of the same length and at most [`INLINE`]
/// bytes, with a few fixed-size moves: a call to `memcpy` for each piece of
/// a record's bytes would cost more than the copy.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert!(dst.len() == n && n <= INLINE);
    if n >= 8 {
        // Eight bytes at a time, the last move overlapping the one before.
        // Written out: as a loop, it would be turned back into a call.
        if n > 8 {
            dst[..8].copy_from_slice(&src[..8]);
        }
        if n > 16 {
            dst[8..16].copy_from_slice(&src[8..16]);
        }
        dst[n - 8..n].copy_from_slice(&src[n - 8..n]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..n]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// The id, user data and previous clock of an entry, in the record when
/// short (no allocation, no pointer to follow), else in one allocation;
/// with the record's head: the id's length and the entry's flags
/// ([`OFFLINE`], [`HAS_PREV`]). An inline head is one byte (the id is at
/// most [`INLINE`] bytes long there), flags in its top two bits; an
/// allocation starts with its head, four bytes little-endian.
#[derive(Debug, Clone)]
pub(crate) enum Bytes {
    Inline {
        buf: [u8; INLINE],
        head: u8,
        len: Len,
    },
    Heap(Box<[u8]>),
}

/// The bytes the head takes at the start of an allocation.
const HEAP_HEAD: usize = 4;

const _: () = assert!(core::mem::size_of::<Bytes>() == 24);

/// The bits of an inline head that hold the id's length.
const INLINE_LEN: u8 = 0x3f;

/// How far the flags move from a head to an inline head.
const INLINE_FLAGS_SHIFT: u32 = 24;

const _: () = assert!(INLINE <= INLINE_LEN as usize);
const _: () = assert!(FLAGS >> INLINE_FLAGS_SHIFT & INLINE_LEN as u32 == 0);

impl Bytes {
    /// No bytes, stored inline.
    pub(crate) const EMPTY: Bytes = Bytes::Inline {
        buf: [0; INLINE],
        head: 0,
        len: Len::L0,
    };

    /// Makes these bytes `a`, `b` then `c`, copying them in place, with
    /// `head`, whose length part must be at most `a`'s length. Hot paths
    /// store a record with [`EMPTY`](Self::EMPTY) bytes and then set them:
    /// bytes copied into a buffer that is then moved whole would make the
    /// move wait for every pending store to land.
    #[inline]
    pub(crate) fn set_concat(&mut self, head: u32, a: &[u8], b: &[u8], c: &[u8]) {
        let n = a.len() + b.len() + c.len();
        if n <= INLINE {
            // Bytes already inline (a new record's are empty) keep their
            // buffer: only the length, the head and the bytes are written.
            if let Bytes::Heap(_) = self {
                *self = Bytes::EMPTY;
            }
            if let Bytes::Inline { buf, head: h, len } = self {
                *len = LENS[n];
                *h = (head & !FLAGS) as u8 | (head >> INLINE_FLAGS_SHIFT) as u8;
                let (ab, rest) = buf.split_at_mut(a.len());
                let (bb, cb) = rest.split_at_mut(b.len());
                copy_short(ab, a);
                copy_short(bb, b);
                copy_short(&mut cb[..c.len()], c);
            }
        } else {
            let mut v = Vec::with_capacity(HEAP_HEAD + n);
            v.extend_from_slice(&head.to_le_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            v.extend_from_slice(c);
            *self = Bytes::Heap(v.into_boxed_slice());
        }
    }

    /// Makes these bytes a copy of `src`. Inline bytes are copied in
    /// place, field by field, straight from `src` (see
    /// [`set_concat`](Self::set_concat)): a clone built aside and then
    /// moved in is read back in pieces that straddle its own stores, and
    /// each such read waits for every pending store to land.
    #[inline]
    pub(crate) fn set_copy(&mut self, src: &Bytes) {
        match src {
            Bytes::Inline { buf, head, len } => {
                if let Bytes::Heap(_) = self {
                    *self = Bytes::EMPTY;
                }
                if let Bytes::Inline {
                    buf: b,
                    head: h,
                    len: l,
                } = self
                {
                    *b = *buf;
                    *h = *head;
                    *l = *len;
                }
            }
            Bytes::Heap(b) => *self = Bytes::Heap(b.clone()),
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Inline { buf, len, .. } => &buf[..*len as usize],
            Bytes::Heap(b) => &b[HEAP_HEAD..],
        }
    }

    /// The head: the id's length with [`OFFLINE`] and [`HAS_PREV`].
    #[inline]
    pub(crate) fn head(&self) -> u32 {
        match *self {
            Bytes::Inline { head, .. } => {
                u32::from(head & INLINE_LEN) | u32::from(head & !INLINE_LEN) << INLINE_FLAGS_SHIFT
            }
            Bytes::Heap(ref b) => {
                let mut w = [0u8; HEAP_HEAD];
                w.copy_from_slice(&b[..HEAP_HEAD]);
                u32::from_le_bytes(w)
            }
        }
    }
}

/// The most bytes of a type name stored in its type record itself.
pub(crate) const NAME_INLINE: usize = 11;

/// A type name: in the type record when short (service type names are),
/// else the slot of the name in the set's table of long names, so that a
/// type record holds no pointer and stays 16 bytes. Twelve bytes, the
/// niche of [`Len`] tagging it. [`Presence::name_bytes`](super::Presence)
/// reads either form.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Name {
    Inline { buf: [u8; NAME_INLINE], len: Len },
    Long(u32),
}

const _: () = assert!(core::mem::size_of::<Name>() == 12);

impl Name {
    /// No bytes, stored inline.
    pub(crate) const EMPTY: Name = Name::Inline {
        buf: [0; NAME_INLINE],
        len: Len::L0,
    };

    /// Makes the name `b`, of at most [`NAME_INLINE`] bytes, copying it in
    /// place (see [`Bytes::set_concat`]).
    #[inline]
    pub(crate) fn set_inline(&mut self, b: &[u8]) {
        debug_assert!(b.len() <= NAME_INLINE);
        if let Name::Long(_) = self {
            *self = Name::EMPTY;
        }
        if let Name::Inline { buf, len } = self {
            *len = LENS[b.len()];
            copy_short(&mut buf[..b.len()], b);
        }
    }

    /// The bytes of an inline name; `None` for a long one.
    #[inline]
    pub(crate) fn inline(&self) -> Option<&[u8]> {
        match self {
            Name::Inline { buf, len } => Some(&buf[..*len as usize]),
            Name::Long(_) => None,
        }
    }
}

/// One stored entry: 40 bytes, the bulk of a large set. The id and the
/// user data are stored together, and so is the previous ref of an entry
/// that replaced another (most entries have none, and keeping it out of
/// the fixed part keeps the record small); the clock and the replica slot
/// share a word.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// `id` bytes, then `data` bytes, then for a record with [`HAS_PREV`]
    /// set the previous clock (eight bytes, little-endian); and the head.
    pub(crate) bytes: Bytes,
    /// The clock in the low [`CLOCK_BITS`] bits, the replica slot above.
    dot: u64,
    /// Interned type slot.
    pub(crate) ty: u32,
    pub(crate) slot: u32,
}

/// The bits of `Record::dot` that hold the clock: clocks stay at most
/// [`MAX_CLOCK`](super::MAX_CLOCK), which merges and local operations check.
const CLOCK_BITS: u32 = 48;

/// The largest replica slot a record can name: slots stay below twice
/// [`MAX_REPLICAS`](super::MAX_REPLICAS) (the known replicas, plus those
/// replaced within one call).
pub(crate) const MAX_SLOT: u64 = u64::MAX >> CLOCK_BITS;

const _: () = assert!(super::config::MAX_CLOCK == (1 << CLOCK_BITS) - 1);
const _: () = assert!(2 * super::config::MAX_REPLICAS as u64 - 1 <= MAX_SLOT);

/// The bit of a record's head that holds the state; lengths stay below it.
const OFFLINE: u32 = 1 << 31;

/// The bit of a record's head set when the bytes end with a previous clock.
const HAS_PREV: u32 = 1 << 30;

/// The bits of a head that are not the length.
const FLAGS: u32 = OFFLINE | HAS_PREV;

/// The bytes a previous clock takes at the end of a record's bytes.
const PREV_LEN: usize = 8;

const _: () = assert!(super::config::MAX_LEN < HAS_PREV);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<Option<Record>>() == 40);

impl Record {
    /// A record of replica slot `replica` at `clock` in type slot `ty`,
    /// with ring slot `slot`, but with no bytes yet: set them in place with
    /// [`set_bytes`](Self::set_bytes) (see [`Bytes::set_concat`]).
    #[inline]
    pub(crate) fn blank(slot: u32, clock: u64, replica: u32, ty: u32) -> Self {
        debug_assert!(clock <= super::config::MAX_CLOCK && u64::from(replica) <= MAX_SLOT);
        Record {
            bytes: Bytes::EMPTY,
            dot: clock | u64::from(replica) << CLOCK_BITS,
            ty,
            slot,
        }
    }

    /// The clock of the operation that added the entry.
    #[inline]
    pub(crate) fn clock(&self) -> u64 {
        self.dot & super::config::MAX_CLOCK
    }

    /// The replica slot.
    #[inline]
    pub(crate) fn replica(&self) -> u32 {
        (self.dot >> CLOCK_BITS) as u32
    }

    /// Stores the id, the state and data of `meta`, and the previous clock
    /// `prev` (0 for none).
    #[inline]
    pub(crate) fn set_bytes(&mut self, id: &[u8], meta: Meta<'_>, prev: u64) {
        let state = match meta.state {
            State::Online => 0,
            State::Offline => OFFLINE,
        };
        let head = id.len() as u32 | state;
        if prev == 0 {
            self.bytes.set_concat(head, id, meta.data, &[]);
        } else {
            let prev = prev.to_le_bytes();
            self.bytes.set_concat(head | HAS_PREV, id, meta.data, &prev);
        }
    }

    fn id_len(&self) -> usize {
        (self.bytes.head() & !FLAGS) as usize
    }

    /// Where the data ends in the bytes.
    fn data_end(&self) -> usize {
        let n = self.bytes.as_slice().len();
        if self.bytes.head() & HAS_PREV == 0 {
            n
        } else {
            n - PREV_LEN
        }
    }

    pub(crate) fn id_bytes(&self) -> &[u8] {
        &self.bytes.as_slice()[..self.id_len()]
    }

    pub(crate) fn id(&self) -> &str {
        // Only `&str` ids are stored and `id_len` is their length, so the
        // prefix is always valid UTF-8; the fallback is never taken.
        core::str::from_utf8(self.id_bytes()).unwrap_or_default()
    }

    /// The clock of the entry this one replaced, 0 if none.
    pub(crate) fn prev(&self) -> u64 {
        self.parts().2
    }

    /// The bytes of the id and the data, which the user chose.
    pub(crate) fn string_len(&self) -> usize {
        self.data_end()
    }

    pub(crate) fn meta(&self) -> Meta<'_> {
        self.parts().1
    }

    /// The id, the metadata and the previous clock (0 if none), read from
    /// the bytes at once: the merge code reads all three of every record
    /// it copies, and one pass over the bytes checks their bounds once.
    #[inline]
    pub(crate) fn parts(&self) -> (&[u8], Meta<'_>, u64) {
        let (b, head) = (self.bytes.as_slice(), self.bytes.head());
        let (id, rest) = b.split_at(((head & !FLAGS) as usize).min(b.len()));
        let (data, prev) = if head & HAS_PREV == 0 {
            (rest, 0)
        } else {
            let (data, tail) = rest.split_at(rest.len().saturating_sub(PREV_LEN));
            let mut w = [0u8; PREV_LEN];
            if let Ok(t) = <&[u8; PREV_LEN]>::try_from(tail) {
                w = *t;
            }
            (data, u64::from_le_bytes(w))
        };
        let state = if head & OFFLINE == 0 {
            State::Online
        } else {
            State::Offline
        };
        let meta = Meta {
            state,
            slot: self.slot,
            data,
        };
        (id, meta, prev)
    }
}

/// An entry as the merge code reads it: a [`WireEntry`] whose strings are bytes,
/// so that reading a stored record needs no UTF-8 check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw<'a> {
    pub(crate) ty: &'a [u8],
    pub(crate) id: &'a [u8],
    pub(crate) clock: u64,
    pub(crate) prev: u64,
    pub(crate) meta: Meta<'a>,
}

impl<'a> From<WireEntry<'a>> for Raw<'a> {
    fn from(e: WireEntry<'a>) -> Self {
        Raw {
            ty: e.ty.as_bytes(),
            id: e.id.as_bytes(),
            clock: e.clock,
            prev: e.prev,
            meta: e.meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Bytes, Meta, Name, Record, State, FLAGS, HAS_PREV, MAX_SLOT, NAME_INLINE, OFFLINE,
    };
    use crate::presence::MAX_CLOCK;

    #[test]
    fn inline_names_keep_their_bytes() {
        let src: [u8; NAME_INLINE] = core::array::from_fn(|k| k as u8 + 1);
        for n in 0..=NAME_INLINE {
            let mut name = Name::Long(7);
            name.set_inline(&src[..n]);
            assert_eq!(name.inline(), Some(&src[..n]), "{n} bytes");
            name.set_inline(&src[..n / 2]);
            assert_eq!(name.inline(), Some(&src[..n / 2]), "{n} bytes, shortened");
        }
        assert_eq!(Name::Long(7).inline(), None);
    }

    #[test]
    fn concat_joins_the_pieces() {
        let src: [u8; 48] = core::array::from_fn(|k| k as u8 + 1);
        for a in 0..=30 {
            for b in 0..=10 {
                let (x, y) = (&src[..a], &src[a..a + b]);
                for c in [0, 8] {
                    let z = &src[a + b..a + b + c];
                    for flags in [0, OFFLINE, HAS_PREV, FLAGS] {
                        let mut bytes = Bytes::EMPTY;
                        let head = a as u32 | flags;
                        bytes.set_concat(head, x, y, z);
                        assert_eq!(bytes.as_slice(), &src[..a + b + c], "{a} + {b} + {c}");
                        assert_eq!(bytes.head(), head, "{a} + {b} + {c}, flags {flags:x}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_record_keeps_clock_replica_and_parts_at_their_limits() {
        let data = [7u8; 30];
        for (clock, replica) in [(1, 0), (MAX_CLOCK, MAX_SLOT as u32), (MAX_CLOCK - 1, 1)] {
            for (id, n, prev, state) in [
                (&b"user1"[..], 8, 0, State::Online),
                (b"user1", 8, 9, State::Offline),
                (b"a-much-longer-service-id", 30, 3, State::Offline),
                (b"", 0, 0, State::Online),
            ] {
                let meta = Meta {
                    state,
                    slot: 5,
                    data: &data[..n],
                };
                let mut r = Record::blank(meta.slot, clock, replica, 4);
                r.set_bytes(id, meta, prev);
                assert_eq!((r.clock(), r.replica(), r.ty), (clock, replica, 4));
                assert_eq!(r.parts(), (id, meta, prev), "{id:?} with {n} bytes");
            }
        }
    }
}
