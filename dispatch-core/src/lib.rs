//! The sans-IO core of Dispatch, a distributed service registry with key
//! routing.
//!
//! `dispatch-core` is `#![no_std]` with `alloc`: it does no I/O, reads no
//! clock and starts no thread. Every input (a datagram, the current time, a
//! local command) is fed to a value, and every output is drained from it.
//!
//! - [`time`]: the [`Instant`](time::Instant) the driver feeds in.
//! - [`ring`]: the hash ring that routes a key to the instances of a service
//!   type.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod ring;
pub mod time;
