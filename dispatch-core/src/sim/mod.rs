//! A deterministic simulated network for testing sans-IO endpoints.
//!
//! [`Sim`] runs N [`Endpoint`]s (the Dispatch node, or a toy in a test) over
//! a network with latency, jitter (hence reordering), loss, duplication,
//! one-way or two-way partitions, crashes and restarts, all in virtual time:
//! nothing sleeps, a run jumps from one event to the next, so an hour of
//! cluster life takes milliseconds. Every random draw comes from one
//! [`Rng`] seeded by [`SimConfig::seed`], so a seed replays a run exactly;
//! [`check_seeds`] runs a scenario over many seeds and names the one that
//! failed.
//!
//! Nodes are addressed by [`SimAddr`], their index; the [`Sim`] methods take
//! the index as a `usize`.
//!
//! # Example
//!
//! A toy endpoint that floods the largest number it has heard of:
//!
//! ```
//! use core::time::Duration;
//! use dispatch_core::sim::{Endpoint, Sim, SimAddr, SimConfig};
//! use dispatch_core::time::Instant;
//! use dispatch_core::transmit::{Destination, Transmit};
//!
//! #[derive(Default)]
//! struct Max { value: u64, announce: bool, report: bool }
//!
//! impl Max {
//!     fn learn(&mut self, v: u64) {
//!         if v > self.value { (self.value, self.announce, self.report) = (v, true, true); }
//!     }
//! }
//!
//! impl Endpoint for Max {
//!     type Addr = SimAddr;
//!     type Event = u64; // "I now know this value"
//!     fn handle_datagram(&mut self, _now: Instant, _from: SimAddr, data: &[u8]) {
//!         if let Ok(bytes) = data.try_into() { self.learn(u64::from_le_bytes(bytes)) }
//!     }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit<SimAddr>> {
//!         core::mem::take(&mut self.announce).then(|| {
//!             buf[..8].copy_from_slice(&self.value.to_le_bytes());
//!             Transmit { destination: Destination::Broadcast, len: 8 }
//!         })
//!     }
//!     fn poll_event(&mut self) -> Option<u64> {
//!         core::mem::take(&mut self.report).then_some(self.value)
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//! }
//!
//! let mut config = SimConfig::new(5, 7); // 5 nodes, seed 7
//! config.link.jitter = Duration::from_micros(200);
//! let mut sim = Sim::new(config, |_index, _restarts, _now| Max::default());
//! sim.with_node(3, |node, _now| node.learn(42))?;
//! sim.run_for(Duration::from_millis(10))?;
//! for i in 0..sim.len() {
//!     assert_eq!(sim.node(i).unwrap().value, 42);
//!     assert_eq!(sim.events(i)[0].event, 42);
//! }
//! let heard = sim.events(0)[0].at; // one hop: 1 ms ± 0.2 ms
//! assert!((Instant::from_micros(800)..=Instant::from_micros(1200)).contains(&heard));
//! assert_eq!(sim.total_stats().dropped.oversize, 0);
//! # Ok::<(), dispatch_core::sim::SimError>(())
//! ```

mod config;
mod endpoint;
mod network;
mod seeds;
mod stats;

pub use crate::rng::{Rng, PPM};
pub use config::{LinkConfig, SimConfig};
pub use endpoint::{Endpoint, SimAddr};
pub use network::{Sim, SimError, TimedEvent};
pub use seeds::{check_seeds, run_seeds, SeedFailure, SEED_ENV};
pub use stats::{Drops, NodeStats};
