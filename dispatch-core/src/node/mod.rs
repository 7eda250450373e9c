//! The sans-IO node: one member of a Dispatch cluster.
//!
//! A [`Node`] holds the replicated presence set, the rings that route keys,
//! and the peer table. It does no I/O and reads no clock: the driver feeds it
//! datagrams, timer expiries and local commands, each with the current time,
//! and then drains what it has to say:
//!
//! ```ignore
//! node.handle_datagram(now, from, &rx[..n]);       // or handle_timeout(now), or a command
//! while let Some(t) = node.poll_transmit(now, &mut tx) { send(t.destination, &tx[..t.len]); }
//! while let Some(event) = node.poll_event() { app.on(event); }
//! let next_wakeup = node.poll_timeout();            // waking early is harmless
//! ```
//!
//! Time must not go backwards between calls. See the crate docs for a
//! complete, runnable loop.
//!
//! ## The protocol in brief
//! - Every node speaks only for its own entries. A local change is pushed at
//!   once as a delta to every peer.
//! - Every `heartbeat_period` a node sends each peer a heartbeat with its own
//!   clock. A receiver that lacks some of the sender's changes (a lost delta,
//!   a partition, a fresh start) asks the sender to catch it up; the sender
//!   answers with the smallest delta generation that covers the gap, or an
//!   extract of exactly what is missing, split into chunks when it does not
//!   fit a datagram. A lost chunk is asked for again alone.
//! - A peer silent for `down_after` is down (its services leave, and come
//!   back if it returns); silent for `permanent_down_after`, it is purged.
//!   A newer incarnation of a name replaces the old one at once; a graceful
//!   leave removes a node's services everywhere at once.
//! - Nodes learn about each other from seeds, then from the peers named in
//!   heartbeats and from peer lists sent to joining nodes.
//! - [`Node::call`] and [`Node::cast`] send a request to the instance that
//!   owns a key; its node hands it to the application as an
//!   [`Event::Request`], and [`Node::reply`] answers it. Lost requests are
//!   sent again, copies are never handed on twice, large ones travel in
//!   chunks; see the [`calls`] module.
//! - With a [`Keyring`](crate::keyring::Keyring) in the config, every
//!   datagram is sealed (see [`wire::seal`]) and a peer's nonces pass a
//!   replay window. A peer is made, and its address changed, only by a
//!   datagram written for this node's current incarnation, or by one from
//!   that peer in the incarnation we know: strangers are greeted and
//!   believed in nothing until they answer (see [`peers`]).

pub mod calls;
mod config;
mod event;
pub mod peers;
pub mod replay;
mod stats;
mod transfers;

pub use calls::{CallError, CallId, Request, RequestId, RequestKind};
pub use config::{Config, ConfigError};
pub use event::{Event, Service};
pub use peers::{Peer, PeerStatus};
pub use stats::{DropReason, Stats};

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keyring::Keyring;
use crate::presence::{
    self, ChangeKind, Context, Delta, MergeError, Meta, OpError, Presence, Ref, ReplicaId, State,
};
use crate::ring::{Ring, Routing};
use crate::rng::Rng;
use crate::time::Instant;
use crate::transmit::{Destination, Transmit};
use crate::wire::{self, Framing, Heartbeat, Message, PeerInfo, TransferBody, WireError};
use calls::Calls;
use peers::{Heard, PeerRefusal, Peers};
use transfers::Transfers;

/// The key a ring member is known by: its node's name and its id.
pub type MemberKey = (Box<str>, Box<str>);

/// Most datagrams waiting in the outbox; past it the oldest are dropped
/// (heartbeats and anti-entropy make up for them).
const OUTBOX_LIMIT: usize = 4096;

/// Why [`Node::handle_datagram`] dropped a datagram. The node's state is
/// unchanged, and the drop is counted in [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(pub DropReason);

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "datagram dropped: {:?}", self.0)
    }
}

impl core::error::Error for RecvError {}

/// Why a local command failed. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The presence set refused the operation (limit, duplicate, unknown).
    Presence(OpError),
    /// The node has left the cluster and takes no more commands.
    Left,
    /// Every slot of the type's ring is claimed.
    RingFull,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Presence(e) => fmt::Display::fmt(e, f),
            CommandError::Left => f.write_str("the node has left the cluster"),
            CommandError::RingFull => {
                f.write_str("every slot of this service type's ring is claimed")
            }
        }
    }
}

impl core::error::Error for CommandError {}

impl From<OpError> for CommandError {
    fn from(e: OpError) -> Self {
        CommandError::Presence(e)
    }
}

/// Why a key found no instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindError {
    /// No instance of the type is known (online, unless offline ones were
    /// allowed).
    NoService,
}

impl fmt::Display for FindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no instance of that service type is available")
    }
}

impl core::error::Error for FindError {}

/// A delta kept until the ones before it arrive: its clock range and the
/// body of the datagram it came in (opened).
struct EarlyDelta {
    start: u64,
    end: u64,
    body: Vec<u8>,
}

/// A message body waiting to be framed and sent: sealed, when the node has
/// a keyring, as it is written into the transmit buffer.
struct Outgoing<A> {
    to: Destination<A>,
    /// The receiver's incarnation, when known: the datagram is then written
    /// for it alone.
    incarnation: Option<u64>,
    body: Vec<u8>,
}

