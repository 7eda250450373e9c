//! Simulates clusters of real nodes and prints how fast and how cheaply they
//! agree.
//!
//! `cargo run --release -p dispatch-core --example cluster_report [-- --json] [--quick]`
//!
//! For 16 and 100 nodes, one-way latency 1 ms +/- 0.5 ms, virtual time:
//! time for one new service to be visible on every node (p50 / p99 over
//! 1000 trials) with no loss and with 20% loss; time from a crash to its
//! services leaving everywhere; bytes per second per node when idle and
//! under 10 changes per second; time to converge after healing a partition
//! that split 10,000 entries; and live peers wrongly marked down.
//!
//! For a pair of nodes: calls completed per CPU second (both nodes and the
//! simulator on one thread, 256 calls in flight, 32-byte requests and
//! replies), and the bytes on the wire per call beyond those payloads.
//!
//! In the same run, with every datagram sealed with a cluster key: the
//! calls per CPU second and their ratio to the clear ones (goal: at least
//! 0.8), the bytes sealing adds per datagram, and visibility and false
//! downs at 16 nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use dispatch_core::keyring::{Key, Keyring};
use dispatch_core::node::{Config, Event, Node};
use dispatch_core::presence::ReplicaId;
use dispatch_core::sim::{LinkConfig, Sim, SimAddr, SimConfig};
use dispatch_core::time::Instant;

type Cluster = Sim<Node<SimAddr>>;

struct Report {
    json: bool,
}

impl Report {
    fn line(&self, nodes: usize, loss: f64, metric: &str, value: f64, unit: &str) {
        if self.json {
            println!(
                r#"{{"nodes": {nodes}, "loss": {loss}, "metric": "{metric}", "value": {value:.3}}}"#
            );
        } else {
            println!(
                "  {nodes:>3} nodes  loss {:>3.0}%  {metric:<30} {value:>12.3} {unit}",
                loss * 100.0
            );
        }
    }
}

/// Whether the clusters built next hold a keyring (every datagram sealed).
static KEYED: AtomicBool = AtomicBool::new(false);

fn node_config() -> Config {
    let mut c = Config::default();
    c.presence.max_entries_per_replica = 20_000;
    if KEYED.load(Ordering::Relaxed) {
        let key = Key::new(1, [0x5A; 32]).expect("a valid key id");
        c.keyring = Some(Keyring::new(key));
    }
    c
}

