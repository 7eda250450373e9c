//! Dispatch over libp2p beside Dispatch over UDP, measured in the same run
//! on loopback, in one process, for 3 and 16 nodes:
//! - the time for a new service to be visible on every node (p50 / p99),
//!   on a fresh cluster (measured at once after it formed, before
//!   gossipsub's mesh settles) and again once settled;
//! - sequential calls of a small request from one node to an instance on
//!   another: calls per second, and p50 / p99 round trips;
//! - idle bytes per second per node: what the nodes write when nothing
//!   changes. For UDP that is the datagrams' bytes; for libp2p, the bytes
//!   written on the TCP connections under noise and yamux (gossipsub's
//!   envelopes and control messages, request-response streams,
//!   encryption and framing). Neither counts IP or TCP/UDP headers.
//!
//! ```text
//! cargo run --release -p dispatch-libp2p --example libp2p_report [-- --json] [-- --quick]
//! ```
//!
//! With `--json` it prints one object per line: `{"nodes": N, "transport":
//! "libp2p"|"udp", "metric": NAME, "value": V}` with `visibility_p50_ms`,
//! `visibility_p99_ms`, `settled_visibility_p50_ms`,
//! `settled_visibility_p99_ms`, `calls_per_sec`, `call_p50_us`,
//! `call_p99_us` and `idle_bytes_per_sec_per_node`. `--quick` takes fewer
//! samples (for CI). Goals: visibility p99 under 50 ms at 16 nodes; libp2p
//! calls per second at least half of UDP's; libp2p idle traffic at most
//! twice UDP's.

#[path = "../../dispatch-std/examples/measure/mod.rs"]
mod measure;

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dispatch_libp2p::{Behaviour, Config, Libp2p};
use dispatch_std::{Builder, Registry, Transport};
use futures::{AsyncRead, AsyncWrite, StreamExt};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Transport as _;
use libp2p::core::upgrade;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, SwarmBuilder};
use measure::{percentiles, visibility, wait};

struct Plan {
    visibility_samples: usize,
    call_time: Duration,
    idle_time: Duration,
    settle: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    Udp,
    Libp2p,
}

impl Over {
    fn name(self) -> &'static str {
        match self {
            Over::Udp => "udp",
            Over::Libp2p => "libp2p",
        }
    }
}

struct Results {
    fresh: (f64, f64),
    settled: (f64, f64),
    calls_per_sec: f64,
    call_us: (f64, f64),
    idle_bytes: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            visibility_samples: 10,
            call_time: Duration::from_millis(300),
            idle_time: Duration::from_secs(2),
            settle: Duration::from_secs(2),
        }
    } else {
        Plan {
            visibility_samples: 100,
            call_time: Duration::from_secs(3),
            idle_time: Duration::from_secs(10),
            settle: Duration::from_secs(3),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        if !json {
            println!("Dispatch over libp2p (TCP + noise + yamux) and over UDP, loopback, one process");
            println!(
                "{:>5}  {:>6}  {:>18}  {:>18}  {:>9}  {:>16}  {:>12}",
                "nodes", "over", "fresh vis p50/p99", "settled p50/p99", "calls/s", "call p50/p99 us", "idle B/s/node"
            );
        }
        for nodes in [3, 16] {
            let mut by = HashMap::new();
            // UDP first, then libp2p, then UDP again: UDP's figures are the
            // mean of the two, so drift on the host falls on both alike.
            let udp1 = measure_udp(nodes, &plan).await;
            let p2p = measure_libp2p(nodes, &plan).await;
            let udp2 = measure_udp(nodes, &plan).await;
            by.insert("udp", mean(udp1, udp2));
            by.insert("libp2p", p2p);
            for over in [Over::Udp, Over::Libp2p] {
                let r = &by[over.name()];
                if json {
                    for (metric, value) in [
                        ("visibility_p50_ms", r.fresh.0),
                        ("visibility_p99_ms", r.fresh.1),
                        ("settled_visibility_p50_ms", r.settled.0),
                        ("settled_visibility_p99_ms", r.settled.1),
                        ("calls_per_sec", r.calls_per_sec),
                        ("call_p50_us", r.call_us.0),
                        ("call_p99_us", r.call_us.1),
                        ("idle_bytes_per_sec_per_node", r.idle_bytes),
                    ] {
                        println!(
                            "{{\"nodes\": {nodes}, \"transport\": \"{}\", \"metric\": \"{metric}\", \"value\": {value:.3}}}",
                            over.name()
                        );
                    }
                } else {
                    println!(
                        "{nodes:>5}  {:>6}  {:>8.2} / {:>7.2}  {:>8.2} / {:>7.2}  {:>9.0}  {:>7.0} / {:>6.0}  {:>12.0}",
                        over.name(),
                        r.fresh.0,
                        r.fresh.1,
                        r.settled.0,
                        r.settled.1,
                        r.calls_per_sec,
                        r.call_us.0,
                        r.call_us.1,
                        r.idle_bytes
                    );
                }
            }
            if !json {
                let (u, l) = (&by["udp"], &by["libp2p"]);
                println!(
                    "       libp2p over udp: calls {:.2} (goal >= 0.5), idle bytes {:.2} (goal <= 2); visibility p99 {:.2} ms (goal < 50 at 16 nodes)",
                    l.calls_per_sec / u.calls_per_sec,
                    l.idle_bytes / u.idle_bytes,
                    l.fresh.1.max(l.settled.1)
                );
            }
        }
    });
}

