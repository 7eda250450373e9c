//! The behaviours `dispatch-std` checks over UDP, from the same body of
//! tests (`dispatch-std/tests/conformance/`), over libp2p: several swarms
//! in one process on loopback TCP, each a ready-made [`NodeBuilder`] node,
//! all seeded with the first.

#[path = "../../dispatch-std/tests/conformance/mod.rs"]
mod conformance;
#[path = "../../dispatch-std/tests/support/mod.rs"]
mod support;

use dispatch_libp2p::{Libp2p, NodeBuilder};
use dispatch_std::Registry;
use support::{quick, until};

/// Clusters of libp2p nodes on loopback TCP.
struct Libp2pCluster;

impl conformance::Cluster for Libp2pCluster {
    type T = Libp2p;
    async fn start(&self, n: usize) -> Vec<Registry<Libp2p>> {
        let mut seed = None;
        let mut nodes = Vec::new();
        for i in 1..=n {
            let mut b = NodeBuilder::new(quick(&format!("n{i}")));
            if let Some(addr) = &seed {
                b = b.seed(Clone::clone(addr));
            }
            let node = b.start().await.expect("a libp2p node starts on loopback");
            seed.get_or_insert_with(|| node.listen_addrs()[0].clone());
            nodes.push(node.into_registry());
        }
        until("every node to know every other", || {
            nodes.iter().all(|node| node.peers().len() == n - 1)
        })
        .await;
        nodes
    }
}

conformance::behaviours!(Libp2pCluster);
