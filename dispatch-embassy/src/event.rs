//! What the application hears through [`Handle::next_event`](crate::Handle::next_event).

use dispatch_core::node::Service;

/// A change to the cluster's set of service instances, as `dispatch-std`'s
/// subscriptions report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceEvent {
    /// An instance joined (or came back with its node, or changed: an
    /// update is a leave of the old version and a join of the new).
    Joined(Service),
    /// An instance left (removed, its node down, left or restarted).
    Left(Service),
    /// The event queue was full and this many events were dropped here;
    /// the events after this one are complete again. Read the current set
    /// with [`Handle::services`](crate::Handle::services) to catch up.
    Lagged(u32),
}
