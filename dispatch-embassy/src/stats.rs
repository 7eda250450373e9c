//! Counters of a device's node: the core's, and the driver's own.

/// What the runner and the handles could not deliver, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams the socket refused to send (no route, too large, address
    /// family not built in).
    pub send_errors: u64,
    /// Datagrams longer than the receive buffer, dropped unread.
    pub truncated: u64,
    /// Join and leave events dropped because the event queue was full
    /// (the application then reads [`ServiceEvent::Lagged`](crate::ServiceEvent::Lagged)).
    pub events_dropped: u64,
    /// Requests for this device's instances dropped because the request
    /// queue was full; their callers time out.
    pub requests_dropped: u64,
    /// Datagrams the core dropped (malformed, foreign, forged, replayed,
    /// stale, ...); [`Stats::node`] says why.
    pub datagrams_dropped: u64,
}

/// Counters of a device's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The core node's counters, including dropped datagrams by reason.
    pub node: dispatch_core::node::Stats,
    /// The driver's.
    pub driver: DriverStats,
}
