//! Helpers shared by the socket tests: small clusters on loopback with short
//! periods, and waiting on conditions with deadlines (never fixed sleeps).

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use dispatch_std::{Builder, Registry, ServiceEvent, Subscription, Transport};

/// How long any condition may take before a test fails. Generous: the
/// machines are noisy and builds run beside the tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Short periods, so that joins and failures show within a test.
pub fn quick(name: &str) -> Builder {
    Builder::new()
        .name(name)
        .bind("127.0.0.1:0")
        .heartbeat_period(Duration::from_millis(100))
        .down_after(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
}

/// `n` nodes named `n1`.. on loopback, all seeded with the first, each
/// knowing every other.
pub async fn cluster(n: usize) -> Vec<Registry> {
    let mut nodes: Vec<Registry> = Vec::new();
    for i in 1..=n {
        let mut b = quick(&format!("n{i}"));
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr().to_string());
        }
        nodes.push(b.start().await.expect("a node starts on loopback"));
    }
    until("every node to know every other", || {
        nodes.iter().all(|node| node.peers().len() == n - 1)
    })
    .await;
    nodes
}

/// Waits until `done` holds; fails the test after [`PATIENCE`].
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The next event of `events`; fails the test after [`PATIENCE`].
pub async fn next_event(events: &mut Subscription) -> ServiceEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event within the deadline")
        .expect("the subscription is open")
}

/// Shuts every node down.
pub async fn stop<T: Transport>(nodes: &[Registry<T>]) {
    for node in nodes {
        node.shutdown().await;
    }
}
