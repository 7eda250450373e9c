//! Configuration of a [`Node`](super::Node), validated before use.

use core::fmt;
use core::time::Duration;

use crate::keyring::Keyring;
use crate::presence;

/// How a node behaves on the network. Build it with [`Config::default`] or
/// [`Config::small`] and change what you need; [`Config::validate`] (called
/// by [`Node::new`](super::Node::new)) refuses inconsistent settings with a
/// message that says what to change.
#[derive(Debug, Clone)]
pub struct Config {
    /// Identifies the cluster on the wire; datagrams of other clusters are
    /// dropped and counted. Default 0.
    pub cluster_id: u32,
    /// Largest datagram the node writes, header included. Default 1200
    /// bytes: what survives the usual Internet path without fragmenting.
    /// At least 512.
    pub mtu: usize,
    /// How often a node tells every peer it is alive. Default 1 s: a crash
    /// is noticed within `down_after` plus one period, and idle traffic is a
    /// few dozen bytes per peer per period.
    pub heartbeat_period: Duration,
    /// Silence after which a peer is down: its services leave everywhere
    /// (they return if it does). Default 10 s: ten lost heartbeats in a row
    /// under 20% loss happen once in ten million periods. Must exceed two
    /// heartbeat periods.
    pub down_after: Duration,
    /// Silence after which a down peer is forgotten and its entries purged.
    /// Default 10 minutes, long enough for a reboot. Must exceed
    /// `down_after`.
    pub permanent_down_after: Duration,
    /// How long to wait for the rest of a transfer, or for an answer to a
    /// catch-up request, before asking again. Default 500 ms.
    pub retry_after: Duration,
    /// How long a lag may last before the node asks for a catch-up: deltas
    /// reordered by the network fill it sooner. Default 20 ms, several times
    /// a LAN's jitter. Must be shorter than `retry_after`.
    pub reorder_window: Duration,
    /// Deltas kept per peer while the ones before them are late. Default 16.
    pub reorder_buffer: usize,
    /// Most peers the node keeps; heartbeats from further nodes are dropped
    /// and counted. Default 256.
    pub max_peers: usize,
    /// Largest transfer the node reassembles, in bytes. Default 4 MiB.
    pub max_transfer_bytes: u32,
    /// Most transfers being sent or received at once; each holds at most
    /// `max_transfer_bytes`. Default 8.
    pub max_transfers: usize,
    /// Peers named in each heartbeat, in rotation, so membership spreads
    /// beyond the seeds. Default 1.
    pub gossip_peers: usize,
    /// The transport delivers one transmit to every peer (gossipsub): the
    /// node emits [`Destination::Broadcast`](crate::transmit::Destination)
    /// instead of one copy per peer. Default false (UDP).
    pub transport_broadcasts: bool,
    /// How long a call waits for its reply when the caller gives no
    /// timeout of its own. Default 5 s, as in the Elixir library.
    pub call_timeout: Duration,
    /// How long a request or a reply waits for its acknowledgement before it
    /// is sent again; each further wait doubles, up to `retry_after`.
    /// Default 50 ms, several LAN round trips. Must be positive and shorter
    /// than `call_timeout`.
    pub call_retry: Duration,
    /// Largest request or reply, in bytes. Larger ones than a datagram
    /// travel as chunked transfers. Default 1 MiB; at most
    /// `max_transfer_bytes`.
    pub max_call_bytes: u32,
    /// Most calls and casts this node waits on at once; past it `call`
    /// fails with `Busy`. Default 1024.
    pub max_outgoing_calls: usize,
    /// Most requests this node remembers at once (being handled, or
    /// answered and kept to deduplicate retransmissions); past it requests
    /// are refused as `Busy`. Default 1024.
    pub max_incoming_calls: usize,
    /// The transport delivers every message, once (libp2p
    /// request-response): requests and replies are then neither
    /// acknowledged nor sent again. Default false (UDP).
    pub reliable_transport: bool,
    /// Seed of the node's pseudo-random choices (transfer identifiers,
    /// timer jitter). Drivers pass entropy from the OS or a hardware RNG;
    /// tests fix it.
    pub seed: u64,
    /// Limits of the replicated presence set.
    pub presence: presence::Config,
    /// The cluster keyring. With one, every datagram the node writes is
    /// sealed (ChaCha20-Poly1305) with its primary key, and only datagrams
    /// sealed with one of its keys are accepted: outsiders can neither
    /// join, forge, replay nor read. Without one (the default) datagrams
    /// travel in the clear, for trusted networks. See
    /// [`keyring`](crate::keyring) for rotating keys.
    pub keyring: Option<Keyring>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_id: 0,
            mtu: 1200,
            heartbeat_period: Duration::from_secs(1),
            down_after: Duration::from_secs(10),
            permanent_down_after: Duration::from_secs(600),
            retry_after: Duration::from_millis(500),
            reorder_window: Duration::from_millis(20),
            reorder_buffer: 16,
            max_peers: 256,
            max_transfer_bytes: 4 << 20,
            max_transfers: 8,
            gossip_peers: 1,
            transport_broadcasts: false,
            call_timeout: Duration::from_secs(5),
            call_retry: Duration::from_millis(50),
            max_call_bytes: 1 << 20,
            max_outgoing_calls: 1024,
            max_incoming_calls: 1024,
            reliable_transport: false,
            seed: 0,
            presence: presence::Config::default(),
            keyring: None,
        }
    }
}

