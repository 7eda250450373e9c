//! The hash ring: which instance of a service type owns a key, and which `n`
//! instances hold its replicas.
//!
//! # Design
//!
//! - **Slots.** Each instance of a type holds a stable slot number, chosen by
//!   its node when it registers (the lowest free slot, [`Ring::free_slot`])
//!   and carried in its replicated entry. Concurrent claims of one slot are
//!   settled by a pure rule, the smallest member key holds ([`Claim`]).
//! - **Key hash.** [`key_hash`]: XXH64 with seed 0 over the key bytes.
//! - **Range hash.** Round `r` of a key draws one jump consistent hashing
//!   bucket over the slots `0..=m` (`m` the highest held slot) from a seed
//!   mixed of the key's hash and `r`. The key belongs to the bucket of the
//!   **first round whose bucket is held**. After 32 rounds (a sparse ring)
//!   it falls back to highest random weight over the held slots.
//! - **Replicas.** Replica `i` of [`Ring::lookup_n`] is the owner under the
//!   buckets of seed `i`, with replicas `0..i` treated as vacant.
//!
//! Because a round's bucket depends on the key and `m` only, never on which
//! slots are held, the answer is a pure function of the member set, a
//! leaving holder moves only its own keys, and a joining holder takes keys
//! only for itself (the highest slot aside: it sets `m`, so its leaving or
//! joining also moves the few keys whose earlier rounds fell in the vacant
//! slots beside it). With slots `0..n` all held the owner is the jump-hash
//! bucket, uniform over the members; a vacant slot's keys draw again, so
//! they spread evenly over every held slot, and the load stays uniform at
//! any share of vacant slots. The cost is in the lookup: with a share `v`
//! of the slots below `m` vacant it takes `1 / (1 - v)` rounds on average,
//! which is why nodes reuse the lowest free slot.

//! Routing is integer-only and a lookup does not allocate: about two draws
//! (a splitmix64 mix and a 64x64→128 multiply each) when the slots are dense.

mod claim;
mod hash;
mod jump;
mod occupancy;
#[allow(clippy::module_inception)] // the type is named like its module, as in `ring::Ring`
mod ring;
mod rings;

pub use claim::Claim;
pub use hash::{key_hash, xxh64};
pub use ring::{Member, Ring, DEFAULT_SLOT_LIMIT};
pub use rings::Rings;

/// A slot number: an instance's stable position in the ring of its type.
pub type Slot = u32;

/// Which members a lookup may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Routing {
    /// Online members only (the default).
    #[default]
    OnlineOnly,
    /// Online and offline members alike.
    AllowOffline,
}

/// Why a claim was rejected: the slot is at or above the ring's limit. The
/// ring is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotOutOfRange {
    /// The slot claimed.
    pub slot: Slot,
    /// The ring's slot limit.
    pub limit: Slot,
}

impl core::fmt::Display for SlotOutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "slot {} is not below the ring's limit {}",
            self.slot, self.limit
        )
    }
}

impl core::error::Error for SlotOutOfRange {}
