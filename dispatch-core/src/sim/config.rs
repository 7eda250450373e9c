//! How the simulated network behaves.

use core::time::Duration;

/// The behaviour of one direction of a link between two nodes. All rates
/// are integer parts per million ([`PPM`](super::PPM) = certain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Mean one-way delay of a datagram.
    pub latency: Duration,
    /// Each datagram's delay is drawn uniformly from
    /// `latency - jitter ..= latency + jitter` (clamped at zero), so
    /// datagrams sent close together may arrive out of order.
    pub jitter: Duration,
    /// Probability, in parts per million, that a datagram is lost.
    pub loss_ppm: u32,
    /// Probability, in parts per million, that a datagram which was not lost
    /// is delivered twice (the copy gets its own delay).
    pub duplicate_ppm: u32,
}

impl Default for LinkConfig {
    /// 1 ms one-way, no jitter, no loss, no duplication: a quiet LAN.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss_ppm: 0,
            duplicate_ppm: 0,
        }
    }
}

/// Everything [`Sim::new`](super::Sim::new) needs besides the node factory.
///
/// Start from [`SimConfig::new`] and change the fields you care about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimConfig {
    /// Number of nodes, addressed `SimAddr(0)..SimAddr(nodes - 1)`. At most
    /// 65,536.
    pub nodes: usize,
    /// Seed of every random draw the simulator makes.
    pub seed: u64,
    /// How every link behaves unless [`Sim::set_link`](super::Sim::set_link)
    /// overrides it.
    pub link: LinkConfig,
    /// Largest datagram a node may send. A larger one is a bug in the node:
    /// it is dropped and counted in [`Drops::oversize`](super::Drops::oversize).
    pub mtu: usize,
    /// How many inputs (deliveries, timeouts, commands, across all nodes)
    /// one instant may take, and how many outputs one drain of one node may
    /// yield, before the run is stopped with
    /// [`SimError::Stalled`](super::SimError::Stalled). Guards against an
    /// endpoint that never lets time advance; raise it for huge clusters
    /// over links with no latency.
    pub max_steps_per_instant: u32,
}

impl SimConfig {
    /// `nodes` nodes over [`LinkConfig::default`], an MTU of 1200 bytes (the
    /// node's default) and a stall guard of 100,000 steps per instant.
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimConfig {
            nodes,
            seed,
            link: LinkConfig::default(),
            mtu: 1200,
            max_steps_per_instant: 100_000,
        }
    }
}
