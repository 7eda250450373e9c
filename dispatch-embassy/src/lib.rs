//! Dispatch on microcontrollers: the core's node driven over embassy-net
//! UDP, in the same cluster as `dispatch-std` servers, with the same
//! semantics.
//!
//! `#![no_std]` with `alloc` (the core needs a heap; the board examples give
//! it a fixed one). The crate holds no protocol logic: the [`Runner`] only
//! feeds the core's node datagrams and timer expiries and drains what it
//! writes and reports, and the [`Handle`] only locks it for a command or a
//! read.
//!
//! - [`Dispatch`] ([`dispatch`](mod@dispatch)): the node and its bounded
//!   queues, kept in static memory.
//! - [`Runner`] ([`runner`]): the loop over a [`Socket`] and an embassy-time
//!   timer, run in its own task.
//! - [`Handle`] ([`handle`]): register, list, route, call, answer, hear
//!   events.
//! - [`Socket`] ([`socket`]): embassy-net's `UdpSocket`, or a test network.
//! - `time.rs`: embassy-time's clock as the core's, in one place.
//!
//! ## Start a node
//! ```ignore
//! static DISPATCH: StaticCell<Dispatch<NoopRawMutex>> = StaticCell::new();
//! let mut config = Config::small();
//! config.seed = rng.next_u64();
//! let dispatch = DISPATCH.init(Dispatch::new("sensor-1", boot_counter, config)?);
//! spawner.spawn(dispatch_task(dispatch.runner(socket, &[server]))?);
//! let handle = dispatch.handle();
//! handle.add_service("sensor", "s1", b"")?;
//! let owner = handle.find_service("uploader", b"file.png")?;
//! let reply = handle.call("uploader", b"file.png", b"hello", None).await?;
//! ```
#![no_std]

extern crate alloc;

pub mod dispatch;
pub mod event;
pub mod handle;
pub mod runner;
pub mod socket;
pub mod stats;
mod time;

pub use dispatch::{Dispatch, SetupError};
pub use dispatch_core;
pub use dispatch_core::node::Config;
pub use event::ServiceEvent;
pub use handle::Handle;
pub use runner::Runner;
pub use socket::Socket;
pub use stats::{DriverStats, Stats};
