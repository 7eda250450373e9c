//! The contract between the simulator and what it runs.

use core::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::node::{Event, Node};
use crate::time::Instant;
use crate::transmit::Transmit;

/// A sans-IO state machine the simulator can drive: fed datagrams and time,
/// drained of transmits, events and its next deadline.
///
/// This is the shape of the Dispatch node's API, so the simulator runs the
/// real node; tests also implement it for small toy endpoints. After every
/// input the simulator drains [`poll_transmit`](Endpoint::poll_transmit) and
/// [`poll_event`](Endpoint::poll_event) until they return `None`, then reads
/// [`poll_timeout`](Endpoint::poll_timeout). `now` never goes backwards
/// between two calls on the same endpoint.
pub trait Endpoint {
    /// How peers are addressed. In the simulator this is [`SimAddr`].
    type Addr: Copy + Eq + Ord + fmt::Debug;
    /// What the endpoint reports to its application.
    type Event;

    /// A datagram from `from` arrived at `now`.
    fn handle_datagram(&mut self, now: Instant, from: Self::Addr, data: &[u8]);
    /// The deadline last returned by [`poll_timeout`](Endpoint::poll_timeout)
    /// has passed (or is `now`). Waking early must be harmless.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, encoded into `buf`, or `None` when there is
    /// nothing left to send.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit<Self::Addr>>;
    /// The next event for the application, or `None` when there is none.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When [`handle_timeout`](Endpoint::handle_timeout) should next be
    /// called, or `None` if the endpoint waits only for input.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The address of a simulated node: its index in the simulation. A restarted
/// node keeps its address.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SimAddr(pub u16);

impl SimAddr {
    /// The index of the node with this address, as the [`Sim`](super::Sim)
    /// methods take it.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for SimAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// The simulator runs the real node.
impl<A> Endpoint for Node<A>
where
    A: Copy + Ord + fmt::Debug + Serialize + DeserializeOwned,
{
    type Addr = A;
    type Event = Event;

    fn handle_datagram(&mut self, now: Instant, from: A, data: &[u8]) {
        // Refusals are counted in the node's stats; tests read them there.
        let _ = Node::handle_datagram(self, now, from, data);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit<A>> {
        Node::poll_transmit(self, now, buf)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Node::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }
}
