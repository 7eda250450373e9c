//! How fast Dispatch is on loopback, in one process: for 3 and 16 nodes,
//! the time for a new service to be visible on every node, and call round
//! trips for a small request beside a plain tokio UDP echo between two
//! sockets measured in the same run (their ratio is what Dispatch adds to
//! the network). Each size is measured in the clear and with every datagram
//! sealed with a cluster key, on the same cluster in alternating rounds
//! (the nodes switch keyrings between rounds, as in a rotation), so that
//! the host's drift falls on both alike; the report gives sealed over clear
//! calls per second and the bytes sealing adds per datagram.
//!
//! ```text
//! cargo run --release -p dispatch-std --example loopback_report [-- --json] [-- --quick]
//! ```
//!
//! With `--json` it prints one object per line:
//! `{"nodes": N, "metric": NAME, "value": V}`, with the metrics
//! `visibility_p50_ms`, `visibility_p99_ms`, `calls_per_sec`, `call_p50_us`,
//! `call_p99_us`, `echo_per_sec` and `bytes_per_datagram`, the same with a
//! `keyed_` prefix for the sealed run, and `keyed_over_clear_calls` and
//! `keyed_bytes_added_per_datagram`. `--quick` takes fewer samples (for CI).
//! Goals: visibility p99 under 20 ms at 16 nodes; calls at least half the
//! echo's rate; sealed calls at least 0.8 of the clear ones.

#[path = "measure/mod.rs"]
mod measure;

use std::time::{Duration, Instant};

use dispatch_std::dispatch_core::keyring::{Key, Keyring};
use dispatch_std::{Builder, Registry};
use measure::{percentiles, visibility, wait, PAYLOAD};
use tokio::net::UdpSocket;

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
                "{:>5}  {:>6}  {:>22}  {:>12}  {:>20}  {:>12}  {:>6}  {:>7}",
                "nodes",
                "key",
                "visibility p50/p99 ms",
                "calls/s",
                "call p50/p99 us",
                "echo/s",
                "ratio",
                "B/dgram"
            );
        }
        let mut sealed_ratios = Vec::new();
        for nodes in [3, 16] {
            let [clear, sealed] = measure(nodes, &plan).await;
            for (prefix, r) in [("", &clear), ("keyed_", &sealed)] {
                if json {
                    for (metric, value) in [
                        ("visibility_p50_ms", r.visibility.0),
                        ("visibility_p99_ms", r.visibility.1),
                        ("calls_per_sec", r.calls_per_sec),
                        ("call_p50_us", r.call_us.0),
                        ("call_p99_us", r.call_us.1),
                        ("echo_per_sec", r.echo_per_sec),
                        ("bytes_per_datagram", r.bytes_per_datagram),
                    ] {
                        println!("{{\"nodes\": {nodes}, \"metric\": \"{prefix}{metric}\", \"value\": {value:.3}}}");
                    }
                } else {
                    println!(
                        "{:>5}  {:>6}  {:>10.2} / {:>9.2}  {:>12.0}  {:>9.0} / {:>8.0}  {:>12.0}  {:>6.2}  {:>7.1}",
                        nodes,
                        if prefix.is_empty() { "none" } else { "sealed" },
                        r.visibility.0,
                        r.visibility.1,
                        r.calls_per_sec,
                        r.call_us.0,
                        r.call_us.1,
                        r.echo_per_sec,
                        r.calls_per_sec / r.echo_per_sec,
                        r.bytes_per_datagram,
                    );
                }
            }
            let ratio = sealed.calls_per_sec / clear.calls_per_sec;
            let added = sealed.bytes_per_datagram - clear.bytes_per_datagram;
            sealed_ratios.push((nodes, ratio, added));
            if json {
                println!("{{\"nodes\": {nodes}, \"metric\": \"keyed_over_clear_calls\", \"value\": {ratio:.3}}}");
                println!("{{\"nodes\": {nodes}, \"metric\": \"keyed_bytes_added_per_datagram\", \"value\": {added:.3}}}");
            }
        }
        if !json {
            println!("ratio = calls/s over echo/s (goal: at least 0.5); visibility goal: p99 under 20 ms at 16 nodes");
            for (nodes, ratio, added) in sealed_ratios {
                println!(
                    "{nodes} nodes: sealed calls/s over clear {ratio:.2} (goal: at least 0.8); sealing adds {added:.1} B per datagram"
                );
            }
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
    bytes_per_datagram: f64,
}

/// Rounds per mode: clear and sealed alternate, the first of each pair
/// swapping every round.
const ROUNDS: usize = 4;

/// What one mode gathered over its rounds.
#[derive(Default)]
struct Gathered {
    visibility_ms: Vec<f64>,
    call_us: Vec<f64>,
    call_secs: f64,
    echoes: u64,
    echo_secs: f64,
    bytes: u64,
    datagrams: u64,
}

/// Results in the clear and sealed, measured on one cluster of `n` nodes.
async fn measure(n: usize, plan: &Plan) -> [Results; 2] {
    let nodes = start_cluster(n).await;
    let keyring = Keyring::new(Key::new(1, [0x5A; 32]).expect("a valid key id"));
    let mut gathered = [Gathered::default(), Gathered::default()];
    let per_round = plan.round_trip_time / ROUNDS as u32;
    for round in 0..ROUNDS {
        for keyed in [round % 2 == 1, round % 2 == 0] {
            for node in &nodes {
                node.set_keyring(keyed.then(|| keyring.clone()));
            }
            let g = &mut gathered[usize::from(keyed)];
            g.visibility_ms.extend(
                visibility(
                    &nodes,
                    plan.visibility_samples.div_ceil(ROUNDS),
                    "visibility",
                )
                .await,
            );
            let sent = || {
                nodes.iter().fold((0, 0), |(b, d), x| {
                    let s = x.stats().node;
                    (b + s.bytes_out, d + s.datagrams_out)
                })
            };
            let (latencies, secs, (bytes, datagrams)) =
                measure::calls(&nodes, per_round, sent).await;
            g.call_us.extend(latencies);
            g.call_secs += secs;
            g.bytes += bytes;
            g.datagrams += datagrams;
            let started = Instant::now();
            g.echoes += echo(per_round).await;
            g.echo_secs += started.elapsed().as_secs_f64();
        }
    }
    for node in &nodes {
        node.shutdown().await;
    }
    gathered.map(|mut g| Results {
        visibility: percentiles(&mut g.visibility_ms),
        calls_per_sec: g.call_us.len() as f64 / g.call_secs,
        call_us: percentiles(&mut g.call_us),
        echo_per_sec: g.echoes as f64 / g.echo_secs,
        bytes_per_datagram: g.bytes as f64 / g.datagrams.max(1) as f64,
    })
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

/// Round trips of the same payload between two plain tokio UDP sockets,
/// one answering the other, for `time`.
async fn echo(time: Duration) -> u64 {
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
    answering.abort();
    count
}
