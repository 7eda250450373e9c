//! A ready-made Swarm for users who have none: TCP with noise and yamux,
//! and QUIC, carrying only Dispatch's [`Behaviour`] and connection limits.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let node = dispatch_libp2p::NodeBuilder::new(dispatch_std::Builder::new().name("a"))
//!     .listen("/ip4/0.0.0.0/tcp/4001".parse()?)
//!     .listen("/ip4/0.0.0.0/udp/4001/quic-v1".parse()?)
//!     .seed("/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse()?)
//!     .start()
//!     .await?;
//! println!("others seed with {:?}", node.listen_addrs());
//! node.registry().add_service("uploader", "u1", |r: dispatch_std::Request| async move { r.payload }).await?;
//! node.shutdown().await;
//! # Ok(()) }
//! ```

use std::time::Duration;

use dispatch_std::Registry;
use futures::StreamExt;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::{Behaviour, Config, ConfigError, Libp2p, SeedError, SharedStats, Stats};

/// How long the swarm keeps running after the registry left, so that the
/// leave reaches the wire before the connections close.
const LINGER: Duration = Duration::from_millis(300);

/// How long [`NodeBuilder::start`] waits for its listeners to report an
/// address.
const LISTEN_DEADLINE: Duration = Duration::from_secs(10);

/// Why a [`NodeBuilder`] did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The registry's settings were refused.
    Registry(dispatch_std::StartError),
    /// The behaviour's settings were refused.
    Config(ConfigError),
    /// A seed names no peer.
    Seed(SeedError),
    /// A seed given to the registry's builder is not a multiaddr.
    SeedAddr {
        /// The seed as written.
        given: String,
        /// Why it does not parse.
        error: String,
    },
    /// Listening on an address failed.
    Listen {
        /// The address given to [`NodeBuilder::listen`].
        addr: Multiaddr,
        /// What the transport said.
        error: String,
    },
    /// The libp2p transports could not be built.
    Transport(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Registry(e) => write!(f, "{e}"),
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Seed(e) => write!(f, "{e}"),
            StartError::SeedAddr { given, error } => write!(
                f,
                "seed `{given}` (from --seed, DISPATCH_SEEDS or the config file's `seeds`) is not a multiaddr ({error}): a libp2p node's seeds are written like /ip4/10.0.0.1/tcp/4001/p2p/<peer id>"
            ),
            StartError::Listen { addr, error } => write!(
                f,
                "cannot listen on {addr}: {error} (give a local address such as /ip4/0.0.0.0/tcp/4001 or /ip4/127.0.0.1/udp/0/quic-v1)"
            ),
            StartError::Transport(e) => write!(f, "cannot build the libp2p transports: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<dispatch_std::StartError> for StartError {
    fn from(e: dispatch_std::StartError) -> Self {
        StartError::Registry(e)
    }
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct NodeBehaviour {
    dispatch: Behaviour,
    limits: connection_limits::Behaviour,
}

/// Starts a Dispatch node on its own Swarm.
#[derive(Debug)]
pub struct NodeBuilder {
    registry: dispatch_std::Builder,
    keypair: Option<Keypair>,
    listen: Vec<Multiaddr>,
    seeds: Vec<Multiaddr>,
    config: Config,
    limits: Option<ConnectionLimits>,
}

impl NodeBuilder {
    /// A node with the registry settings of `registry` (name, cluster id,
    /// timings, key file, seeds, which must be multiaddrs; its UDP bind
    /// address is not used). Like a UDP node, one listening beyond
    /// loopback refuses to start without a cluster key unless `insecure`:
    /// noise encrypts each connection, but anyone can connect and join.
    /// By default it listens on `/ip4/127.0.0.1/tcp/0` with a new identity.
    pub fn new(registry: dispatch_std::Builder) -> Self {
        NodeBuilder {
            registry,
            keypair: None,
            listen: Vec::new(),
            seeds: Vec::new(),
            config: Config::default(),
            limits: None,
        }
    }

    /// The node's identity; its PeerId is what peers know it by. Default:
    /// a new Ed25519 key on every start.
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Listens on `addr` (TCP `/ip4/…/tcp/PORT` or QUIC
    /// `/ip4/…/udp/PORT/quic-v1`); may be given several times.
    pub fn listen(mut self, addr: Multiaddr) -> Self {
        self.listen.push(addr);
        self
    }

    /// Joins through the node at `addr`, which ends with `/p2p/<peer id>`.
    pub fn seed(mut self, addr: Multiaddr) -> Self {
        self.seeds.push(addr);
        self
    }

    /// The behaviour's settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Connection limits. Default: 2 connections per peer, 64 pending
    /// inbound, and twice `max_members` (plus 16) established.
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Builds the Swarm, listens, starts the registry over it and joins
    /// through the seeds. Must be called within a tokio runtime.
    pub async fn start(mut self) -> Result<Node, StartError> {
        // Seeds given to the registry's builder (its TOML file's `seeds`,
        // `DISPATCH_SEEDS`) are multiaddrs here.
        for given in self.registry.seed_addrs() {
            let addr = given.parse().map_err(|e| StartError::SeedAddr {
                given: given.clone(),
                error: format!("{e}"),
            })?;
            self.seeds.push(addr);
        }
        if self.listen.is_empty() {
            self.listen.push(
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .expect("a valid literal address"),
            );
        }
        for addr in &self.listen {
            self.registry
                .check_exposure(&format!("listen address {addr}"), !is_loopback(addr))?;
        }
        let keypair = self.keypair.unwrap_or_else(Keypair::generate_ed25519);
        let members = u32::try_from(self.config.max_members).unwrap_or(u32::MAX);
        let limits = self.limits.unwrap_or_else(|| {
            ConnectionLimits::default()
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(64))
                .with_max_established(Some(members.saturating_mul(2).saturating_add(16)))
        });
        let (dispatch, transport) =
            Behaviour::new(&keypair, self.config).map_err(StartError::Config)?;
        let stats = dispatch.stats_handle();
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| StartError::Transport(e.to_string()))?
            .with_quic()
            .with_behaviour(|_| NodeBehaviour {
                dispatch,
                limits: connection_limits::Behaviour::new(limits),
            })
            .map_err(|e| StartError::Transport(e.to_string()))?
            .build();
        let peer_id = *swarm.local_peer_id();
        let listen_addrs = listen_on(&mut swarm, &self.listen, peer_id).await?;
        let seeds = transport.seeds(&self.seeds).map_err(StartError::Seed)?;
        let registry = self.registry.start_with(transport, seeds)?;
        info!(%peer_id, addrs = ?listen_addrs, "libp2p node listening");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(drive(swarm, stopped));
        Ok(Node {
            registry,
            peer_id,
            listen_addrs,
            stats,
            stop,
            task,
        })
    }
}

/// Whether `addr` is reachable from this host only.
fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Listens on every address and waits for each listener's first address;
/// returns them with `/p2p/<peer id>` appended.
async fn listen_on(
    swarm: &mut Swarm<NodeBehaviour>,
    addrs: &[Multiaddr],
    peer_id: PeerId,
) -> Result<Vec<Multiaddr>, StartError> {
    let mut waiting = Vec::new();
    for addr in addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| StartError::Listen {
                addr: addr.clone(),
                error: e.to_string(),
            })?;
        waiting.push((id, addr.clone()));
    }
    let mut bound = Vec::new();
    let deadline = tokio::time::sleep(LISTEN_DEADLINE);
    tokio::pin!(deadline);
    while !waiting.is_empty() {
        let event = tokio::select! {
            e = swarm.select_next_some() => e,
            () = &mut deadline => {
                let (_, addr) = waiting.swap_remove(0);
                return Err(StartError::Listen { addr, error: format!("no address within {LISTEN_DEADLINE:?}") });
            }
        };
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                waiting.retain(|(id, _)| *id != listener_id);
                bound.push(address.with(Protocol::P2p(peer_id)));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason: Err(e),
                ..
            }
            | SwarmEvent::ListenerError {
                listener_id,
                error: e,
            } => {
                if let Some((_, addr)) = waiting.iter().find(|(id, _)| *id == listener_id) {
                    return Err(StartError::Listen {
                        addr: addr.clone(),
                        error: e.to_string(),
                    });
                }
            }
            other => debug!(event = ?other, "swarm"),
        }
    }
    Ok(bound)
}

