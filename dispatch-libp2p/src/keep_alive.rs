//! Keeps connections to cluster members open, and knows which peers the
//! swarm is connected to.
//!
//! libp2p closes a connection once no handler wants it and no stream is
//! open (after the swarm's idle timeout, 10 s by default unless the user
//! changes it). Gossipsub asks to keep only its mesh peers; with
//! libp2p-swarm 0.48 its long-lived streams happen to hold every
//! subscribed peer's connection too, but that is not its contract. A node must stay connected to every
//! member: its calls, catch-ups and heartbeats go there. This behaviour
//! opens no stream; its handler only says "keep alive" on the connections
//! of peers the [`Behaviour`](crate::Behaviour) marked as members, and
//! nothing on anyone else's, so the user's other connections close as they
//! would without Dispatch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// The behaviour that holds cluster members' connections open.
#[derive(Debug, Default)]
#[allow(unreachable_pub)]
pub struct KeepAlive {
    members: HashSet<PeerId>,
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    pending: VecDeque<ToSwarm<Infallible, bool>>,
}

impl KeepAlive {
    /// Marks `peer` as a cluster member (or no longer one): its
    /// connections stay open (or may close when idle).
    pub(crate) fn set_member(&mut self, peer: PeerId, member: bool) {
        let changed = if member {
            self.members.insert(peer)
        } else {
            self.members.remove(&peer)
        };
        if !changed {
            return;
        }
        for &id in self.connections.get(&peer).into_iter().flatten() {
            self.pending.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(id),
                event: member,
            });
        }
    }

    /// Whether the swarm holds a connection to `peer`.
    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.connections.contains_key(peer)
    }

    /// How many peers the swarm holds connections to.
    pub(crate) fn connected_peers(&self) -> usize {
        self.connections.len()
    }

    /// Connected peers marked as members.
    pub(crate) fn connected_members(&self) -> impl Iterator<Item = &PeerId> {
        self.members
            .iter()
            .filter(|p| self.connections.contains_key(p))
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            keep_alive: self.members.contains(&peer),
        }
    }
}

impl NetworkBehaviour for KeepAlive {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    /// Connections are counted once established, after every behaviour
    /// of the swarm accepted them (one may still refuse a connection whose
    /// handler this behaviour made).
    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
            }
            FromSwarm::ConnectionClosed(closed) => {
                if let Some(ids) = self.connections.get_mut(&closed.peer_id) {
                    ids.retain(|id| *id != closed.connection_id);
                    if ids.is_empty() {
                        self.connections.remove(&closed.peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }
}

/// One connection's handler: opens no stream, only keeps the connection
/// alive while its peer is a member.
#[derive(Debug)]
#[allow(unreachable_pub)]
pub struct Handler {
    keep_alive: bool,
}

impl libp2p::swarm::ConnectionHandler for Handler {
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep_alive
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, member: bool) {
        self.keep_alive = member;
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade>) {}
}
