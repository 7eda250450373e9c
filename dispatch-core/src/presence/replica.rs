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
    /// Slab indexes of its entries, in no order.
    pub(crate) entries: Vec<u32>,
}
