//! How fast Dispatch is on loopback, in one process: for 3 and 16 nodes,
//! the time for a new service to be visible on every node, and call round
//! trips for a small request beside a plain tokio UDP echo between two
//! sockets measured in the same run (their ratio is what Dispatch adds to
//! the network).
//!
//! ```text
//! cargo run --release -p dispatch-std --example loopback_report [-- --json] [-- --quick]
//! ```
//!
//! With `--json` it prints one object per line:
//! `{"nodes": N, "metric": NAME, "value": V}`, with the metrics
//! `visibility_p50_ms`, `visibility_p99_ms`, `calls_per_sec`, `call_p50_us`,
//! `call_p99_us` and `echo_per_sec`. `--quick` takes fewer samples (for CI).
//! Goals: visibility p99 under 20 ms at 16 nodes; calls at least half the
//! echo's rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_std::{Builder, Registry, Request, Routing, ServiceEvent};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

/// The small request of the call and echo measurements.
const PAYLOAD: [u8; 32] = [7; 32];

struct Plan {
    visibility_samples: usize,
    round_trip_time: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            visibility_samples: 20,
            round_trip_time: Duration::from_millis(300),
        }
    } else {
        Plan {
            visibility_samples: 300,
            round_trip_time: Duration::from_secs(3),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if !json {
            println!("Dispatch on loopback, one process, {} tokio workers", worker_count());
            println!(
                "{:>5}  {:>22}  {:>12}  {:>20}  {:>12}  {:>6}",
                "nodes", "visibility p50/p99 ms", "calls/s", "call p50/p99 us", "echo/s", "ratio"
            );
        }
        for nodes in [3, 16] {
            let r = measure(nodes, &plan).await;
            if json {
                for (metric, value) in [
                    ("visibility_p50_ms", r.visibility.0),
                    ("visibility_p99_ms", r.visibility.1),
                    ("calls_per_sec", r.calls_per_sec),
                    ("call_p50_us", r.call_us.0),
                    ("call_p99_us", r.call_us.1),
                    ("echo_per_sec", r.echo_per_sec),
                ] {
                    println!("{{\"nodes\": {nodes}, \"metric\": \"{metric}\", \"value\": {value:.3}}}");
                }
            } else {
                println!(
                    "{:>5}  {:>10.2} / {:>9.2}  {:>12.0}  {:>9.0} / {:>8.0}  {:>12.0}  {:>6.2}",
                    nodes,
                    r.visibility.0,
                    r.visibility.1,
                    r.calls_per_sec,
                    r.call_us.0,
                    r.call_us.1,
                    r.echo_per_sec,
                    r.calls_per_sec / r.echo_per_sec,
                );
            }
        }
        if !json {
            println!("ratio = calls/s over echo/s (goal: at least 0.5); visibility goal: p99 under 20 ms at 16 nodes");
        }
    });
}

fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct Results {
    visibility: (f64, f64),
    calls_per_sec: f64,
    call_us: (f64, f64),
    echo_per_sec: f64,
}

async fn measure(n: usize, plan: &Plan) -> Results {
    let nodes = start_cluster(n).await;
    let visibility = visibility(&nodes, plan.visibility_samples).await;
    let (calls_per_sec, call_us) = calls(&nodes, plan.round_trip_time).await;
    let echo_per_sec = echo(plan.round_trip_time).await;
    for node in &nodes {
        node.shutdown().await;
    }
    Results {
        visibility,
        calls_per_sec,
        call_us,
        echo_per_sec,
    }
}

async fn start_cluster(n: usize) -> Vec<Registry> {
    let mut nodes: Vec<Registry> = Vec::new();
    for i in 0..n {
        let mut b = Builder::new().name(format!("n{i}")).bind("127.0.0.1:0");
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr().to_string());
        }
        nodes.push(b.start().await.expect("a node starts"));
    }
    wait("the cluster to form", || {
        nodes.iter().all(|x| x.peers().len() == n - 1)
    })
    .await;
    nodes
}

/// Milliseconds from `add_service` on one node until every node's
/// subscription has heard the join, over `samples` instances added on the
/// nodes in turn: (p50, p99).
async fn visibility(nodes: &[Registry], samples: usize) -> (f64, f64) {
    // When each node heard each instance join, and a wake-up per join.
    let heard: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let joined = Arc::new(Notify::new());
    let mut readers = Vec::new();
    for node in nodes {
        let mut events = node.subscribe("visibility");
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
        node.add_service("visibility", &id, |_: Request| {
            std::future::ready(Vec::new())
        })
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
        node.remove_service("visibility", &id)
            .await
            .expect("remove");
        wait("the instance to leave everywhere", || {
            nodes
                .iter()
                .all(|x| x.get_services("visibility").is_empty())
        })
        .await;
    }
    for r in readers {
        r.abort();
    }
    percentiles(&mut times)
}

/// Sequential calls of a small request from one node to an instance on
/// another for `time`: (calls per second, (p50, p99) microseconds).
async fn calls(nodes: &[Registry], time: Duration) -> (f64, (f64, f64)) {
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
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < time {
        let t = Instant::now();
        let reply = client.call_raw("echo", "k", &PAYLOAD).await.expect("call");
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(reply.len(), PAYLOAD.len());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    nodes[1].remove_service("echo", "e1").await.expect("remove");
    (rate, percentiles(&mut latencies))
}

/// Round trips per second of the same payload between two plain tokio UDP
/// sockets, one answering the other, for `time`.
async fn echo(time: Duration) -> f64 {
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    client
        .connect(server.local_addr().expect("addr"))
        .await
        .expect("connect");
    let answering = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = server.recv_from(&mut buf).await else {
                return;
            };
            if server.send_to(&buf[..n], from).await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 2048];
    let mut count = 0u64;
    let started = Instant::now();
    while started.elapsed() < time {
        client.send(&PAYLOAD).await.expect("send");
        client.recv(&mut buf).await.expect("recv");
        count += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    answering.abort();
    rate
}

fn percentiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
