//! Dispatch on libp2p: the same registry, routing and call/cast API as
//! `dispatch-std`, inside a libp2p Swarm.
//!
//! A server team that runs a Swarm already adds [`Behaviour`] to its own
//! `#[derive(NetworkBehaviour)]` struct, beside identify, ping, kad or its
//! own protocols. [`Behaviour::new`] also returns a [`Libp2p`] transport:
//! `dispatch-std`'s driver runs the core over it, and the
//! [`Registry`](dispatch_std::Registry) it returns is the one UDP users
//! have. Nothing of the driver, the API or the protocol is repeated here:
//! this crate only carries the core's datagrams.
//!
//! - What goes to the whole cluster (deltas, heartbeats, leaves) is
//!   published on one gossipsub topic per cluster id; the core judges each
//!   message before gossipsub forwards it.
//! - What goes to one peer (greetings, catch-ups, transfers, calls and
//!   replies) goes over request-response with a bounded [`codec`].
//! - Users without a Swarm start a ready-made one (TCP with noise and yamux,
//!   and QUIC) with [`NodeBuilder`].
//! - Peers are [`PeerId`](libp2p::PeerId)s. A node given one seed
//!   multiaddr (ending in `/p2p/<peer id>`) learns every member from it,
//!   dials them, and keeps those connections open.
//!
//! ```no_run
//! use dispatch_libp2p::{Behaviour, Config};
//! use libp2p::{noise, tcp, yamux, SwarmBuilder};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut transport = None;
//! let mut swarm = SwarmBuilder::with_new_identity()
//!     .with_tokio()
//!     .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
//!     .with_behaviour(|key| {
//!         let (behaviour, t) = Behaviour::new(key, Config::default())?;
//!         transport = Some(t);
//!         Ok(behaviour)
//!     })?
//!     .build();
//! swarm.listen_on("/ip4/0.0.0.0/tcp/4001".parse()?)?;
//! let transport = transport.expect("with_behaviour ran");
//! let seeds = transport.seeds(&["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse()?])?;
//! let registry = dispatch_std::Builder::new().name("a").start_with(transport, seeds)?;
//! tokio::spawn(async move {
//!     use futures::StreamExt;
//!     loop {
//!         swarm.select_next_some().await;
//!     }
//! });
//! registry.add_service("uploader", "u1", |r: dispatch_std::Request| async move { r.payload }).await?;
//! # Ok(()) }
//! ```

mod addresses;
mod behaviour;
pub mod codec;
mod keep_alive;
mod node;
mod stats;
mod transport;

pub use libp2p;

pub use behaviour::{Behaviour, Config, ConfigError, Event};
pub use node::{Node, NodeBuilder, StartError};
pub use stats::{SharedStats, Stats};
pub use transport::{Libp2p, SeedError};
