//! The driver's half: [`Libp2p`] implements `dispatch-std`'s
//! [`Transport`], so the same driver and the same
//! [`Registry`](dispatch_std::Registry) API run over libp2p.
//!
//! It holds no socket. It talks to its [`Behaviour`](crate::Behaviour),
//! which lives in the user's Swarm, over bounded channels: datagrams to
//! send go one way, datagrams received the other, and for every gossip
//! message the core's verdict goes back so that gossipsub forwards only
//! what the core took.

use std::io;
use std::sync::Mutex;

use dispatch_std::dispatch_core::node::{self, RecvError};
use dispatch_std::dispatch_core::transmit::Destination;
use dispatch_std::Transport;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

/// A message the behaviour received, on its way to the driver.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// Who wrote it: the gossip message's signed author, or the
    /// request-response peer.
    pub(crate) from: PeerId,
    pub(crate) bytes: Vec<u8>,
    /// Set for gossip messages, which wait for the core's verdict.
    pub(crate) gossip: Option<Gossip>,
}

/// A gossip message waiting for the core's verdict.
#[derive(Debug, Clone)]
pub(crate) struct Gossip {
    pub(crate) id: MessageId,
    /// The peer that relayed it to us.
    pub(crate) via: PeerId,
}

/// What the driver's half asks of the behaviour.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a datagram to one peer, or to the cluster's topic.
    Send(Destination<PeerId>, Vec<u8>),
    /// Join the topic of this cluster id.
    Subscribe(u32),
    /// Remember this address of a seed and connect to it.
    Seed(PeerId, Multiaddr),
}

/// The ends of the channels the behaviour holds.
pub(crate) struct BehaviourEnds {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) verdicts: mpsc::UnboundedReceiver<(Gossip, MessageAcceptance)>,
    pub(crate) inbox: mpsc::Sender<Incoming>,
}

/// `dispatch-std`'s [`Transport`] over a [`Behaviour`](crate::Behaviour):
/// peers are [`PeerId`]s. Made together with its behaviour by
/// [`Behaviour::new`](crate::Behaviour::new); hand it to
/// [`Builder::start_with`](dispatch_std::Builder::start_with) with the
/// seeds [`Libp2p::seed`] returns.
#[derive(Debug)]
pub struct Libp2p {
    local: PeerId,
    commands: mpsc::Sender<Command>,
    verdicts: mpsc::UnboundedSender<(Gossip, MessageAcceptance)>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    /// The gossip message `recv` returned last, until the driver judges it.
    judging: Mutex<Option<Gossip>>,
}

/// A seed address the transport cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedError {
    /// The address as given.
    pub addr: Multiaddr,
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed `{}` names no peer: end it with /p2p/<peer id>, as the seed node prints its own address at start (for example /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...)",
            self.addr
        )
    }
}

impl std::error::Error for SeedError {}

impl Libp2p {
    pub(crate) fn new(local: PeerId, inbox_capacity: usize) -> (Self, BehaviourEnds) {
        let (commands, commands_rx) = mpsc::channel(inbox_capacity);
        let (verdicts, verdicts_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox) = mpsc::channel(inbox_capacity);
        let transport = Libp2p {
            local,
            commands,
            verdicts,
            inbox: tokio::sync::Mutex::new(inbox),
            judging: Mutex::new(None),
        };
        let ends = BehaviourEnds {
            commands: commands_rx,
            verdicts: verdicts_rx,
            inbox: inbox_tx,
        };
        (transport, ends)
    }

    /// Tells the behaviour to connect to the seed at `addr`, which must end
    /// with `/p2p/<peer id>`, and returns that peer id to join through.
    pub fn seed(&self, addr: &Multiaddr) -> Result<PeerId, SeedError> {
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(SeedError { addr: addr.clone() });
        };
        // A full queue of commands means the swarm is not polled; the
        // core's greeting to the seed then fails and is retried.
        let _ = self.commands.try_send(Command::Seed(peer, addr.clone()));
        Ok(peer)
    }

    /// [`Libp2p::seed`] for each address.
    pub fn seeds<'a>(
        &self,
        addrs: impl IntoIterator<Item = &'a Multiaddr>,
    ) -> Result<Vec<PeerId>, SeedError> {
        addrs.into_iter().map(|a| self.seed(a)).collect()
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the dispatch behaviour was dropped (its swarm stopped)",
    )
}

impl Transport for Libp2p {
    type Addr = PeerId;

    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, PeerId)> {
        // Both the lock and `recv` are cancel-safe.
        let mut inbox = self.inbox.lock().await;
        let Some(incoming) = inbox.recv().await else {
            // The behaviour is gone with its swarm: nothing will ever
            // arrive again. The node keeps its timers (its peers go down
            // in time) and its sends fail, counted.
            return std::future::pending().await;
        };
        // The codec and gossipsub bound messages below the driver's buffer;
        // were one longer, the cut datagram fails the core's checks.
        let len = incoming.bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&incoming.bytes[..len]);
        *self.judging.lock().unwrap_or_else(|e| e.into_inner()) = incoming.gossip;
        Ok((len, incoming.from))
    }

    async fn send(&self, to: &Destination<PeerId>, datagram: &[u8]) -> io::Result<()> {
        if *to == Destination::Peer(self.local) {
            return Ok(());
        }
        self.commands
            .send(Command::Send(*to, datagram.to_vec()))
            .await
            .map_err(|_| closed())
    }

    fn local_addr(&self) -> io::Result<PeerId> {
        Ok(self.local)
    }

    fn judged(&self, verdict: Result<(), RecvError>) {
        let Some(gossip) = self
            .judging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let acceptance = match verdict {
            Ok(()) => MessageAcceptance::Accept,
            Err(RecvError(reason)) if reason.is_invalid() => MessageAcceptance::Reject,
            Err(_) => MessageAcceptance::Ignore,
        };
        // Fails only once the behaviour is gone, when nothing is forwarded.
        let _ = self.verdicts.send((gossip, acceptance));
    }

    fn configure(&self, config: &mut node::Config) {
        // Gossipsub carries what goes to every peer, once; request-response
        // delivers the rest or fails the connection.
        config.transport_broadcasts = true;
        config.reliable_transport = true;
        let _ = self
            .commands
            .try_send(Command::Subscribe(config.cluster_id));
    }
}
