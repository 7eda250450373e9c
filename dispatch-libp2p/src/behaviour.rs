//! [`Behaviour`]: Dispatch as a `NetworkBehaviour` in the user's Swarm.
//!
//! It only moves the core's datagrams between libp2p and the driver (which
//! runs the core, in `dispatch-std`), and keeps the node connected to the
//! cluster:
//! - broadcasts (deltas, heartbeats, leaves) are published on one gossipsub
//!   topic per cluster id, `dispatch/<cluster id>`; every message received
//!   is handed to the core, and gossipsub forwards it only once the core
//!   took it (manual validation: accepted, rejected for junk, foreign
//!   clusters and forgeries, ignored for what is merely stale);
//! - datagrams for one peer (greetings, catch-ups, transfers, calls,
//!   replies) go as request-response [`Frame`]s, answered by an empty
//!   acknowledgement;
//! - when a peer joins the cluster's topic, the node sends it the members
//!   it can reach and their addresses, so a node that came in through one
//!   seed dials every member; the connections of members are kept open.
//!
//! Our gossipsub speaks `/dispatch/meshsub/…` rather than `/meshsub/…`, so
//! it does not meet a gossipsub of the user's in the same Swarm.

use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Duration;

use dispatch_std::dispatch_core::transmit::Destination;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tracing::{debug, trace};

use crate::addresses::AddressBook;
use crate::codec::{Codec, Frame, Limits, MAX_LISTED_PEERS, PROTOCOL};
use crate::keep_alive::KeepAlive;
use crate::stats::{SharedStats, Stats};
use crate::transport::{BehaviourEnds, Command, Gossip, Incoming, Libp2p};

/// How the behaviour talks to the network. The node's own settings
/// (cluster id, timings, limits) are `dispatch-std`'s, given to the
/// [`Builder`](dispatch_std::Builder).
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest datagram carried, in bytes: longer gossip messages and
    /// requests are refused on the wire. Default 65,536, the driver's
    /// receive buffer; the core writes at most its MTU.
    pub max_datagram_bytes: usize,
    /// Most cluster members the behaviour dials on its own. Default 256,
    /// the core's default `max_peers`.
    pub max_members: usize,
    /// Datagrams waiting for the driver; past it, messages are dropped and
    /// counted. Default 1024.
    pub inbox_capacity: usize,
    /// Most request-response streams at once per connection. Default 100.
    pub max_streams: usize,
    /// How long a request waits for its acknowledgement. Default 10 s.
    pub request_timeout: Duration,
    /// Gossipsub's heartbeat, which grafts the mesh. Default 1 s. A new
    /// node does not wait for it: publishing floods every subscribed peer.
    pub gossip_heartbeat: Duration,
    /// Peers gossipsub relays each message to, besides the author's own
    /// flood (its mesh degree), and tells of messages it holds (IHAVE).
    /// Default 0: every member is connected to every other and the author
    /// publishes to all of them, so relaying only sends copies (at 16
    /// nodes, the default mesh of 6 multiplied idle traffic by about 20),
    /// and the core repairs what one link missed. Set 2 to 6 where some
    /// members cannot connect to each other.
    pub mesh_peers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_datagram_bytes: 65_536,
            max_members: 256,
            inbox_capacity: 1024,
            max_streams: 100,
            request_timeout: Duration::from_secs(10),
            gossip_heartbeat: Duration::from_secs(1),
            mesh_peers: 0,
        }
    }
}

/// What the behaviour tells the Swarm's owner; most users ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer joined the cluster's topic: it is a member, its connection
    /// is kept open and it was sent the members this node reaches.
    Member(PeerId),
    /// A peer left the cluster's topic.
    NoLongerMember(PeerId),
    /// The [`Libp2p`] transport was dropped with the last handle of its
    /// registry: the behaviour has nothing left to carry.
    Closed,
}

/// The protocols the behaviour drives. Public only because its handler is
/// the behaviour's; nothing outside the crate can name it.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude", to_swarm = "InnerEvent")]
#[allow(unreachable_pub, missing_debug_implementations)]
#[doc(hidden)]
pub struct Inner {
    gossipsub: gossipsub::Behaviour,
    requests: request_response::Behaviour<Codec>,
    keep_alive: KeepAlive,
}

#[derive(Debug)]
#[allow(unreachable_pub)]
#[doc(hidden)]
pub enum InnerEvent {
    Gossip(gossipsub::Event),
    Request(request_response::Event<Frame, ()>),
}

impl From<gossipsub::Event> for InnerEvent {
    fn from(e: gossipsub::Event) -> Self {
        InnerEvent::Gossip(e)
    }
}

impl From<request_response::Event<Frame, ()>> for InnerEvent {
    fn from(e: request_response::Event<Frame, ()>) -> Self {
        InnerEvent::Request(e)
    }
}