fn cluster(n: usize, seed: u64, loss: f64) -> Cluster {
    let mut cfg = SimConfig::new(n, seed);
    cfg.link = LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        loss_ppm: (loss * 1e6) as u32,
        duplicate_ppm: 0,
    };
    let mut sim = Sim::new(cfg, move |i, restarts, now| {
        let mut config = node_config();
        config.seed = seed ^ (i as u64) << 20;
        let id = ReplicaId::new(&format!("n{i}"), u64::from(restarts) + 1);
        let mut node = Node::new(id, config, now).expect("valid configuration");
        node.join(now, &[SimAddr(if i == 0 { 1 } else { 0 })]);
        node
    });
    // Let membership settle: everyone has heard from everyone.
    let settle = Instant::ZERO + Duration::from_secs(20);
    sim.run_until_condition(
        |s| (0..n).all(|i| s.node(i).unwrap().peers().count() == n - 1),
        settle,
    )
    .expect("simulation runs");
    sim.run_for(Duration::from_secs(2))
        .expect("simulation runs");
    for i in 0..n {
        sim.take_events(i);
    }
    sim
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Adds `trials` services, one every 20 ms on rotating nodes, and measures
/// for each the time until every other node has reported its join.
fn visibility(n: usize, loss: f64, trials: usize, seed: u64) -> (Vec<f64>, u64) {
    let mut sim = cluster(n, seed, loss);
    let mut started: BTreeMap<String, Instant> = BTreeMap::new();
    for k in 0..trials {
        let id = format!("v{k}");
        let at = sim
            .with_node(k % n, |node, now| {
                node.add_service(now, "visible", &id, b"").expect("add");
                now
            })
            .expect("node is up");
        started.insert(id, at);
        sim.run_for(Duration::from_millis(20)).expect("runs");
    }
    sim.run_for(Duration::from_secs(10)).expect("runs");
    // Per instance: the nodes that reported it, and the latest of their
    // first reports (a later leave and join, for a slot move, is not news).
    let mut last_seen: BTreeMap<String, (BTreeSet<usize>, Instant)> = BTreeMap::new();
    let mut false_downs = 0;
    for i in 0..n {
        for e in sim.take_events(i) {
            match e.event {
                Event::ServiceJoined(s) if &*s.ty == "visible" => {
                    let seen = last_seen
                        .entry(s.id.to_string())
                        .or_insert((BTreeSet::new(), Instant::ZERO));
                    if seen.0.insert(i) {
                        seen.1 = seen.1.max(e.at);
                    }
                }
                Event::PeerDown(_) => false_downs += 1,
                _ => {}
            }
        }
    }
    let mut times: Vec<f64> = started
        .iter()
        .map(|(id, t0)| match last_seen.get(id) {
            Some((nodes, t)) if nodes.len() >= n => {
                t.saturating_duration_since(*t0).as_secs_f64() * 1e3
            }
            _ => f64::INFINITY,
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times, false_downs)
}

/// Crashes a node holding a service and measures until every other node
/// has reported it gone.
fn crash_to_leave(n: usize, seed: u64) -> f64 {
    let mut sim = cluster(n, seed, 0.0);
    let victim = n - 1;
    sim.with_node(victim, |node, now| {
        node.add_service(now, "crash", "c", b"").expect("add")
    })
    .expect("up");
    sim.run_for(Duration::from_millis(100)).expect("runs");
    for i in 0..n {
        sim.take_events(i);
    }
    let t0 = sim.now();
    sim.crash(victim);
    sim.run_for(Duration::from_secs(30)).expect("runs");
    let mut worst = Duration::ZERO;
    for i in 0..n - 1 {
        let left = sim
            .events(i)
            .iter()
            .find(|e| matches!(&e.event, Event::ServiceLeft(s) if &*s.ty == "crash"));
        match left {
            Some(e) => worst = worst.max(e.at.saturating_duration_since(t0)),
            None => return f64::INFINITY,
        }
    }
    worst.as_secs_f64() * 1e3
}

/// Bytes sent per node per second over `secs` seconds, with `rate` changes
/// per second across the cluster.
fn traffic(n: usize, seed: u64, rate: u32, secs: u64) -> f64 {
    let mut sim = cluster(n, seed, 0.0);
    let before: u64 = (0..n).map(|i| sim.stats(i).sent_bytes).sum();
    let steps = secs * u64::from(rate.max(1));
    let step = Duration::from_secs(secs) / steps as u32;
    for k in 0..steps {
        if rate > 0 {
            let i = (k as usize * 7) % n;
            let id = format!("c{}", k / 2);
            sim.with_node(i, |node, now| {
                if k % 2 == 0 {
                    node.add_service(now, "churn", &id, b"").map(|_| ())
                } else {
                    let prev = format!("c{}", (k - 1) / 2);
                    node.remove_service(now, "churn", &prev)
                }
            })
            .expect("up")
            .ok();
        }
        sim.run_for(step).expect("runs");
    }
    let after: u64 = (0..n).map(|i| sim.stats(i).sent_bytes).sum();
    (after - before) as f64 / n as f64 / secs as f64
}

/// Splits the cluster in two, registers `entries` instances spread over all
/// nodes, heals, and measures until every node shows them all.
fn heal_converge(n: usize, seed: u64, entries: usize) -> f64 {
    let mut sim = cluster(n, seed, 0.0);
    let (a, b): (Vec<usize>, Vec<usize>) = ((0..n / 2).collect(), (n / 2..n).collect());
    sim.partition(&a, &b);
    for k in 0..entries {
        let id = format!("p{k}");
        sim.with_node(k % n, |node, now| {
            node.add_service(now, "split", &id, b"").expect("add")
        })
        .expect("up");
        // Registrations arrive over about two seconds, not in one instant.
        sim.run_for(Duration::from_secs(2) / entries as u32)
            .expect("runs");
    }
    sim.run_for(Duration::from_millis(500)).expect("runs");
    sim.heal();
    let t0 = sim.now();
    // Checked every 10 ms of virtual time: counting 10,000 entries on every
    // node after every datagram would dominate the run.
    let all_there =
        |s: &Cluster| (0..n).all(|i| s.node(i).unwrap().services("split").count() == entries);
    let mut done = false;
    while !done && sim.now() < t0 + Duration::from_secs(120) {
        sim.run_for(Duration::from_millis(10)).expect("runs");
        done = all_there(&sim);
    }
    if done {
        sim.now().saturating_duration_since(t0).as_secs_f64() * 1e3
    } else {
        f64::INFINITY
    }
}

/// CPU time this thread has used, from Linux's schedstat; the wall clock
/// where that is not available.
fn cpu_time(wall: std::time::Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| wall.elapsed())
}

