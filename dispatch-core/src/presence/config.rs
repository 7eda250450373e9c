//! Limits and tuning of a presence set.

use alloc::vec;
use alloc::vec::Vec;

use super::error::ConfigError;

/// The most delta generations a set keeps.
pub const MAX_GENERATIONS: usize = 8;
/// The largest operation count of one delta generation.
pub const MAX_GENERATION_OPS: u32 = 1 << 24;
/// The largest value accepted for `max_entries_per_replica`.
pub const MAX_ENTRIES_PER_REPLICA: u32 = 1 << 28;
/// The largest value accepted for `max_entries`: the most entries one set
/// can index, over all replicas (2^31 - 1).
pub const MAX_ENTRIES: u32 = (1 << 31) - 1;
/// The largest value accepted for `max_replicas`.
pub const MAX_REPLICAS: u32 = 1 << 15;
/// The largest clock a replica's entries can have (2^48 - 1): merges refuse
/// data past it, and a replica whose own clock reaches it must restart with
/// a new incarnation (at a million operations a second, after nine years).
pub const MAX_CLOCK: u64 = (1 << 48) - 1;
/// The largest value accepted for the string and data length limits.
pub const MAX_LEN: u32 = 1 << 16;

/// Limits and tuning of a [`Presence`](super::Presence) set.
///
/// Every limit bounds what a peer can make us store: past a limit a local
/// operation or a merge fails and the set is unchanged. The defaults suit a
/// server; a microcontroller wants much smaller values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most entries one replica may hold (default 1,000,000).
    pub max_entries_per_replica: u32,
    /// Most entries the whole set holds, over all replicas, our own
    /// included (default [`MAX_ENTRIES`]). This is what bounds the memory of
    /// a node with a fixed heap: past it, a merge that would add entries is
    /// refused whole, as past the per-replica limit.
    pub max_entries: u32,
    /// Most replicas known at once, our own included (default 1024).
    pub max_replicas: u32,
    /// Most bytes of user data in an entry's metadata (default 1024).
    pub max_data_len: u32,
    /// Longest service type in bytes (default 255).
    pub max_type_len: u32,
    /// Longest service id in bytes (default 255).
    pub max_id_len: u32,
    /// Longest replica name in bytes (default 255).
    pub max_name_len: u32,
    /// Operation caps of the delta generations, strictly increasing
    /// (default `[100, 1000, 10000]`, as Phoenix.Tracker).
    pub generations: Vec<u32>,
    /// Seed of the keyed hash of the indexes (default 0). Peers choose the
    /// strings we index, so production drivers should set this from a random
    /// source to keep collisions out of reach.
    pub hash_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_entries_per_replica: 1_000_000,
            max_entries: MAX_ENTRIES,
            max_replicas: 1024,
            max_data_len: 1024,
            max_type_len: 255,
            max_id_len: 255,
            max_name_len: 255,
            generations: vec![100, 1000, 10_000],
            hash_seed: 0,
        }
    }
}

impl Config {
    /// Checks every field; the error says which one to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = [
            (
                "max_entries_per_replica",
                self.max_entries_per_replica,
                MAX_ENTRIES_PER_REPLICA,
            ),
            ("max_entries", self.max_entries, MAX_ENTRIES),
            ("max_replicas", self.max_replicas, MAX_REPLICAS),
            ("max_data_len", self.max_data_len, MAX_LEN),
            ("max_type_len", self.max_type_len, MAX_LEN),
            ("max_id_len", self.max_id_len, MAX_LEN),
            ("max_name_len", self.max_name_len, MAX_LEN),
        ];
        for (field, value, max) in limits {
            if value == 0 {
                return Err(ConfigError::ZeroLimit { field });
            }
            if value > max {
                return Err(ConfigError::LimitTooLarge { field, max });
            }
        }
        let count = self.generations.len();
        if count == 0 || count > MAX_GENERATIONS {
            return Err(ConfigError::GenerationCount { count });
        }
        let mut before = 0;
        for (index, &size) in self.generations.iter().enumerate() {
            if size <= before || size > MAX_GENERATION_OPS {
                return Err(ConfigError::GenerationSize { index });
            }
            before = size;
        }
        Ok(())
    }
}