/// A setting [`Config::validate`] refused, with what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `mtu` is below 512 bytes or above 65507.
    Mtu(usize),
    /// `heartbeat_period` is zero.
    HeartbeatPeriod,
    /// `down_after` does not exceed two heartbeat periods.
    DownAfter,
    /// `permanent_down_after` does not exceed `down_after`.
    PermanentDownAfter,
    /// `retry_after` is zero or not shorter than `down_after`.
    RetryAfter,
    /// `reorder_window` is not shorter than `retry_after`.
    ReorderWindow,
    /// `max_peers`, `max_transfers`, `max_transfer_bytes`, `max_call_bytes`,
    /// `max_outgoing_calls` or `max_incoming_calls` is zero.
    ZeroCapacity(&'static str),
    /// `call_timeout` is zero, or `call_retry` is zero or not shorter than
    /// `call_timeout`.
    CallTimers,
    /// `max_call_bytes` exceeds `max_transfer_bytes`.
    CallBytes,
    /// The presence set's limits are inconsistent.
    Presence(presence::ConfigError),
    /// `presence.max_replicas` does not exceed `max_peers` (every peer and
    /// this node need a replica).
    ReplicasBelowPeers,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Mtu(m) => write!(f, "mtu is {m} bytes: set it between 512 and 65507"),
            ConfigError::HeartbeatPeriod => f.write_str("heartbeat_period is zero: give it a positive duration"),
            ConfigError::DownAfter => f.write_str(
                "down_after must exceed two heartbeat periods: raise down_after or shorten heartbeat_period",
            ),
            ConfigError::PermanentDownAfter => {
                f.write_str("permanent_down_after must exceed down_after: raise permanent_down_after")
            }
            ConfigError::RetryAfter => {
                f.write_str("retry_after must be positive and shorter than down_after")
            }
            ConfigError::ReorderWindow => {
                f.write_str("reorder_window must be shorter than retry_after: shorten reorder_window")
            }
            ConfigError::ZeroCapacity(field) => write!(f, "{field} is zero: give it at least 1"),
            ConfigError::CallTimers => f.write_str(
                "call_timeout must be positive and call_retry positive and shorter than call_timeout",
            ),
            ConfigError::CallBytes => f.write_str(
                "max_call_bytes exceeds max_transfer_bytes: lower max_call_bytes or raise max_transfer_bytes",
            ),
            ConfigError::Presence(e) => write!(f, "presence: {e}"),
            ConfigError::ReplicasBelowPeers => f.write_str(
                "presence.max_replicas must exceed max_peers: raise presence.max_replicas or lower max_peers",
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

impl From<presence::ConfigError> for ConfigError {
    fn from(e: presence::ConfigError) -> Self {
        ConfigError::Presence(e)
    }
}

impl Config {
    /// Settings for a microcontroller whose node lives in a 32 KiB heap:
    /// 512-byte datagrams; 8 peers; 32 entries in the whole set, the
    /// device's own included, with names, types and ids of at most 32 bytes
    /// and 64 bytes of metadata; transfers of at most 8 KiB, two at a time;
    /// requests and replies of at most 1 KiB, four calls each way at once.
    ///
    /// What grows with the cluster is bounded by `presence.max_entries`:
    /// a cluster holding more instances than that is heard replica by
    /// replica until the set is full, and the rest is refused and counted
    /// (`Stats::dropped`), so the heap stays bounded however large the
    /// cluster grows. Measured on the std device (dispatch-embassy's
    /// `heap_report`), a node at these limits peaks near 29 KB, calls in
    /// flight aside.
    pub fn small() -> Self {
        Config {
            mtu: 512,
            max_peers: 8,
            max_transfer_bytes: 8 << 10,
            max_transfers: 2,
            reorder_buffer: 4,
            max_call_bytes: 1 << 10,
            max_outgoing_calls: 4,
            max_incoming_calls: 4,
            presence: presence::Config {
                max_entries_per_replica: 32,
                max_entries: 32,
                max_replicas: 9,
                max_data_len: 64,
                max_type_len: 32,
                max_id_len: 32,
                max_name_len: 32,
                generations: alloc::vec![16, 64],
                ..presence::Config::default()
            },
            ..Config::default()
        }
    }

    /// Checks that the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(512..=65507).contains(&self.mtu) {
            return Err(ConfigError::Mtu(self.mtu));
        }
        if self.heartbeat_period.is_zero() {
            return Err(ConfigError::HeartbeatPeriod);
        }
        if self.down_after <= self.heartbeat_period * 2 {
            return Err(ConfigError::DownAfter);
        }
        if self.permanent_down_after <= self.down_after {
            return Err(ConfigError::PermanentDownAfter);
        }
        if self.retry_after.is_zero() || self.retry_after >= self.down_after {
            return Err(ConfigError::RetryAfter);
        }
        if self.reorder_window >= self.retry_after {
            return Err(ConfigError::ReorderWindow);
        }
        for (name, value) in [
            ("max_peers", self.max_peers),
            ("max_transfers", self.max_transfers),
            ("max_transfer_bytes", self.max_transfer_bytes as usize),
            ("max_call_bytes", self.max_call_bytes as usize),
            ("max_outgoing_calls", self.max_outgoing_calls),
            ("max_incoming_calls", self.max_incoming_calls),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroCapacity(name));
            }
        }
        if self.call_timeout.is_zero()
            || self.call_retry.is_zero()
            || self.call_retry >= self.call_timeout
        {
            return Err(ConfigError::CallTimers);
        }
        if self.max_call_bytes > self.max_transfer_bytes {
            return Err(ConfigError::CallBytes);
        }
        self.presence.validate()?;
        if (self.presence.max_replicas as usize) <= self.max_peers {
            return Err(ConfigError::ReplicasBelowPeers);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn the_defaults_and_the_small_settings_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::small().validate(), Ok(()));
    }

    #[test]
    fn bad_call_settings_are_refused_with_what_to_change() {
        let bad = Config {
            call_retry: Duration::from_secs(5),
            ..Config::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::CallTimers));
        let bad = Config {
            max_call_bytes: 8 << 20,
            ..Config::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e, ConfigError::CallBytes);
        assert!(e.to_string().contains("lower max_call_bytes"));
        let bad = Config {
            max_incoming_calls: 0,
            ..Config::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "max_incoming_calls is zero: give it at least 1"
        );
    }
}
