//! What the loopback and libp2p reports measure alike, over any transport:
//! visibility of a new service on every node, sequential calls, and their
//! percentiles. Included by each report with `#[path]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_std::{Registry, Request, Routing, ServiceEvent, Transport};
use tokio::sync::Notify;

/// The small request of the call measurements.
pub(crate) const PAYLOAD: [u8; 32] = [7; 32];

/// Milliseconds from `add_service` on one node until every node's
/// subscription has heard the join, over `samples` instances added on the
/// nodes in turn.
pub(crate) async fn visibility<T: Transport>(
    nodes: &[Registry<T>],
    samples: usize,
    ty: &str,
) -> Vec<f64> {
    // When each node heard each instance join, and a wake-up per join.
    let heard: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let joined = Arc::new(Notify::new());
    let mut readers = Vec::new();
    for node in nodes {
        let mut events = node.subscribe(ty);
        let (heard, joined) = (Arc::clone(&heard), Arc::clone(&joined));
        readers.push(tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let ServiceEvent::Joined(s) = event {
                    let at = Instant::now();
                    heard
                        .lock()
                        .unwrap()
                        .entry(s.id.to_string())
                        .or_default()
                        .push(at);
                    joined.notify_one();
                }
            }
        }));
    }
    let mut times = Vec::with_capacity(samples);
    for k in 0..samples {
        let node = &nodes[k % nodes.len()];
        let id = format!("i{k}");
        let t0 = Instant::now();
        node.add_service(ty, &id, |_: Request| std::future::ready(Vec::new()))
            .await
            .expect("add");
        let deadline = t0 + Duration::from_secs(10);
        loop {
            let last = {
                let heard = heard.lock().unwrap();
                heard
                    .get(&id)
                    .filter(|v| v.len() == nodes.len())
                    .and_then(|v| v.iter().max().copied())
            };
            if let Some(last) = last {
                times.push(last.duration_since(t0).as_secs_f64() * 1e3);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "instance {id} never reached every node"
            );
            let _ = tokio::time::timeout(Duration::from_millis(5), joined.notified()).await;
        }
        node.remove_service(ty, &id).await.expect("remove");
        wait("the instance to leave everywhere", || {
            nodes.iter().all(|x| x.get_services(ty).is_empty())
        })
        .await;
    }
    for r in readers {
        r.abort();
    }
    times
}

/// Sequential calls of a small request from one node to an instance on
/// another for `time`: their round trips in microseconds, the seconds they
/// took, and how much `sent` grew meanwhile (what the cluster wrote).
pub(crate) async fn calls<T: Transport>(
    nodes: &[Registry<T>],
    time: Duration,
    sent: impl Fn() -> (u64, u64),
) -> (Vec<f64>, f64, (u64, u64)) {
    let echo = |r: Request| std::future::ready(r.payload);
    nodes[1].add_service("echo", "e1", echo).await.expect("add");
    let caller = &nodes[0];
    wait("the echo instance to be routable", || {
        caller
            .find_service("echo", "k", Routing::OnlineOnly)
            .is_ok()
    })
    .await;
    let client = caller.client().timeout(Duration::from_secs(2));
    for _ in 0..100 {
        client
            .call_raw("echo", "k", &PAYLOAD)
            .await
            .expect("warm-up call");
    }
    let before = sent();
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < time {
        let t = Instant::now();
        let reply = client.call_raw("echo", "k", &PAYLOAD).await.expect("call");
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(reply.len(), PAYLOAD.len());
    }
    let secs = started.elapsed().as_secs_f64();
    let after = sent();
    nodes[1].remove_service("echo", "e1").await.expect("remove");
    (latencies, secs, (after.0 - before.0, after.1 - before.1))
}

pub(crate) fn percentiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

pub(crate) async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
