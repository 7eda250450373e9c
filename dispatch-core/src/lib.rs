//! The sans-IO core of Dispatch, a distributed service registry with key
//! routing.
//!
//! `dispatch-core` is `#![no_std]` with `alloc`: it does no I/O, reads no
//! clock and starts no thread. Every input (a datagram, the current time, a
//! local command) is fed to a value, and every output is drained from it.
//!
//! - [`presence`]: the replicated set of service entries, a delta-CRDT.
//! - [`time`]: the [`Instant`](time::Instant) the driver feeds in.
//! - [`transmit`]: where a datagram the core wrote goes.
//! - [`rng`]: the seeded generator behind every random choice.
//! - [`sim`]: a deterministic simulated network that runs many endpoints in
//!   virtual time, for tests.
//! - [`ring`]: the hash ring that routes a key to the instances of a service
//!   type.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod node;
pub mod presence;
pub mod ring;
pub mod rng;
pub mod sim;
pub mod time;
pub mod transfer;
pub mod transmit;
pub mod wire;
