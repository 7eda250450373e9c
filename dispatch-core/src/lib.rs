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
//! - `sim` (feature `sim`, on by default): a deterministic simulated network
//!   that runs many endpoints in virtual time, for tests. Firmware leaves it
//!   out with `default-features = false`.
//! - [`ring`]: the hash ring that routes a key to the instances of a service
//!   type.
//! - [`node`]: the sans-IO node that ties them together, and its protocol,
//!   including calls and casts to the instance that owns a key
//!   ([`node::calls`]).
//! - [`wire`]: the versioned postcard wire format, sealed with the cluster
//!   [`keyring`] (ChaCha20-Poly1305) or in the clear.
//! - [`transfer`]: chunked transfers that survive loss.
//!
//! ## Feed it, then drain it
//!
//! Two nodes passing datagrams by hand. A real driver does the same with a
//! socket and a timer: feed an input with the current time, then drain every
//! transmit and event, then sleep until [`poll_timeout`](node::Node::poll_timeout).
//!
//! ```
//! use dispatch_core::node::{Config, Event, Node};
//! use dispatch_core::presence::ReplicaId;
//! use dispatch_core::time::Instant;
//! use dispatch_core::transmit::Destination;
//!
//! /// Moves every datagram `from` (at address `addr`) has to send into `to`.
//! fn pump(now: Instant, from: &mut Node<u8>, addr: u8, to: &mut Node<u8>) {
//!     let mut buf = [0u8; 1200];
//!     while let Some(t) = from.poll_transmit(now, &mut buf) {
//!         if let Destination::Peer(_) = t.destination {
//!             let _ = to.handle_datagram(now, addr, &buf[..t.len]);
//!         }
//!     }
//! }
//!
//! let now = Instant::ZERO;
//! let mut a: Node<u8> = Node::new(ReplicaId::new("a", 1), Config::default(), now)?;
//! let mut b: Node<u8> = Node::new(ReplicaId::new("b", 1), Config::default(), now)?;
//! b.join(now, &[1]); // b knows a's address, 1, and greets it.
//! // a answers the stranger with a greeting written for it, and makes it a
//! // peer when b answers that: a replayed or forged greeting makes nothing.
//! for _ in 0..2 {
//!     pump(now, &mut b, 2, &mut a);
//!     pump(now, &mut a, 1, &mut b);
//! }
//! a.add_service(now, "uploader", "u1", b"")?;
//! pump(now, &mut a, 1, &mut b);
//! let owner = b.find_service("uploader", b"file.png", false)?;
//! assert_eq!((&*owner.replica().name, owner.id()), ("a", "u1"));
//! assert!(std::iter::from_fn(|| b.poll_event()).any(|e| matches!(e, Event::ServiceJoined(_))));
//! assert!(b.poll_timeout().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod keyring;
pub mod node;
pub mod presence;
pub mod ring;
pub mod rng;
#[cfg(feature = "sim")]
pub mod sim;
pub mod time;
pub mod transfer;
pub mod transmit;
pub mod wire;