fn mean(a: Results, b: Results) -> Results {
    let m = |x: f64, y: f64| (x + y) / 2.0;
    Results {
        fresh: (m(a.fresh.0, b.fresh.0), m(a.fresh.1, b.fresh.1)),
        settled: (m(a.settled.0, b.settled.0), m(a.settled.1, b.settled.1)),
        calls_per_sec: m(a.calls_per_sec, b.calls_per_sec),
        call_us: (m(a.call_us.0, b.call_us.0), m(a.call_us.1, b.call_us.1)),
        idle_bytes: m(a.idle_bytes, b.idle_bytes),
    }
}

async fn measure_udp(n: usize, plan: &Plan) -> Results {
    let mut nodes: Vec<Registry> = Vec::new();
    for i in 0..n {
        let mut b = Builder::new().name(format!("n{i}")).bind("127.0.0.1:0");
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr().to_string());
        }
        nodes.push(b.start().await.expect("a UDP node starts"));
    }
    let sent = || nodes.iter().map(|x| x.stats().node.bytes_out).sum::<u64>();
    measure(&nodes, plan, sent).await
}

async fn measure_libp2p(n: usize, plan: &Plan) -> Results {
    let written = Arc::new(AtomicU64::new(0));
    let mut nodes: Vec<Registry<Libp2p>> = Vec::new();
    let mut seed: Option<Multiaddr> = None;
    for i in 0..n {
        let (registry, addr) = libp2p_node(&format!("n{i}"), seed.as_ref(), &written).await;
        seed.get_or_insert(addr);
        nodes.push(registry);
    }
    let sent = || written.load(Ordering::Relaxed);
    measure(&nodes, plan, sent).await
}

async fn measure<T: Transport>(
    nodes: &[Registry<T>],
    plan: &Plan,
    sent: impl Fn() -> u64,
) -> Results {
    let n = nodes.len();
    wait("the cluster to form", || {
        nodes.iter().all(|x| x.peers().len() == n - 1)
    })
    .await;
    let mut fresh = visibility(nodes, plan.visibility_samples, "visibility-fresh").await;
    tokio::time::sleep(plan.settle).await;
    let mut settled = visibility(nodes, plan.visibility_samples, "visibility-settled").await;
    let (mut call_us, secs, _) = measure::calls(nodes, plan.call_time, || (0, 0)).await;
    let calls_per_sec = call_us.len() as f64 / secs;
    // Idle: nothing changes; only heartbeats (and libp2p's own upkeep).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sent();
    let started = Instant::now();
    tokio::time::sleep(plan.idle_time).await;
    let idle_bytes = (sent() - before) as f64 / started.elapsed().as_secs_f64() / n as f64;
    for node in nodes {
        node.shutdown().await;
    }
    Results {
        fresh: percentiles(&mut fresh),
        settled: percentiles(&mut settled),
        calls_per_sec,
        call_us: percentiles(&mut call_us),
        idle_bytes,
    }
}

/// A node on its own Swarm over loopback TCP (noise, yamux, no Nagle),
/// whose connections count the bytes they write into `written`.
async fn libp2p_node(
    name: &str,
    seed: Option<&Multiaddr>,
    written: &Arc<AtomicU64>,
) -> (Registry<Libp2p>, Multiaddr) {
    let mut transport = None;
    let counter = Arc::clone(written);
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key).expect("an Ed25519 key for noise");
            let counted = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)).map(
                move |stream, _| Counted {
                    inner: stream,
                    written: counter,
                },
            );
            counted
                .upgrade(upgrade::Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        })
        .expect("the TCP transport builds")
        .with_behaviour(|key| {
            let (behaviour, t) = Behaviour::new(key, Config::default()).expect("default settings");
            transport = Some(t);
            behaviour
        })
        .expect("the behaviour builds")
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("a valid address"))
        .expect("listen on loopback");
    let peer = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with_p2p(peer).expect("no peer id yet");
        }
    };
    let transport = transport.expect("with_behaviour ran");
    let seeds = transport.seeds(seed).expect("the seed names its peer");
    let registry = Builder::new()
        .name(name)
        .start_with(transport, seeds)
        .expect("a libp2p node starts");
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(dispatch_libp2p::Event::Closed) =
                swarm.select_next_some().await
            {
                return;
            }
        }
    });
    (registry, addr)
}

/// A TCP stream that counts the bytes written on it.
struct Counted<S> {
    inner: S,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