/// Polls the Swarm until told to stop, then a moment longer so the leave
/// goes out. A [`Node`] dropped without [`Node::shutdown`] leaves its Swarm
/// running for its registry until the registry's last handle is dropped.
async fn drive(mut swarm: Swarm<NodeBehaviour>, mut stopped: oneshot::Receiver<()>) {
    let mut detached = false;
    loop {
        tokio::select! {
            r = &mut stopped, if !detached => match r {
                Ok(()) => break,
                Err(_) => detached = true,
            },
            event = swarm.select_next_some() => {
                if matches!(event, SwarmEvent::Behaviour(NodeBehaviourEvent::Dispatch(crate::Event::Closed))) {
                    return;
                }
                log(event);
            }
        }
    }
    let linger = tokio::time::sleep(LINGER);
    tokio::pin!(linger);
    loop {
        tokio::select! {
            () = &mut linger => break,
            event = swarm.select_next_some() => log(event),
        }
    }
}

fn log(event: SwarmEvent<NodeBehaviourEvent>) {
    match event {
        SwarmEvent::ConnectionEstablished {
            peer_id, endpoint, ..
        } => {
            debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected")
        }
        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
            debug!(%peer_id, cause = ?cause, "disconnected")
        }
        SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
        other => debug!(event = ?other, "swarm"),
    }
}

/// A running node: its registry, and the Swarm under it.
#[derive(Debug)]
pub struct Node {
    registry: Registry<Libp2p>,
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    stats: SharedStats,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Node {
    /// The registry: add services, find, call, subscribe.
    pub fn registry(&self) -> &Registry<Libp2p> {
        &self.registry
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Where others reach this node, each ending with `/p2p/<peer id>`:
    /// what they pass as a seed.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// Leaves the cluster (peers drop this node's services at once) and
    /// stops the Swarm.
    pub async fn shutdown(self) {
        self.registry.shutdown().await;
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// The behaviour's counters (gossip accepted, rejected, ignored...);
    /// the node's own are in [`Registry::stats`].
    pub fn behaviour_stats(&self) -> Stats {
        self.stats.get()
    }

    /// The registry alone; the Swarm keeps running under it until the
    /// registry and all its clones are dropped.
    pub fn into_registry(self) -> Registry<Libp2p> {
        self.registry
    }

    /// Stops the Swarm at once without leaving, as a crash would: peers
    /// notice only when the node's heartbeats stop.
    pub fn abort(self) {
        self.task.abort();
    }
}
