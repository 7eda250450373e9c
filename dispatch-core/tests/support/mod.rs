//! Shared helpers for tests that run real nodes in the simulator.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;

use dispatch_core::node::{Config, Node};
use dispatch_core::presence::ReplicaId;
use dispatch_core::sim::SimAddr;
use dispatch_core::time::Instant;

/// Node `i` of a simulated cluster, named `n{i}`, in its `restarts + 1`-th
/// incarnation, joining through node 0 (node 0 through node 1), or through
/// every other node of `static_seeds` when it is given.
pub fn start(
    i: usize,
    restarts: u32,
    now: Instant,
    seed: u64,
    mut config: Config,
    static_seeds: Option<usize>,
) -> Node<SimAddr> {
    config.seed = seed.wrapping_mul(31).wrapping_add(i as u64);
    let id = ReplicaId::new(&format!("n{i}"), u64::from(restarts) + 1);
    let mut node = Node::new(id, config, now).expect("test configuration is valid");
    let seeds: Vec<SimAddr> = match static_seeds {
        Some(n) => (0..n)
            .filter(|&k| k != i)
            .map(|k| SimAddr(k as u16))
            .collect(),
        None => vec![SimAddr(if i == 0 { 1 } else { 0 })],
    };
    node.join(now, &seeds);
    node
}

/// `(node, type, id)` of every instance `node` shows.
pub fn visible(node: &Node<SimAddr>) -> BTreeSet<(String, String, String)> {
    node.presence()
        .entries()
        .map(|e| {
            (
                e.replica().name.to_string(),
                e.ty().to_string(),
                e.id().to_string(),
            )
        })
        .collect()
}
