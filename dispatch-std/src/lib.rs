//! Dispatch on tokio: a service registry with key routing, for servers.
//!
//! Each node of a cluster registers the service instances it runs under a
//! type (`uploader`); every node holds the same replicated set of them and
//! routes a key (`file.png`) to the same owner. This crate drives the
//! sans-IO core [`dispatch_core`] over UDP with tokio and gives it an async
//! API with the behaviours of the Elixir Dispatch library:
//!
//! - [`Registry`]: a cloneable handle, started with a [`Builder`] (or from a
//!   TOML file and `DISPATCH_*` variables). [`add_service`](Registry::add_service),
//!   [`enable_service`](Registry::enable_service),
//!   [`disable_service`](Registry::disable_service),
//!   [`remove_service`](Registry::remove_service),
//!   [`get_services`](Registry::get_services),
//!   [`get_online_services`](Registry::get_online_services),
//!   [`find_service`](Registry::find_service),
//!   [`find_multi_service`](Registry::find_multi_service),
//!   [`subscribe`](Registry::subscribe) and a graceful
//!   [`shutdown`](Registry::shutdown).
//! - [`Client`]: `call`, `cast`, `multi_call`, `multi_cast` to the instances
//!   that own a key, typed (serde) or raw bytes, with a per-call timeout.
//! - [`handler`]: what answers an instance's requests.
//! - [`Transport`]: the driver is generic over it; [`Udp`] is the one for
//!   servers, and another crate can bring its own (libp2p).
//! - [`key_file`]: the cluster keyring on disk; with one, every datagram is
//!   sealed and outsiders can neither join, forge, replay nor read.
//! - [`control`]: the small TCP endpoint the `dispatch` program's query
//!   commands use.
//!
//! Errors are typed ([`Error`], [`StartError`]); `tracing` events mark
//! joins, leaves, peers going up and down, transfers, requests and calls.
//!
//! ## How it runs
//! One driver task per node only moves bytes and time: it waits on the
//! transport, on a timer set to the core's `poll_timeout`, and on a wake-up
//! from commands; after each input it drains the core's transmits (sent)
//! and events (published to subscribers, handed to handlers, or completing
//! calls). Every protocol decision stays in [`dispatch_core`].
//!
//! The core's node sits behind a `std::sync::Mutex` shared by the driver
//! and the handles, never held across an `.await`: whoever feeds an input
//! (a datagram, a timer, a command such as `add_service` or `call`) locks,
//! reads the clock, feeds, drains, unlocks, and only then sends. Reads such
//! as [`Registry::find_service`] are synchronous and wait at most for one
//! datagram's processing, never for the network. A handler is polled once
//! where its request arrives and spawned only if it is not ready at once,
//! so a call that is answered at once costs no extra task switch.
//!
//! ## Example
//! Two nodes on loopback: `a` runs an uploader, `b` finds it and calls it.
//!
//! ```
//! use std::time::Duration;
//! use dispatch_std::{handler, Registry, Routing};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let a = Registry::builder().name("a").start().await?;
//!     let b = Registry::builder().name("b").seed(a.local_addr().to_string()).start().await?;
//!
//!     let store = |name: String| async move { format!("stored {name}") };
//!     a.add_service("uploader", "u1", handler::typed(store)).await?;
//!
//!     // b hears of the new instance within a few round trips.
//!     while b.find_service("uploader", "file.png", Routing::OnlineOnly).is_err() {
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!     }
//!     let owner = b.find_service("uploader", "file.png", Routing::OnlineOnly)?;
//!     assert_eq!((&*owner.node.name, &*owner.id), ("a", "u1"));
//!
//!     let reply: String = b.call("uploader", "file.png", &"file.png".to_string()).await?;
//!     assert_eq!(reply, "stored file.png");
//!
//!     a.shutdown().await;
//!     b.shutdown().await;
//!     Ok(())
//! }
//! ```

mod builder;
mod client;
pub mod control;
mod driver;
mod error;
pub mod handler;
pub mod key_file;
mod registry;
mod subscription;
mod time;
mod transport;

pub use builder::Builder;
pub use client::Client;
pub use dispatch_core;
pub use dispatch_core::node::{CallError, Peer, PeerStatus, Request, RequestKind, Service};
pub use dispatch_core::presence::{Ref, ReplicaId, State};
pub use dispatch_core::ring::Routing;
pub use driver::IoStats;
pub use error::{Error, StartError};
pub use handler::Handler;
pub use registry::{Registry, Stats};
pub use subscription::{ServiceEvent, Subscription};
pub use transport::{Transport, Udp};