/// Two nodes, node 1 serving `uploader`; node 0 keeps 256 calls in flight
/// until `total` have completed. Returns calls per CPU second, wire bytes
/// per call beyond the request and reply payloads, and bytes per datagram.
fn calls(total: u64, seed: u64) -> (f64, f64, f64) {
    const PAYLOAD: usize = 32;
    const WINDOW: u64 = 256;
    let mut sim = cluster(2, seed, 0.0);
    sim.with_node(1, |node, now| node.add_service(now, "uploader", "u1", b""))
        .expect("up")
        .expect("add");
    sim.run_for(Duration::from_millis(50)).expect("runs");
    for i in 0..2 {
        sim.take_events(i);
    }
    let payload = [7u8; PAYLOAD];
    let bytes_before: u64 = (0..2).map(|i| sim.stats(i).sent_bytes).sum();
    let out = |sim: &Cluster| -> (u64, u64) {
        (0..2)
            .map(|i| {
                let s = sim.node(i).expect("up").stats();
                (s.bytes_out, s.datagrams_out)
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let out_before = out(&sim);
    let wall = std::time::Instant::now();
    let cpu_before = cpu_time(wall);
    let (mut started, mut done) = (0u64, 0u64);
    while done < total {
        while started < total && started - done < WINDOW {
            let key = started.to_le_bytes();
            sim.with_node(0, |node, now| {
                node.call(now, "uploader", &key, &payload, None)
            })
            .expect("up")
            .expect("call");
            started += 1;
        }
        sim.run_for(Duration::from_micros(500)).expect("runs");
        for e in sim.take_events(1) {
            if let Event::Request(r) = e.event {
                sim.with_node(1, |node, now| node.reply(now, &r.id, &payload))
                    .expect("up")
                    .expect("reply");
            }
        }
        for e in sim.take_events(0) {
            if let Event::Reply { result, .. } = e.event {
                result.expect("a call on a quiet link succeeds");
                done += 1;
            }
        }
    }
    let cpu = cpu_time(wall).saturating_sub(cpu_before).as_secs_f64();
    let bytes: u64 = (0..2).map(|i| sim.stats(i).sent_bytes).sum::<u64>() - bytes_before;
    let overhead = (bytes as f64 - (total * 2 * PAYLOAD as u64) as f64) / total as f64;
    let out_after = out(&sim);
    let per_datagram =
        (out_after.0 - out_before.0) as f64 / (out_after.1 - out_before.1).max(1) as f64;
    (total as f64 / cpu, overhead, per_datagram)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let report = Report {
        json: args.iter().any(|a| a == "--json"),
    };
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[16] } else { &[16, 100] };
    let trials = if quick { 100 } else { 1000 };
    let entries = if quick { 1000 } else { 10_000 };
    if !report.json {
        println!("cluster_report: simulated, 1 ms +/- 0.5 ms one-way, {trials} visibility trials");
    }
    let mut goals = Vec::new();
    let total_calls = if quick { 20_000 } else { 200_000 };
    // Clear and sealed alternate, three runs each, the first of each pair
    // swapping, and each mode's median run counts: the host's drift falls
    // on both alike.
    let mut runs: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..6 {
        let keyed = (round % 2 == 1) ^ (round / 2 % 2 == 1);
        KEYED.store(keyed, Ordering::Relaxed);
        runs[usize::from(keyed)].push(calls(total_calls, 23));
    }
    KEYED.store(false, Ordering::Relaxed);
    let [(per_sec, overhead, per_datagram), (keyed_per_sec, keyed_overhead, keyed_per_datagram)] =
        runs.map(|mut r| {
            r.sort_by(|a, b| a.0.total_cmp(&b.0));
            r[r.len() / 2]
        });
    report.line(2, 0.0, "calls_per_cpu_sec", per_sec, "calls/s");
    report.line(2, 0.0, "wire_overhead_bytes_per_call", overhead, "B");
    report.line(2, 0.0, "bytes_per_datagram", per_datagram, "B");
    // The same with every datagram sealed, in the same run.
    KEYED.store(true, Ordering::Relaxed);
    report.line(2, 0.0, "keyed_calls_per_cpu_sec", keyed_per_sec, "calls/s");
    report.line(
        2,
        0.0,
        "keyed_wire_overhead_bytes_per_call",
        keyed_overhead,
        "B",
    );
    report.line(2, 0.0, "keyed_bytes_per_datagram", keyed_per_datagram, "B");
    let ratio = keyed_per_sec / per_sec;
    report.line(2, 0.0, "keyed_over_clear_calls_ratio", ratio, "x");
    report.line(
        2,
        0.0,
        "keyed_bytes_added_per_datagram",
        keyed_per_datagram - per_datagram,
        "B",
    );
    goals.push((
        "calls per CPU second with a key >= 0.8 of without",
        ratio >= 0.8,
        format!("{ratio:.2}x"),
    ));
    for loss in [0.0, 0.2] {
        let (times, false_downs) = visibility(16, loss, trials, 7 + 16);
        report.line(
            16,
            loss,
            "keyed_visibility_p50_ms",
            percentile(&times, 0.5),
            "ms",
        );
        report.line(
            16,
            loss,
            "keyed_visibility_p99_ms",
            percentile(&times, 0.99),
            "ms",
        );
        report.line(16, loss, "keyed_false_downs", false_downs as f64, "");
    }
    KEYED.store(false, Ordering::Relaxed);
    for &n in sizes {
        for loss in [0.0, 0.2] {
            let (times, false_downs) = visibility(n, loss, trials, 7 + n as u64);
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            report.line(n, loss, "visibility_p50_ms", p50, "ms");
            report.line(n, loss, "visibility_p99_ms", p99, "ms");
            report.line(n, loss, "false_downs", false_downs as f64, "");
            if n == 16 && loss == 0.0 {
                goals.push((
                    "p99 visibility at 16 nodes, no loss < 10 ms",
                    p99 < 10.0,
                    format!("{p99:.2} ms"),
                ));
            }
            goals.push((
                "zero false downs",
                false_downs == 0,
                format!("{false_downs} at {n} nodes, loss {loss}"),
            ));
        }
        report.line(n, 0.0, "crash_to_leave_ms", crash_to_leave(n, 11), "ms");
        let idle = traffic(n, 13, 0, 60);
        report.line(n, 0.0, "idle_bytes_per_sec_per_node", idle, "B/s");
        if n == 100 {
            goals.push((
                "idle traffic at 100 nodes < 10 KB/s per node",
                idle < 10_000.0,
                format!("{idle:.0} B/s"),
            ));
        }
        report.line(
            n,
            0.0,
            "churn_bytes_per_sec_per_node",
            traffic(n, 17, 10, 60),
            "B/s",
        );
        report.line(
            n,
            0.0,
            "heal_converge_ms",
            heal_converge(n, 19, entries),
            "ms",
        );
    }
    if !report.json {
        println!("goals:");
        for (goal, met, value) in goals {
            println!("  [{}] {goal}: {value}", if met { "met" } else { "MISSED" });
        }
    }
}