/// One member of a Dispatch cluster, generic over the transport's peer
/// address `A`. See the [module docs](self).
pub struct Node<A> {
    config: Config,
    me: ReplicaId,
    presence: Presence,
    rings: alloc::collections::BTreeMap<Box<str>, Ring<MemberKey>>,
    peers: Peers<A>,
    transfers: Transfers<A>,
    calls: Calls<A>,
    outbox: VecDeque<Outgoing<A>>,
    /// Deltas that arrived before the ones they follow, per peer name.
    early: BTreeMap<Box<str>, Vec<EarlyDelta>>,
    events: VecDeque<Event>,
    rng: Rng,
    stats: Stats,
    next_heartbeat: Instant,
    /// When to move instances that lost a concurrent slot claim.
    reclaim_at: Option<Instant>,
    /// The latest time fed in, for decisions made while draining changes.
    last_now: Instant,
    heartbeat_seq: u64,
    gossip_cursor: usize,
    left: bool,
    /// The nonce of the next sealed datagram.
    nonce: u128,
    /// A received datagram, copied to be opened in place.
    scratch: Vec<u8>,
}

impl<A> Node<A>
where
    A: Clone + Ord + fmt::Debug + Serialize + DeserializeOwned,
{
    /// A node named `me.name`, in incarnation `me.incarnation` (a number that
    /// grows with every restart: a timestamp, or a counter kept in flash),
    /// started at `now`. Refuses an inconsistent configuration.
    pub fn new(me: ReplicaId, config: Config, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let presence = Presence::new(me.clone(), config.presence.clone())?;
        let rng = Rng::new(config.seed ^ me.incarnation.rotate_left(17));
        let nonce = wire::seal::nonce_start(&me.name, me.incarnation);
        Ok(Node {
            peers: Peers::new(config.max_peers),
            transfers: Transfers::new(
                config.max_transfers,
                config.max_transfer_bytes,
                config.max_call_bytes,
                config.retry_after,
            ),
            calls: Calls::new(),
            next_heartbeat: now,
            reclaim_at: None,
            last_now: now,
            config,
            me,
            presence,
            rings: alloc::collections::BTreeMap::new(),
            outbox: VecDeque::new(),
            early: BTreeMap::new(),
            events: VecDeque::new(),
            rng,
            stats: Stats::default(),
            heartbeat_seq: 0,
            gossip_cursor: 0,
            left: false,
            nonce,
            scratch: Vec::new(),
        })
    }

    // ---- input: local commands ----

    /// Starts talking to `seeds` (addresses of some members of the cluster).
    /// The node greets them at once and every heartbeat period until they
    /// answer; it learns the rest of the cluster from them.
    pub fn join(&mut self, now: Instant, seeds: &[A]) {
        for seed in seeds {
            self.peers.add_contact(now, seed.clone(), true, None);
        }
        self.next_heartbeat = now;
        self.handle_timeout(now);
    }

    /// Registers an instance `id` of service type `ty`, online, with the
    /// application's `data`. Its slot on the type's ring is the lowest free
    /// one this node knows of. Peers hear of it at once.
    pub fn add_service(
        &mut self,
        now: Instant,
        ty: &str,
        id: &str,
        data: &[u8],
    ) -> Result<Ref, CommandError> {
        self.check_live()?;
        let slot = self.free_slot(ty)?;
        let r = self.presence.add(ty, id, Meta::online(slot, data))?;
        self.after_local_change(now);
        Ok(r)
    }

    /// Unregisters an instance of this node.
    pub fn remove_service(&mut self, now: Instant, ty: &str, id: &str) -> Result<(), CommandError> {
        self.check_live()?;
        self.presence.remove(ty, id)?;
        self.after_local_change(now);
        Ok(())
    }

    /// Marks an instance of this node online (routing uses it again).
    pub fn enable_service(&mut self, now: Instant, ty: &str, id: &str) -> Result<(), CommandError> {
        self.set_state(now, ty, id, State::Online)
    }

    /// Marks an instance of this node offline: routing skips it unless the
    /// caller allows offline instances; it is still listed.
    pub fn disable_service(
        &mut self,
        now: Instant,
        ty: &str,
        id: &str,
    ) -> Result<(), CommandError> {
        self.set_state(now, ty, id, State::Offline)
    }

    /// Leaves the cluster gracefully: every peer is told to drop this node's
    /// services now. The node takes no more commands afterwards; drain its
    /// transmits before dropping it.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.last_now = self.last_now.max(now);
        let msg: Message<'_, A> = Message::Leave {
            from: self.me.clone(),
        };
        // Twice, so a single lost datagram does not leave a peer waiting for
        // the down period.
        self.send_to_peers(&msg);
        self.send_to_peers(&msg);
        self.left = true;
        self.calls_abandoned();
    }

    // ---- input: the network and timers ----

    /// Feeds a datagram received from `from` at `now`. Malformed, foreign,
    /// stale, replayed or oversized input is dropped, counted in
    /// [`Stats`], and reported as an error; nothing else changes.
    pub fn handle_datagram(&mut self, now: Instant, from: A, data: &[u8]) -> Result<(), RecvError> {
        self.last_now = self.last_now.max(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += data.len() as u64;
        if self.left {
            return Ok(());
        }
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(data);
        let result = self.receive(now, from, &mut scratch);
        self.scratch = scratch;
        result
    }

    /// Replaces the keyring (none: speak in the clear) of a running node,
    /// for key rotation: see [`keyring`](crate::keyring) for the steps.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>) {
        self.config.keyring = keyring;
    }

    /// The keyring the node seals with and accepts, if any.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.config.keyring.as_ref()
    }

    /// Opens, checks and acts on one datagram, opened in place in `datagram`.
    fn receive(&mut self, now: Instant, from: A, datagram: &mut [u8]) -> Result<(), RecvError> {
        let opened = match wire::open(
            datagram,
            self.config.cluster_id,
            self.config.keyring.as_ref(),
            self.me.incarnation,
        ) {
            Ok(o) => o,
            Err(e) => return Err(self.dropped(drop_reason(e))),
        };
        let body = &datagram[opened.body.clone()];
        let Ok(msg) = wire::decode_body::<A>(body) else {
            return Err(self.dropped(DropReason::Malformed));
        };
        let sender = msg.from().clone();
        if sender.name == self.me.name {
            // Our own broadcast echoed back, or a node squatting our name.
            return Err(self.dropped(DropReason::Refused));
        }
        if sender.name.len() > self.config.presence.max_name_len as usize {
            return Err(self.dropped(DropReason::Refused));
        }
        let known = self
            .peers
            .get(&sender.name)
            .is_some_and(|p| p.id.incarnation == sender.incarnation);
        if !known && !opened.addressed {
            return self.on_stranger(now, &from, &msg);
        }
        if let Some(nonce) = opened.nonce {
            if !self.peers.accept_nonce(&sender, nonce) {
                return Err(self.dropped(DropReason::Replayed));
            }
        }
        if let Message::Leave { from } = &msg {
            return self.on_leave(from);
        }
        if let Message::Heartbeat(hb) = &msg {
            if let Some(p) = self.peers.get(&sender.name) {
                if p.id.incarnation == sender.incarnation && hb.seq <= p.last_seq {
                    return Err(self.dropped(DropReason::Replayed));
                }
            }
        }
        self.on_heard(now, &sender, &from)?;
        if let (Some(nonce), false) = (opened.nonce, known) {
            // The first datagram of this incarnation starts its window (a
            // window kept while the peer was forgotten holds it already).
            if let Some(p) = self.peers.get_mut(&sender.name) {
                p.window.accept(nonce);
            }
        }
        if let (Message::Heartbeat(_), true, true, None) =
            (&msg, opened.addressed, known, &self.config.keyring)
        {
            self.introduce_again(now, &sender, &from);
        }
        match msg {
            Message::Heartbeat(hb) => self.on_heartbeat(now, hb, &from),
            Message::Peers { peers, .. } => {
                for info in peers {
                    self.learn_peer(now, info);
                }
            }
            Message::Delta { delta, .. } => self.on_delta(now, &sender, &delta, body),
            Message::CatchUp { have, .. } => self.on_catch_up(now, &from, have),
            Message::Chunk { head, data, .. } => {
                return self.on_chunk(now, &sender, &from, head, data)
            }
            Message::Resend {
                transfer, missing, ..
            } => {
                self.stats.chunks_resent += self.transfers.resend(now, &from, transfer, &missing);
            }
            Message::TransferDone { transfer, .. } => self.transfers.done(&from, transfer),
            Message::Request { request, .. } => {
                self.on_request(now, &sender, Some(&from), &request)
            }
            Message::RequestAck { call, .. } => self.on_request_ack(&sender, call),
            Message::Reply { call, outcome, .. } => self.on_reply(&sender, call, outcome),
            // Answered above, before the peer table saw the sender.
            Message::Leave { .. } => {}
        }
        Ok(())
    }

    /// In the clear, a peer we know sent us an introduction (an addressed
    /// heartbeat): it greets us as a stranger if our own greeting to it was
    /// lost, and our heartbeats, not addressed in the clear, will never
    /// make us its peer. Answer with a greeting written for it, at most once
    /// per `retry_after`, so that two introductions never echo on.
    fn introduce_again(&mut self, now: Instant, sender: &ReplicaId, from: &A) {
        let gap = self.config.retry_after;
        let Some(p) = self.peers.get_mut(&sender.name) else {
            return;
        };
        if p.introduced_at
            .is_some_and(|at| now.saturating_duration_since(at) < gap)
        {
            return;
        }
        p.introduced_at = Some(now);
        self.greet(from, false);
    }

    /// A datagram neither written for this incarnation nor from a peer we
    /// know in the incarnation it names: a node joining, a peer that
    /// restarted, or something replayed or forged. A heartbeat is answered
    /// with a greeting written for the incarnation it claims (at most once
    /// per `retry_after` per address); nothing else is believed.
    fn on_stranger(
        &mut self,
        now: Instant,
        from: &A,
        msg: &Message<'_, A>,
    ) -> Result<(), RecvError> {
        let Message::Heartbeat(hb) = msg else {
            return Err(self.dropped(DropReason::Unconfirmed));
        };
        if self.peers.is_stale(&hb.from) {
            return Err(self.dropped(DropReason::StaleIncarnation));
        }
        if self
            .peers
            .greet_stranger(now, from, self.config.retry_after)
        {
            self.stats.strangers_greeted += 1;
            let greeting = self.greeting(false);
            if let Some(body) = self.encode_body(&greeting) {
                self.queue_for(
                    Destination::Peer(from.clone()),
                    Some(hb.from.incarnation),
                    body,
                );
            }
        }
        Ok(())
    }

    /// Lets the node act on time: heartbeats, the failure detector, retries.
    /// Call it when [`Node::poll_timeout`] passes; calling it early is
    /// harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if self.left {
            return;
        }
        if now >= self.next_heartbeat {
            self.send_heartbeats();
            let period = self.config.heartbeat_period;
            // A little jitter keeps a cluster started at once from beating
            // in lockstep.
            let jitter = self
                .rng
                .below(crate::time::duration_micros(period) / 10 + 1);
            self.next_heartbeat = now + period + core::time::Duration::from_micros(jitter);
        }
        let (downed, gone) = self.peers.expire(
            now,
            self.config.down_after,
            self.config.permanent_down_after,
        );
        for id in downed {
            self.calls_to_node_failed(&id.name);
            // Unknown to the set when it never had entries: nothing to hide.
            let _ = self.presence.replica_down(&id);
            self.apply_changes();
            self.events.push_back(Event::PeerDown(id));
        }
        for id in gone {
            self.calls_to_node_failed(&id.name);
            self.purge(&id);
            self.transfers.forget_peer_name(&id.name);
            self.events.push_back(Event::PeerGone(id));
        }
        self.retry_catch_ups(now);
        self.call_timeouts(now);
        if self.reclaim_at.is_some_and(|t| t <= now) {
            self.reclaim_at = None;
            self.reclaim_slots();
        }
        for (to, msg) in self.transfers.on_timeout(
            now,
            self.config.retry_after,
            self.config.down_after,
            &self.me,
        ) {
            self.stats.transfers_failed += u64::from(msg.is_none());
            if let Some(msg) = msg {
                self.send(Destination::Peer(to), &msg);
            }
        }
    }

    // ---- output ----

    /// Writes the next datagram into `buf` (at least the configured MTU
    /// long) and says where it goes; `None` when there is nothing to send.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit<A>> {
        let _ = now;
        let limit = self.config.mtu.min(buf.len());
        let buf = &mut buf[..limit];
        loop {
            if let Some(out) = self.outbox.pop_front() {
                let nonce = self.take_nonce();
                let framing = self.framing(out.incarnation, nonce);
                let start = framing.body_start();
                if framing.overhead() + out.body.len() > buf.len() {
                    continue;
                }
                buf[start..start + out.body.len()].copy_from_slice(&out.body);
                let Ok(len) = framing.close(buf, out.body.len()) else {
                    continue;
                };
                return Some(self.sent(out.to, len));
            }
            let (to, head, data) = self.transfers.next_chunk()?;
            let msg: Message<'_, A> = Message::Chunk {
                from: self.me.clone(),
                head,
                data: &data,
            };
            let incarnation = self.written_for(&to);
            let nonce = self.take_nonce();
            if let Ok(len) = wire::encode_framed(&msg, &self.framing(incarnation, nonce), buf) {
                return Some(self.sent(Destination::Peer(to), len));
            }
        }
    }

    /// How a datagram for a receiver in `incarnation` is framed: sealed
    /// with `nonce` when the node has a keyring.
    fn framing(&self, incarnation: Option<u64>, nonce: u128) -> Framing<'_> {
        Framing {
            cluster: self.config.cluster_id,
            to: incarnation,
            seal: self.config.keyring.as_ref().map(|k| (k.primary(), nonce)),
        }
    }

    /// The nonce for the next datagram (used only when it is sealed; one
    /// taken for a datagram that is then not sent is never used again).
    fn take_nonce(&mut self) -> u128 {
        let n = self.nonce;
        if self.config.keyring.is_some() {
            self.nonce += 1;
        }
        n
    }

    fn sent(&mut self, destination: Destination<A>, len: usize) -> Transmit<A> {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += len as u64;
        if self.config.keyring.is_some() {
            self.stats.datagrams_sealed += 1;
        }
        Transmit { destination, len }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let mut next = self.next_heartbeat;
        let expiry = self
            .peers
            .next_expiry(self.config.down_after, self.config.permanent_down_after);
        let transfers = self.transfers.next_deadline(self.config.retry_after);
        let catch_ups = self.peers.iter().filter_map(|p| p.ask_at).min();
        let catch_ups = catch_ups.into_iter().chain(self.reclaim_at).min();
        let calls = self.calls.next_deadline();
        for t in [expiry, transfers, catch_ups, calls].into_iter().flatten() {
            next = next.min(t);
        }
        Some(next)
    }

    // ---- queries ----

    /// Whether [`Node::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// This node's name and incarnation.
    pub fn id(&self) -> &ReplicaId {
        &self.me
    }

    /// Counters of traffic and drops.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The peers this node knows, in name order.
    pub fn peers(&self) -> impl Iterator<Item = &Peer<A>> {
        self.peers.iter()
    }

    /// The replicated presence set, for reads beyond the ones below.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Every visible instance of `ty`, online or not, in the same order on
    /// every node.
    pub fn services(&self, ty: &str) -> impl Iterator<Item = presence::EntryRef<'_>> {
        self.presence.entries_of_type(ty)
    }

    /// The online instances of `ty`.
    pub fn online_services(&self, ty: &str) -> impl Iterator<Item = presence::EntryRef<'_>> {
        self.services(ty)
            .filter(|e| e.meta().state == State::Online)
    }

    /// The instance that owns `key` among the instances of `ty`: the same on
    /// every node that sees the same set. Offline instances are considered
    /// only when `allow_offline`.
    ///
    /// Instances registered at the same moment on different nodes may claim
    /// the same ring slot; the losers are listed but not routable until
    /// their nodes move them to free slots, within a few `reorder_window`s.
    pub fn find_service(
        &self,
        ty: &str,
        key: &[u8],
        allow_offline: bool,
    ) -> Result<presence::EntryRef<'_>, FindError> {
        let ring = self.rings.get(ty).ok_or(FindError::NoService)?;
        let member = ring
            .lookup(key, routing(allow_offline))
            .ok_or(FindError::NoService)?;
        self.presence
            .get(&member.0, ty, &member.1)
            .ok_or(FindError::NoService)
    }

    /// Up to `n` distinct instances for `key`, owner first, in a stable
    /// order; fewer only when fewer exist.
    pub fn find_multi_service(
        &self,
        n: usize,
        ty: &str,
        key: &[u8],
        allow_offline: bool,
    ) -> Result<Vec<presence::EntryRef<'_>>, FindError> {
        let ring = self.rings.get(ty).ok_or(FindError::NoService)?;
        let mut slots = vec![0; n.min(ring.len())];
        let k = ring.lookup_n_slots(
            crate::ring::key_hash(key),
            routing(allow_offline),
            &mut slots,
        );
        let mut found = Vec::with_capacity(k);
        for member in slots[..k].iter().filter_map(|&slot| ring.holder(slot)) {
            if let Some(e) = self.presence.get(&member.0, ty, &member.1) {
                found.push(e);
            }
        }
        if found.is_empty() {
            return Err(FindError::NoService);
        }
        Ok(found)
    }

    // ---- internals ----

    /// Our clock for `peer`'s entries (0 when we hold none of them).
    fn clock_of(&self, peer: &ReplicaId) -> u64 {
        self.presence
            .replicas()
            .find(|r| r.id == peer)
            .map_or(0, |r| r.clock)
    }

    /// Drops every entry of `id` (left, restarted, or gone for good),
    /// reporting the visible ones as leaves.
    fn purge(&mut self, id: &ReplicaId) {
        self.early.remove(&*id.name);
        // Unknown to the set when it never had entries: nothing to drop.
        let _ = self.presence.replica_down(id);
        self.apply_changes();
        let _ = self.presence.remove_down_replica(id);
        self.apply_changes();
    }

    /// The slot a new instance of `ty` registers on.
    fn free_slot(&self, ty: &str) -> Result<u32, CommandError> {
        match self.rings.get(ty) {
            None => Ok(0),
            Some(ring) => ring.free_slot().ok_or(CommandError::RingFull),
        }
    }

    fn check_live(&self) -> Result<(), CommandError> {
        if self.left {
            Err(CommandError::Left)
        } else {
            Ok(())
        }
    }

    fn dropped(&mut self, reason: DropReason) -> RecvError {
        self.stats.drop(reason);
        RecvError(reason)
    }

    fn set_state(
        &mut self,
        now: Instant,
        ty: &str,
        id: &str,
        state: State,
    ) -> Result<(), CommandError> {
        self.check_live()?;
        let entry = self
            .presence
            .get(&self.me.name, ty, id)
            .ok_or(CommandError::Presence(OpError::NotFound))?;
        let old = entry.meta();
        let data = old.data.to_vec();
        let meta = Meta {
            state,
            slot: old.slot,
            data: &data,
        };
        if self.presence.update(ty, id, meta)?.is_some() {
            self.after_local_change(now);
        }
        Ok(())
    }

    /// After a local operation: report it, then push the delta to every peer.
    fn after_local_change(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        self.apply_changes();
        self.push_delta();
    }

    fn push_delta(&mut self) {
        let room = self.body_room();
        let Some(delta) = self.presence.take_delta() else {
            return;
        };
        let msg: Message<'_, A> = Message::Delta {
            from: self.me.clone(),
            delta,
        };
        // Too large for a datagram, it is not sent: peers notice from the
        // next heartbeat's clock and catch up through a transfer.
        if let Some(body) = body_of(room, &msg) {
            self.queue_to_peers(body);
        }
    }

    /// Turns the presence set's last changes into ring updates and events,
    /// then re-claims slots this node lost in a concurrent claim.
    fn apply_changes(&mut self) {
        let mut contested = false;
        for change in self.presence.changes() {
            let service = Service::from_entry(&change.entry);
            let key: MemberKey = (service.node.name.clone(), service.id.clone());
            match change.kind {
                ChangeKind::Join => {
                    let ring = self.rings.entry(service.ty.clone()).or_default();
                    // A slot beyond the ring's limit leaves the instance
                    // listed but unroutable; its node picks slots below it.
                    let _ = ring.insert(key, service.slot, service.state == State::Online);
                    contested |= ring
                        .displaced()
                        .any(|((node, _), _)| **node == *self.me.name);
                    self.events.push_back(Event::ServiceJoined(service));
                }
                ChangeKind::Leave => {
                    if let Some(ring) = self.rings.get_mut(&service.ty) {
                        ring.remove(&key);
                        if ring.is_empty() {
                            self.rings.remove(&service.ty);
                        }
                    }
                    self.events.push_back(Event::ServiceLeft(service));
                }
            }
        }
        if contested && self.reclaim_at.is_none() {
            // Nodes that lost a concurrent claim move after a random pause,
            // each in one batch, so that they see each other's new claims
            // instead of colliding again on the same free slots.
            let pause = self
                .rng
                .below(2 * crate::time::duration_micros(self.config.reorder_window) + 1);
            self.reclaim_at = Some(self.last_now + core::time::Duration::from_micros(pause));
        }
    }

    /// Instances of this node that lost their slot to a concurrent claim
    /// move to the lowest free slot (an update, so peers hear of it); all
    /// of them in one delta.
    fn reclaim_slots(&mut self) {
        let mut moves: Vec<(Box<str>, Box<str>)> = Vec::new();
        for (ty, ring) in &self.rings {
            for ((node, id), _) in ring.displaced() {
                if **node == *self.me.name {
                    moves.push((ty.clone(), id.clone()));
                }
            }
        }
        for (ty, id) in moves {
            let Some(slot) = self.rings.get(&ty).and_then(|r| r.free_slot()) else {
                continue;
            };
            let Some(entry) = self.presence.get(&self.me.name, &ty, &id) else {
                continue;
            };
            let old = entry.meta();
            let data = old.data.to_vec();
            let meta = Meta {
                state: old.state,
                slot,
                data: &data,
            };
            if let Ok(Some(_)) = self.presence.update(&ty, &id, meta) {
                self.apply_changes();
            }
        }
        self.push_delta();
    }

    fn on_heard(&mut self, now: Instant, id: &ReplicaId, addr: &A) -> Result<(), RecvError> {
        match self.peers.heard(now, id, addr) {
            Ok(Heard::New { was_contact }) => {
                self.events.push_back(Event::PeerUp(id.clone()));
                // It knows us; now it hears from us in turn, and a node we
                // were greeting (we are joining) hands us its peers.
                self.greet(addr, was_contact);
            }
            Ok(Heard::Known { came_back: false }) => {}
            Ok(Heard::Known { came_back: true }) => {
                let _ = self.presence.replica_up(id);
                self.apply_changes();
                self.events.push_back(Event::PeerUp(id.clone()));
            }
            Ok(Heard::Restarted { old }) => {
                self.calls_to_node_failed(&old.name);
                self.purge(&old);
                self.transfers.forget_peer_name(&old.name);
                self.events.push_back(Event::PeerGone(old));
                self.events.push_back(Event::PeerUp(id.clone()));
                self.greet(addr, false);
            }
            Err(PeerRefusal::Stale) => return Err(self.dropped(DropReason::StaleIncarnation)),
            Err(PeerRefusal::Full) => return Err(self.dropped(DropReason::TooManyPeers)),
        }
        Ok(())
    }

    fn on_heartbeat(&mut self, now: Instant, hb: Heartbeat<A>, from: &A) {
        if let Some(p) = self.peers.get_mut(&hb.from.name) {
            p.last_seq = hb.seq;
            p.clock = hb.clock;
        }
        for info in hb.peers {
            self.learn_peer(now, info);
        }
        if hb.want_peers {
            self.send_peer_list(from);
        }
        self.maybe_catch_up(now, &hb.from);
    }

    fn learn_peer(&mut self, now: Instant, info: PeerInfo<A>) {
        if info.id.name != self.me.name && self.peers.is_news(&info.id) {
            self.peers
                .add_contact(now, info.addr, false, Some(info.id.incarnation));
        }
    }

    /// Asks `peer` for what we lack of its entries. The first time a lag
    /// shows, it waits `reorder_window` for deltas still on their way; then
    /// it asks, and asks again every `retry_after` until the lag is gone.
    fn maybe_catch_up(&mut self, now: Instant, peer: &ReplicaId) {
        let have = self.clock_of(peer);
        let receiving = self.transfers.receiving_from(&peer.name);
        let (window, retry) = (self.config.reorder_window, self.config.retry_after);
        let Some(p) = self.peers.get_mut(&peer.name) else {
            return;
        };
        if p.clock <= have {
            p.ask_at = None;
            return;
        }
        if receiving {
            // The answer is arriving; ask again only if it stalls.
            p.ask_at = Some(now + retry);
            return;
        }
        match p.ask_at {
            None => {
                p.ask_at = Some(now + window);
                return;
            }
            Some(at) if now < at => return,
            Some(_) => {}
        }
        p.ask_at = Some(now + retry);
        let to = p.addr.clone();
        self.stats.catch_ups_sent += 1;
        let msg: Message<'_, A> = Message::CatchUp {
            from: self.me.clone(),
            have,
        };
        self.send(Destination::Peer(to), &msg);
    }

    fn retry_catch_ups(&mut self, now: Instant) {
        let due: Vec<(ReplicaId, PeerStatus)> = self
            .peers
            .iter()
            .filter(|p| p.ask_at.is_some_and(|t| t <= now))
            .map(|p| (p.id.clone(), p.status))
            .collect();
        for (id, status) in due {
            if status == PeerStatus::Up {
                self.maybe_catch_up(now, &id);
            } else if let Some(p) = self.peers.get_mut(&id.name) {
                // A down peer cannot answer; its next heartbeat asks anew.
                p.ask_at = None;
            }
        }
    }

    /// Applies the deltas of `peer` that arrived early and now follow on
    /// from what we have; drops those we no longer need.
    fn drain_early_deltas(&mut self, peer: &ReplicaId) {
        loop {
            let have = self.clock_of(peer);
            let Some(list) = self.early.get_mut(&*peer.name) else {
                return;
            };
            list.retain(|e| e.end > have);
            let Some(pos) = list.iter().position(|e| e.start <= have) else {
                if list.is_empty() {
                    self.early.remove(&*peer.name);
                }
                return;
            };
            let early = list.swap_remove(pos);
            if let Ok(Message::Delta { from, delta }) = wire::decode_body::<A>(&early.body) {
                if from == *peer && self.presence.merge_delta(&delta).is_ok() {
                    self.stats.deltas_merged += 1;
                    self.apply_changes();
                    continue;
                }
            }
            // Not mergeable after all (a newer incarnation, a limit): drop it.
        }
    }

    /// Keeps a delta that arrived before the one it follows, bounded per
    /// peer (the oldest goes first).
    fn keep_early_delta(&mut self, peer: &ReplicaId, delta: &Delta<'_>, body: &[u8]) {
        let cap = self.config.reorder_buffer;
        if cap == 0 {
            return;
        }
        let list = self.early.entry(peer.name.clone()).or_default();
        if list
            .iter()
            .any(|e| e.start == delta.start && e.end == delta.end)
        {
            return;
        }
        if list.len() >= cap {
            let oldest = list
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.start)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                list.swap_remove(i);
            }
        }
        list.push(EarlyDelta {
            start: delta.start,
            end: delta.end,
            body: body.to_vec(),
        });
    }

    fn on_delta(&mut self, now: Instant, sender: &ReplicaId, delta: &Delta<'_>, body: &[u8]) {
        if delta.replica != *sender {
            self.stats.drop(DropReason::Refused);
            return;
        }
        match self.presence.merge_delta(delta) {
            Ok(_) => {
                self.stats.deltas_merged += 1;
                self.apply_changes();
                if let Some(p) = self.peers.get_mut(&sender.name) {
                    p.clock = p.clock.max(delta.end);
                }
                self.drain_early_deltas(sender);
                self.maybe_catch_up(now, sender);
            }
            Err(MergeError::Gap { .. }) => {
                self.stats.delta_gaps += 1;
                if let Some(p) = self.peers.get_mut(&sender.name) {
                    p.clock = p.clock.max(delta.end);
                }
                self.keep_early_delta(sender, delta, body);
                self.maybe_catch_up(now, sender);
            }
            Err(_) => self.stats.drop(DropReason::Refused),
        }
    }

    fn on_catch_up(&mut self, now: Instant, from: &A, have: u64) {
        // A newer request replaces a transfer still in flight: the peer asks
        // again only when the old one stalled or it learned of newer changes.
        self.transfers.cancel_to(from);
        let body = match self.presence.catch_up(have) {
            Some(delta) => {
                // Most answers fit one datagram: send them as a plain delta,
                // with no transfer state on either side.
                let msg: Message<'_, A> = Message::Delta {
                    from: self.me.clone(),
                    delta: delta.clone(),
                };
                if let Some(body) = self.encode_body(&msg) {
                    self.queue(Destination::Peer(from.clone()), body);
                    return;
                }
                TransferBody::Delta(delta)
            }
            None => {
                // Our context with our own clock lowered to the peer's:
                // the extract then holds our section alone.
                let mut context: Context = self.presence.context();
                for (r, c) in &mut context.replicas {
                    if *r == self.me {
                        *c = have;
                    }
                }
                TransferBody::Extract(self.presence.extract(&context))
            }
        };
        let Ok(bytes) = wire::encode_transfer(&body) else {
            return;
        };
        let chunk = self.chunk_size();
        if self.transfers.start(
            now,
            from.clone(),
            wire::TransferKind::Sync,
            self.rng.next_u64() as u32,
            bytes,
            chunk,
        ) {
            self.stats.transfers_sent += 1;
        }
    }

    fn on_chunk(
        &mut self,
        now: Instant,
        sender: &ReplicaId,
        from: &A,
        head: wire::ChunkHead,
        data: &[u8],
    ) -> Result<(), RecvError> {
        match self.transfers.receive(now, sender, from, head, data) {
            Err(()) => Err(self.dropped(DropReason::BadChunk)),
            Ok(None) => Ok(()),
            Ok(Some(bytes)) => {
                let done: Message<'_, A> = Message::TransferDone {
                    from: self.me.clone(),
                    transfer: head.transfer,
                };
                self.send(Destination::Peer(from.clone()), &done);
                let body = wire::decode_transfer(&bytes);
                if head.kind == wire::TransferKind::Call {
                    let handled = match body {
                        Ok(body) => self.on_call_transfer(now, sender, from, body),
                        Err(_) => false,
                    };
                    if !handled {
                        return Err(self.dropped(DropReason::Refused));
                    }
                    return Ok(());
                }
                let merged = match body {
                    Ok(TransferBody::Delta(d)) if d.replica == *sender => {
                        self.presence.merge_delta(&d).map(|_| ())
                    }
                    Ok(TransferBody::Extract(x))
                        if x.replicas.iter().all(|s| s.replica == *sender) =>
                    {
                        self.presence.merge_extract(&x).map(|_| ())
                    }
                    _ => {
                        self.stats.transfers_failed += 1;
                        return Err(self.dropped(DropReason::Refused));
                    }
                };
                match merged {
                    Ok(()) => {
                        self.stats.transfers_received += 1;
                        self.apply_changes();
                        self.drain_early_deltas(sender);
                    }
                    Err(_) => self.stats.transfers_failed += 1,
                }
                if let Some(p) = self.peers.get_mut(&sender.name) {
                    p.ask_at = None;
                }
                self.maybe_catch_up(now, sender);
                Ok(())
            }
        }
    }

    fn on_leave(&mut self, from: &ReplicaId) -> Result<(), RecvError> {
        match self.peers.get(&from.name) {
            Some(p) if p.id.incarnation == from.incarnation => {
                self.calls_to_node_failed(&from.name);
                self.peers.depart(from);
                self.purge(from);
                self.transfers.forget_peer_name(&from.name);
                self.events.push_back(Event::PeerGone(from.clone()));
                Ok(())
            }
            Some(_) => Err(self.dropped(DropReason::StaleIncarnation)),
            None => Err(self.dropped(DropReason::UnknownPeer)),
        }
    }

    fn send_heartbeats(&mut self) {
        self.heartbeat_seq += 1;
        let mut gossip = Vec::new();
        let n = self.peers.len();
        if n > 0 {
            for k in 0..self.config.gossip_peers.min(n) {
                let i = (self.gossip_cursor + k) % n;
                if let Some(p) = self.peers.iter().nth(i) {
                    if p.status == PeerStatus::Up {
                        gossip.push(PeerInfo {
                            id: p.id.clone(),
                            addr: p.addr.clone(),
                        });
                    }
                }
            }
            self.gossip_cursor = (self.gossip_cursor + self.config.gossip_peers) % n;
        }
        let hb = |want_peers: bool, peers: Vec<PeerInfo<A>>| Heartbeat {
            from: self.me.clone(),
            seq: self.heartbeat_seq,
            clock: self.presence.clock(),
            want_peers,
            peers,
        };
        let to_peers: Message<'_, A> = Message::Heartbeat(hb(false, gossip));
        let to_contacts: Message<'_, A> = Message::Heartbeat(hb(true, Vec::new()));
        if self.peers.len() > 0 {
            self.send_to_peers(&to_peers);
        }
        let contacts: Vec<(A, Option<u64>)> = self
            .peers
            .contacts()
            .map(|(a, inc)| (a.clone(), inc))
            .collect();
        if let Some(body) = self.encode_body(&to_contacts) {
            for (addr, incarnation) in contacts {
                self.queue_for(Destination::Peer(addr), incarnation, body.clone());
            }
        }
    }

    /// Tells a peer heard from for the first time (or in a new
    /// incarnation) that we know it, and where our clock stands, so that it
    /// knows us in turn and asks at once for services we registered before
    /// it knew us, instead of at our next heartbeat.
    fn greet(&mut self, to: &A, want_peers: bool) {
        let msg = self.greeting(want_peers);
        if let Some(body) = self.encode_body(&msg) {
            let incarnation = self.peers.incarnation_at(to);
            self.queue_for(Destination::Peer(to.clone()), incarnation, body);
        }
    }

    /// A heartbeat naming no peers.
    fn greeting(&mut self, want_peers: bool) -> Message<'static, A> {
        self.heartbeat_seq += 1;
        Message::Heartbeat(Heartbeat {
            from: self.me.clone(),
            seq: self.heartbeat_seq,
            clock: self.presence.clock(),
            want_peers,
            peers: Vec::new(),
        })
    }

    fn send_peer_list(&mut self, to: &A) {
        let mut peers: Vec<PeerInfo<A>> = Vec::new();
        let mut buf = vec![0u8; self.body_room()];
        for p in self
            .peers
            .iter()
            .filter(|p| p.status == PeerStatus::Up && p.addr != *to)
        {
            peers.push(PeerInfo {
                id: p.id.clone(),
                addr: p.addr.clone(),
            });
            let msg: Message<'_, A> = Message::Peers {
                from: self.me.clone(),
                peers: peers.clone(),
            };
            if wire::encode_body(&msg, &mut buf).is_err() {
                peers.pop();
                break;
            }
        }
        if !peers.is_empty() {
            let msg: Message<'_, A> = Message::Peers {
                from: self.me.clone(),
                peers,
            };
            self.send(Destination::Peer(to.clone()), &msg);
        }
    }

    /// Payload bytes per chunk, so that a chunk datagram never exceeds the
    /// MTU whatever the varint sizes of its header fields.
    fn chunk_size(&self) -> u16 {
        let probe: Message<'_, A> = Message::Chunk {
            from: self.me.clone(),
            head: wire::ChunkHead {
                transfer: u32::MAX,
                kind: wire::TransferKind::Call,
                total_len: u32::MAX,
                chunk_size: u16::MAX,
                index: u32::MAX,
            },
            data: &[],
        };
        let overhead =
            postcard::experimental::serialized_size(&probe).unwrap_or(self.config.mtu / 2);
        // Three bytes for the length of the payload itself.
        let room = self.body_room().saturating_sub(overhead + 3);
        u16::try_from(room.max(1)).unwrap_or(u16::MAX)
    }

    /// Room for a message body in a datagram of the MTU, whatever its
    /// framing (sealed, or in the clear and addressed).
    fn body_room(&self) -> usize {
        let frame = if self.config.keyring.is_some() {
            wire::SEAL_OVERHEAD
        } else {
            wire::seal::TO_LEN
        };
        self.config.mtu - wire::HEADER_LEN - frame
    }

    /// `msg`'s body, if it fits a datagram.
    fn encode_body(&self, msg: &Message<'_, A>) -> Option<Vec<u8>> {
        body_of(self.body_room(), msg)
    }

    fn send_to_peers(&mut self, msg: &Message<'_, A>) {
        if let Some(body) = self.encode_body(msg) {
            self.queue_to_peers(body);
        }
    }

    fn queue_to_peers(&mut self, body: Vec<u8>) {
        if self.config.transport_broadcasts {
            self.queue_for(Destination::Broadcast, None, body);
            return;
        }
        let sealed = self.config.keyring.is_some();
        let to: Vec<(A, u64)> = self
            .peers
            .iter()
            .map(|p| (p.addr.clone(), p.id.incarnation))
            .collect();
        for (addr, incarnation) in to {
            let incarnation = sealed.then_some(incarnation);
            self.queue_for(Destination::Peer(addr), incarnation, body.clone());
        }
    }

    fn send(&mut self, to: Destination<A>, msg: &Message<'_, A>) {
        if let Some(body) = self.encode_body(msg) {
            self.queue(to, body);
        }
    }

    /// Queues `body` for `to`. Sealed, it is written for the incarnation we
    /// know there (that costs no byte: the incarnation is authenticated,
    /// not sent). In the clear only introductions (greetings, heartbeats
    /// to contacts) are addressed, as they must be for a node that does not
    /// know us yet to believe them: a peer that knows us believes the rest
    /// by our name and incarnation, and 8 bytes a datagram stay off the
    /// wire.
    fn queue(&mut self, to: Destination<A>, body: Vec<u8>) {
        let incarnation = match &to {
            Destination::Peer(addr) => self.written_for(addr),
            Destination::Broadcast => None,
        };
        self.queue_for(to, incarnation, body);
    }

    /// The incarnation a datagram that is not an introduction is written
    /// for at `addr`: the one we know there when sealed, none in the clear
    /// (see [`Node::queue`]).
    fn written_for(&self, addr: &A) -> Option<u64> {
        self.config
            .keyring
            .as_ref()
            .and_then(|_| self.peers.incarnation_at(addr))
    }

    fn queue_for(&mut self, to: Destination<A>, incarnation: Option<u64>, body: Vec<u8>) {
        if self.outbox.len() >= OUTBOX_LIMIT {
            self.outbox.pop_front();
        }
        self.outbox.push_back(Outgoing {
            to,
            incarnation,
            body,
        });
    }
}

/// `msg`'s body, if it fits in `room` bytes.
fn body_of<A: Serialize>(room: usize, msg: &Message<'_, A>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; room];
    let len = wire::encode_body(msg, &mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// The counter a refusal of [`wire::open`] or the header goes to.
fn drop_reason(e: WireError) -> DropReason {
    match e {
        WireError::UnsupportedVersion(_) => DropReason::Version,
        WireError::ForeignCluster(_) => DropReason::ForeignCluster,
        WireError::Unsealed => DropReason::Unsealed,
        WireError::UnknownKey(_) => DropReason::UnknownKey,
        WireError::BadTag => DropReason::BadTag,
        WireError::NotForUs(_) => DropReason::NotForUs,
        _ => DropReason::Malformed,
    }
}

fn routing(allow_offline: bool) -> Routing {
    if allow_offline {
        Routing::AllowOffline
    } else {
        Routing::OnlineOnly
    }
}
