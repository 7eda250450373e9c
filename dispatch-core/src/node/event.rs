//! What a node reports to its application.

use alloc::boxed::Box;

use alloc::vec::Vec;

use super::calls::{CallError, CallId, Request};
use crate::presence::{EntryRef, Ref, ReplicaId, State};

/// A service instance as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service type, e.g. `uploader`.
    pub ty: Box<str>,
    /// The instance's id, unique on its node within its type.
    pub id: Box<str>,
    /// The node the instance runs on.
    pub node: ReplicaId,
    /// Online or offline.
    pub state: State,
    /// The application's bytes attached to the instance.
    pub data: Box<[u8]>,
    /// The instance's ring slot.
    pub slot: u32,
    /// The tag of the operation that last set this instance (its ref).
    pub reference: Ref,
    /// The ref it replaced, if it was updated.
    pub previous: Option<Ref>,
}

impl Service {
    /// An owned copy of an entry of the presence set, as the reads of
    /// [`Node`](super::Node) return them.
    pub fn from_entry(entry: &EntryRef<'_>) -> Self {
        let meta = entry.meta();
        Service {
            ty: entry.ty().into(),
            id: entry.id().into(),
            node: entry.replica().clone(),
            state: meta.state,
            data: meta.data.into(),
            slot: meta.slot,
            reference: entry.reference(),
            previous: entry.prev(),
        }
    }
}

/// Something the application hears from its node, drained with
/// [`Node::poll_event`](super::Node::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An instance joined (or came back with its node, or changed: an
    /// update is a leave of the old version and a join of the new).
    ServiceJoined(Service),
    /// An instance left (removed, its node down, left or restarted).
    ServiceLeft(Service),
    /// A peer was heard from for the first time, came back, or restarted.
    PeerUp(ReplicaId),
    /// A peer has been silent for the down period.
    PeerDown(ReplicaId),
    /// A peer left gracefully, restarted as a new incarnation, or stayed
    /// silent for the permanent-down period: it is forgotten.
    PeerGone(ReplicaId),
    /// A call or cast for one of this node's instances. Answer a call with
    /// [`Node::reply`](super::Node::reply).
    Request(Request),
    /// A call of this node completed: the reply, or why there is none.
    /// Every [`CallId`] gets exactly one.
    Reply {
        /// The call.
        call: CallId,
        /// The handler's reply, or the error.
        result: Result<Vec<u8>, CallError>,
    },
}
