//! Errors of the presence set. Every error leaves the set unchanged.

use core::fmt;

/// Why a [`Config`](super::Config) was refused. Each message says what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit is zero; every limit must allow at least one item.
    ZeroLimit {
        /// The name of the field.
        field: &'static str,
    },
    /// A limit is larger than the set can address.
    LimitTooLarge {
        /// The name of the field.
        field: &'static str,
        /// The largest accepted value.
        max: u32,
    },
    /// `generations` is empty or has more than [`MAX_GENERATIONS`](super::MAX_GENERATIONS) sizes.
    GenerationCount {
        /// How many sizes were given.
        count: usize,
    },
    /// Our own replica name is longer than `max_name_len`.
    NameTooLong {
        /// The length of our name in bytes.
        len: usize,
        /// The configured `max_name_len`.
        max: u32,
    },
    /// `generations` is not strictly increasing, or a size is zero or too large.
    GenerationSize {
        /// The position of the offending size.
        index: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::ZeroLimit { field } => write!(f, "config field `{field}` is 0; set it to at least 1"),
            ConfigError::LimitTooLarge { field, max } => {
                write!(f, "config field `{field}` is too large; set it to at most {max}")
            }
            ConfigError::NameTooLong { len, max } => write!(
                f,
                "our replica name has {len} bytes but `max_name_len` is {max}; raise it or shorten the name"
            ),
            ConfigError::GenerationCount { count } => write!(
                f,
                "config `generations` has {count} sizes; give between 1 and {}",
                super::MAX_GENERATIONS
            ),
            ConfigError::GenerationSize { index } => write!(
                f,
                "config `generations[{index}]` must be larger than the size before it, non-zero and at most {}",
                super::MAX_GENERATION_OPS
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

/// Why a local operation ([`add`](super::Presence::add), [`remove`](super::Presence::remove),
/// [`update`](super::Presence::update)) was refused. The set is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpError {
    /// The service type is longer than `Config::max_type_len`.
    TypeTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The service id is longer than `Config::max_id_len`.
    IdTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The metadata bytes are longer than `Config::max_data_len`.
    DataTooLong {
        /// Their length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// This replica already has an entry with this (type, id); use `update`.
    AlreadyExists,
    /// This replica has no entry with this (type, id).
    NotFound,
    /// This replica already holds `Config::max_entries_per_replica` entries.
    TooManyEntries {
        /// The limit.
        max: u32,
    },
    /// The whole set already holds `Config::max_entries` entries, over all
    /// replicas, whatever the per-replica limit.
    SetFull {
        /// The limit.
        max: usize,
    },
    /// Our clock has reached [`MAX_CLOCK`](super::MAX_CLOCK): restart with
    /// a new incarnation, which starts again from zero.
    ClockExhausted {
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OpError::TypeTooLong { len, max } => {
                write!(f, "service type of {len} bytes exceeds the limit of {max}")
            }
            OpError::IdTooLong { len, max } => {
                write!(f, "service id of {len} bytes exceeds the limit of {max}")
            }
            OpError::DataTooLong { len, max } => {
                write!(f, "metadata of {len} bytes exceeds the limit of {max}")
            }
            OpError::AlreadyExists => {
                f.write_str("an entry with this type and id already exists here; use update")
            }
            OpError::NotFound => f.write_str("no entry with this type and id on this replica"),
            OpError::TooManyEntries { max } => {
                write!(f, "this replica already holds its limit of {max} entries")
            }
            OpError::SetFull { max } => write!(
                f,
                "the set already holds its limit of {max} entries over all replicas"
            ),
            OpError::ClockExhausted { max } => write!(
                f,
                "this replica's clock has reached its limit of {max}; restart with a new incarnation"
            ),
        }
    }
}

impl core::error::Error for OpError {}

/// Why a delta or an extract was refused. The set is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MergeError {
    /// The data names our own replica: only we write our entries.
    OwnReplica,
    /// The data comes from an older incarnation than the one we know.
    StaleIncarnation {
        /// The incarnation we know.
        have: u64,
        /// The incarnation of the data.
        got: u64,
    },
    /// The delta starts after the clock we have for its replica: ask for a
    /// catch-up from `have`.
    Gap {
        /// Our clock for the replica.
        have: u64,
        /// The clock the delta starts from.
        need: u64,
    },
    /// A range whose start is after its end.
    BadRange {
        /// The start.
        start: u64,
        /// The end.
        end: u64,
    },
    /// A clock lies outside the range the data declares.
    ClockOutOfRange {
        /// The clock.
        clock: u64,
    },
    /// Data claims a clock past [`MAX_CLOCK`](super::MAX_CLOCK), which no
    /// replica reaches.
    ClockTooLarge {
        /// The clock.
        clock: u64,
        /// The limit.
        max: u64,
    },
    /// A list of clocks is not strictly increasing.
    ClocksNotIncreasing {
        /// The first clock out of order.
        clock: u64,
    },
    /// An entry's previous ref is not older than the entry.
    BadPrev {
        /// The clock of the entry.
        clock: u64,
    },
    /// A replica name is longer than `Config::max_name_len`.
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// A service type is longer than `Config::max_type_len`.
    TypeTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// A service id is longer than `Config::max_id_len`.
    IdTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// Metadata bytes are longer than `Config::max_data_len`.
    DataTooLong {
        /// Their length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// Two live entries of one replica would share a (type, id).
    DuplicateKey {
        /// The clock of the entry that collides.
        clock: u64,
    },
    /// A replica would hold more than `Config::max_entries_per_replica` entries,
    /// or a list is longer than that limit.
    TooManyEntries {
        /// The limit.
        max: u32,
    },
    /// The whole set would hold more than `Config::max_entries` entries,
    /// over all replicas, whatever the per-replica limit.
    SetFull {
        /// The limit.
        max: usize,
    },
    /// We would know more than `Config::max_replicas` replicas.
    TooManyReplicas {
        /// The limit.
        max: u32,
    },
    /// An extract names the same replica twice.
    DuplicateReplica,
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MergeError::OwnReplica => {
                f.write_str("data names our own replica; only we write its entries")
            }
            MergeError::StaleIncarnation { have, got } => {
                write!(
                    f,
                    "data from incarnation {got}, older than the known incarnation {have}"
                )
            }
            MergeError::Gap { have, need } => {
                write!(
                    f,
                    "delta starts at clock {need} but we have only {have}; ask for a catch-up"
                )
            }
            MergeError::BadRange { start, end } => {
                write!(f, "range starts at {start} after its end {end}")
            }
            MergeError::ClockOutOfRange { clock } => {
                write!(f, "clock {clock} lies outside the declared range")
            }
            MergeError::ClockTooLarge { clock, max } => {
                write!(
                    f,
                    "clock {clock} exceeds the limit of {max} for any replica"
                )
            }
            MergeError::ClocksNotIncreasing { clock } => write!(f, "clock {clock} is out of order"),
            MergeError::BadPrev { clock } => write!(
                f,
                "entry at clock {clock} has a previous ref not older than it"
            ),
            MergeError::NameTooLong { len, max } => {
                write!(f, "replica name of {len} bytes exceeds the limit of {max}")
            }
            MergeError::TypeTooLong { len, max } => {
                write!(f, "service type of {len} bytes exceeds the limit of {max}")
            }
            MergeError::IdTooLong { len, max } => {
                write!(f, "service id of {len} bytes exceeds the limit of {max}")
            }
            MergeError::DataTooLong { len, max } => {
                write!(f, "metadata of {len} bytes exceeds the limit of {max}")
            }
            MergeError::DuplicateKey { clock } => {
                write!(
                    f,
                    "entry at clock {clock} repeats the type and id of another live entry"
                )
            }
            MergeError::TooManyEntries { max } => {
                write!(f, "a replica would exceed its limit of {max} entries")
            }
            MergeError::SetFull { max } => write!(
                f,
                "the set would exceed its limit of {max} entries over all replicas"
            ),
            MergeError::TooManyReplicas { max } => {
                write!(f, "we would know more than {max} replicas")
            }
            MergeError::DuplicateReplica => f.write_str("the extract names a replica twice"),
        }
    }
}

impl core::error::Error for MergeError {}

/// Why a replica lifecycle call was refused. The set is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaError {
    /// No replica with this name and incarnation is known.
    Unknown,
    /// The call names our own replica, which is always up.
    OwnReplica,
    /// `remove_down_replica` was called on a replica that is up; mark it down first.
    NotDown,
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaError::Unknown => {
                f.write_str("no replica with this name and incarnation is known")
            }
            ReplicaError::OwnReplica => f.write_str("our own replica is always up"),
            ReplicaError::NotDown => {
                f.write_str("the replica is up; mark it down before removing it")
            }
        }
    }
}

impl core::error::Error for ReplicaError {}