impl From<std::convert::Infallible> for InnerEvent {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

/// Dispatch's `NetworkBehaviour`: add it as a field of your own
/// `#[derive(NetworkBehaviour)]` struct, and start a registry over the
/// [`Libp2p`] transport made with it.
pub struct Behaviour {
    inner: Inner,
    local: PeerId,
    config: Config,
    topic: Option<IdentTopic>,
    ends: BehaviourEnds,
    addresses: AddressBook,
    /// Our own listen and confirmed external addresses, sent in peer lists.
    own: Vec<Multiaddr>,
    stats: SharedStats,
    pending: VecDeque<ToSwarm<Event, THandlerInEvent<Inner>>>,
    /// Set once the transport is gone.
    closed: bool,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("local", &self.local)
            .field("topic", &self.topic.as_ref().map(|t| t.to_string()))
            .field("connected", &self.inner.keep_alive.connected_peers())
            .field("addresses", &self.addresses.len())
            .field("stats", &self.stats.get())
            .finish_non_exhaustive()
    }
}

/// Why [`Behaviour::new`] refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Behaviour {
    /// The behaviour for the Swarm of `keypair` (gossip messages are signed
    /// with it), and the transport to start the registry with.
    pub fn new(keypair: &Keypair, config: Config) -> Result<(Behaviour, Libp2p), ConfigError> {
        if config.max_datagram_bytes < 512 {
            return Err(ConfigError(format!(
                "max_datagram_bytes is {}: the core writes datagrams of up to its MTU, at least 512 bytes; write 65536 (the default) or at least the node's mtu",
                config.max_datagram_bytes
            )));
        }
        if config.inbox_capacity == 0 || config.max_members == 0 || config.max_streams == 0 {
            return Err(ConfigError(
                "inbox_capacity, max_members and max_streams must be at least 1 (defaults 1024, 256 and 100)".into(),
            ));
        }
        let local = keypair.public().to_peer_id();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .protocol_id_prefix("/dispatch/meshsub")
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .flood_publish(true)
            .heartbeat_interval(config.gossip_heartbeat)
            .mesh_n(config.mesh_peers)
            .mesh_n_low(config.mesh_peers.div_ceil(2))
            .mesh_n_high(config.mesh_peers * 2)
            .mesh_outbound_min(0)
            .gossip_lazy(config.mesh_peers)
            .gossip_factor(if config.mesh_peers == 0 { 0.0 } else { 0.25 })
            // Twice the longest datagram: a longer message is dropped by
            // gossipsub's codec; one between is read, rejected and counted
            // here. The signed envelope (author, sequence number, topic,
            // signature, key) is well under a kilobyte.
            .max_transmit_size(config.max_datagram_bytes * 2)
            .build()
            .map_err(|e| ConfigError(format!("gossipsub: {e}")))?;
        let gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), gossip_config)
                .map_err(|e| ConfigError(format!("gossipsub: {e}")))?;
        let stats = SharedStats::default();
        let requests = request_response::Behaviour::with_codec(
            Codec::new(
                Limits {
                    // One byte of tag before the datagram.
                    max_frame_bytes: config.max_datagram_bytes + 1,
                },
                stats.clone(),
            ),
            [(PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(config.max_streams),
        );
        let (transport, ends) = Libp2p::new(local, config.inbox_capacity);
        let behaviour = Behaviour {
            inner: Inner {
                gossipsub,
                requests,
                keep_alive: KeepAlive::default(),
            },
            local,
            addresses: AddressBook::new(config.max_members * 2),
            config,
            topic: None,
            ends,
            own: Vec::new(),
            stats,
            pending: VecDeque::new(),
            closed: false,
        };
        Ok((behaviour, transport))
    }

    /// The behaviour's counters.
    pub fn stats(&self) -> Stats {
        self.stats.get()
    }

    /// A handle that reads the counters from anywhere, after the behaviour
    /// moved into its Swarm.
    pub fn stats_handle(&self) -> SharedStats {
        self.stats.clone()
    }

    /// The cluster's topic, once the registry started.
    pub fn topic(&self) -> Option<String> {
        self.topic.as_ref().map(|t| t.to_string())
    }

    /// Peers connected to this node that joined the cluster's topic.
    pub fn members(&self) -> impl Iterator<Item = &PeerId> {
        self.inner.keep_alive.connected_members()
    }

    fn is_our_topic(&self, topic: &TopicHash) -> bool {
        self.topic.as_ref().is_some_and(|t| t.hash() == *topic)
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send(Destination::Broadcast, bytes) => {
                let Some(topic) = &self.topic else {
                    self.stats.count(|s| s.publishes_failed += 1);
                    return;
                };
                if let Err(e) = self.inner.gossipsub.publish(topic.clone(), bytes) {
                    self.stats.count(|s| s.publishes_failed += 1);
                    trace!(error = %e, "broadcast not published");
                }
            }
            Command::Send(Destination::Peer(peer), bytes) => {
                let addrs = self.addresses.get(&peer).to_vec();
                self.inner.requests.send_request_with_addresses(
                    &peer,
                    Frame::Datagram(bytes),
                    addrs,
                );
            }
            Command::Subscribe(cluster_id) => {
                let topic = IdentTopic::new(format!("dispatch/{cluster_id}"));
                if let Some(old) = self.topic.replace(topic.clone()) {
                    self.inner.gossipsub.unsubscribe(&old);
                }
                if let Err(e) = self.inner.gossipsub.subscribe(&topic) {
                    debug!(error = %e, "could not join the cluster's topic");
                }
            }
            Command::Seed(peer, addr) => {
                let keep_alive = &self.inner.keep_alive;
                self.addresses
                    .add(peer, addr, |p| keep_alive.is_connected(p));
                self.dial(peer);
            }
        }
    }

    fn dial(&mut self, peer: PeerId) {
        if peer == self.local || self.inner.keep_alive.is_connected(&peer) {
            return;
        }
        let addrs = self.addresses.get(&peer).to_vec();
        if addrs.is_empty() {
            return;
        }
        self.stats.count(|s| s.dials += 1);
        self.pending.push_back(ToSwarm::Dial {
            opts: DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
        });
    }

    fn on_verdict(&mut self, gossip: Gossip, acceptance: MessageAcceptance) {
        match acceptance {
            MessageAcceptance::Accept => self.stats.count(|s| s.gossip_accepted += 1),
            MessageAcceptance::Reject => self.stats.count(|s| s.gossip_rejected += 1),
            MessageAcceptance::Ignore => self.stats.count(|s| s.gossip_ignored += 1),
        }
        self.inner
            .gossipsub
            .report_message_validation_result(&gossip.id, &gossip.via, acceptance);
    }

    fn deliver(&mut self, incoming: Incoming) {
        if let Err(e) = self.ends.inbox.try_send(incoming) {
            self.stats.count(|s| s.inbox_full += 1);
            if let Some(gossip) = e.into_inner().gossip {
                self.on_verdict(gossip, MessageAcceptance::Ignore);
            }
        }
    }

    fn on_inner(&mut self, event: InnerEvent) {
        match event {
            InnerEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let gossip = Gossip {
                    id: message_id,
                    via: propagation_source,
                };
                let ours = self.is_our_topic(&message.topic);
                match message.source {
                    Some(_) if message.data.len() > self.config.max_datagram_bytes => {
                        self.stats.count(|s| s.gossip_oversized += 1);
                        self.on_verdict(gossip, MessageAcceptance::Reject);
                    }
                    Some(from) if ours && from != self.local => {
                        self.stats.count(|s| s.gossip_received += 1);
                        self.deliver(Incoming {
                            from,
                            bytes: message.data,
                            gossip: Some(gossip),
                        });
                    }
                    // Strict validation refuses unsigned messages before
                    // us; our own come back only through a misbehaving peer.
                    _ => self.on_verdict(gossip, MessageAcceptance::Ignore),
                }
            }
            InnerEvent::Gossip(gossipsub::Event::Subscribed { peer_id, topic }) => {
                if self.is_our_topic(&topic) {
                    self.inner.keep_alive.set_member(peer_id, true);
                    let list = self.peer_list();
                    self.inner.requests.send_request(&peer_id, list);
                    self.pending
                        .push_back(ToSwarm::GenerateEvent(Event::Member(peer_id)));
                }
            }
            InnerEvent::Gossip(gossipsub::Event::Unsubscribed { peer_id, topic }) => {
                if self.is_our_topic(&topic) {
                    self.inner.keep_alive.set_member(peer_id, false);
                    self.pending
                        .push_back(ToSwarm::GenerateEvent(Event::NoLongerMember(peer_id)));
                }
            }
            InnerEvent::Gossip(other) => trace!(event = ?other, "gossipsub"),
            InnerEvent::Request(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        // The acknowledgement says only that it arrived; a
                        // closed channel means the peer stopped waiting.
                        let _ = self.inner.requests.send_response(channel, ());
                        match request {
                            Frame::Datagram(bytes) => {
                                self.stats.count(|s| s.requests_received += 1);
                                self.deliver(Incoming {
                                    from: peer,
                                    bytes,
                                    gossip: None,
                                });
                            }
                            Frame::Peers(list) => self.learn(peer, list),
                        }
                    }
                    request_response::Message::Response { .. } => {}
                }
            }
            InnerEvent::Request(request_response::Event::OutboundFailure {
                peer, error, ..
            }) => {
                self.stats.count(|s| s.sends_failed += 1);
                debug!(%peer, %error, "datagram not delivered");
            }
            InnerEvent::Request(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                self.stats.count(|s| s.requests_failed += 1);
                debug!(%peer, %error, "request refused");
            }
            InnerEvent::Request(request_response::Event::ResponseSent { .. }) => {}
        }
    }

    /// This node and the members it is connected to, with their addresses.
    fn peer_list(&self) -> Frame {
        let mut list = Vec::new();
        if !self.own.is_empty() {
            list.push((self.local, self.own.clone()));
        }
        for peer in self.members() {
            let addrs = self.addresses.get(peer);
            if !addrs.is_empty() && list.len() < MAX_LISTED_PEERS {
                list.push((*peer, addrs.to_vec()));
            }
        }
        Frame::Peers(list)
    }

    /// Takes in a peer list from `from` and dials the members not yet
    /// connected, up to `max_members`.
    ///
    /// When `from` states addresses of its own that are new here, they are
    /// passed on to the other connected members: a member that joined
    /// through us is then dialled by those who were here before it, even
    /// if it came in after they sent us their lists. Only a sender's own
    /// entry is passed on, and only when it changed, so a peer list causes
    /// at most one datagram per member and nothing repeats.
    fn learn(&mut self, from: PeerId, list: Vec<(PeerId, Vec<Multiaddr>)>) {
        self.stats.count(|s| s.peer_lists_received += 1);
        trace!(%from, peers = list.len(), "peer list");
        for (peer, addrs) in list {
            if peer == self.local {
                continue;
            }
            let before = self.addresses.get(&peer).to_vec();
            let keep_alive = &self.inner.keep_alive;
            for addr in addrs.into_iter().rev() {
                self.addresses
                    .add(peer, addr, |p| keep_alive.is_connected(p));
            }
            if peer == from && self.addresses.get(&peer) != before.as_slice() {
                let entry = Frame::Peers(vec![(peer, self.addresses.get(&peer).to_vec())]);
                let others: Vec<PeerId> = self.members().filter(|m| **m != from).copied().collect();
                for member in others {
                    self.inner.requests.send_request(&member, entry.clone());
                }
            }
            if self.inner.keep_alive.connected_peers() < self.config.max_members {
                self.dial(peer);
            }
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<Inner>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut addrs = self
            .inner
            .handle_pending_outbound_connection(id, peer, addresses, role)?;
        if let Some(peer) = peer {
            for a in self.addresses.get(&peer) {
                if !addrs.contains(a) && !addresses.contains(a) {
                    addrs.push(a.clone());
                }
            }
        }
        Ok(addrs)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // The inner behaviours first: the keep-alive then counts a new
        // connection before the address book asks who is connected.
        self.inner.on_swarm_event(event);
        match &event {
            FromSwarm::ConnectionEstablished(e) => {
                if let ConnectedPoint::Dialer { address, .. } = e.endpoint {
                    let keep_alive = &self.inner.keep_alive;
                    self.addresses
                        .add(e.peer_id, address.clone(), |p| keep_alive.is_connected(p));
                }
            }
            FromSwarm::DialFailure(e) => {
                // Addresses that failed at the transport are not tried again.
                if let (Some(peer), DialError::Transport(failed)) = (e.peer_id, e.error) {
                    for (addr, _) in failed {
                        self.addresses.remove(&peer, addr);
                    }
                }
            }
            FromSwarm::NewListenAddr(e) if !self.own.contains(e.addr) => {
                self.own.push(e.addr.clone());
            }
            FromSwarm::ExternalAddrConfirmed(e) if !self.own.contains(e.addr) => {
                self.own.push(e.addr.clone());
            }
            FromSwarm::ExpiredListenAddr(e) => self.own.retain(|a| a != e.addr),
            FromSwarm::ExternalAddrExpired(e) => self.own.retain(|a| a != e.addr),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Poll::Ready(e);
            }
            let mut progress = false;
            while !self.closed {
                match self.ends.commands.poll_recv(cx) {
                    Poll::Ready(Some(command)) => self.on_command(command),
                    Poll::Ready(None) => {
                        self.closed = true;
                        self.pending
                            .push_back(ToSwarm::GenerateEvent(Event::Closed));
                    }
                    Poll::Pending => break,
                }
                progress = true;
            }
            while let Poll::Ready(Some((gossip, acceptance))) = self.ends.verdicts.poll_recv(cx) {
                self.on_verdict(gossip, acceptance);
                progress = true;
            }
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(e)) => {
                    self.on_inner(e);
                    progress = true;
                }
                Poll::Ready(other) => {
                    return Poll::Ready(
                        other.map_out(|_| unreachable!("GenerateEvent is matched above")),
                    )
                }
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}
