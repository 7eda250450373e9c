//! The sans-IO core of Dispatch, a distributed service registry with key
//! routing.
//!
//! `dispatch-core` is `#![no_std]` with `alloc`: it does no I/O, reads no
//! clock and starts no thread. Every input (a datagram, the current time, a
//! local command) is fed to a value, and every output is drained from it.
//!
//! - [`presence`]: the replicated set of service entries, a delta-CRDT.
//! - [`time`]: the [`Instant`](time::Instant) the driver feeds in.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod presence;
pub mod time;
