//! Whole clusters of real nodes over the simulated network: convergence,
//! crashes, restarts, graceful leaves, partitions and loss, over many seeds.
//!
//! A failing seed is printed; replay it alone with
//! `DISPATCH_SIM_SEED=<seed> cargo test --release --test cluster_sim`.

use std::collections::BTreeSet;
use std::time::Duration;

use dispatch_core::node::{Config, Event, Node};
use dispatch_core::presence::ReplicaId;
use dispatch_core::sim::{check_seeds, LinkConfig, Rng, Sim, SimAddr, SimConfig, SEED_ENV};
use dispatch_core::time::Instant;

mod support;
use support::{start, visible};

type SimNode = Node<SimAddr>;

/// `(node name, type, id)` of every instance a live node registered.
type Model = BTreeSet<(String, String, String)>;

fn replay() -> Option<String> {
    std::env::var(SEED_ENV).ok()
}

fn cluster(n: usize, seed: u64, link: LinkConfig) -> Sim<SimNode> {
    cluster_with(n, seed, link, None, Config::default())
}

/// A cluster whose nodes join through `static_seeds` when given (every
/// other node), through node 0 otherwise.
fn cluster_with(
    n: usize,
    seed: u64,
    link: LinkConfig,
    static_seeds: Option<usize>,
    config: Config,
) -> Sim<SimNode> {
    let mut cfg = SimConfig::new(n, seed);
    cfg.link = link;
    Sim::new(cfg, move |i, restarts, now| {
        start(i, restarts, now, seed, config.clone(), static_seeds)
    })
}

fn lan() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        ..LinkConfig::default()
    }
}

fn converged(sim: &Sim<SimNode>, model: &Model) -> bool {
    (0..sim.len())
        .filter(|&i| sim.is_up(i) && !sim.node(i).is_some_and(|n| n.has_left()))
        .all(|i| visible(sim.node(i).unwrap()) == *model)
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[test]
fn a_new_service_is_visible_everywhere_within_milliseconds() {
    let mut sim = cluster(5, 1, lan());
    sim.run_for(Duration::from_secs(3)).unwrap();
    let t0 = sim.now();
    sim.with_node(2, |n, now| n.add_service(now, "uploader", "u1", b""))
        .unwrap()
        .unwrap();
    let mut model = Model::new();
    model.insert(("n2".into(), "uploader".into(), "u1".into()));
    assert!(sim
        .run_until_condition(|s| converged(s, &model), t0 + Duration::from_millis(10))
        .unwrap());
    // Every node answers the same owner for a key.
    let owners: BTreeSet<_> = (0..5)
        .map(|i| {
            sim.node(i)
                .unwrap()
                .find_service("uploader", b"file.png", false)
                .unwrap()
                .id()
                .to_string()
        })
        .collect();
    assert_eq!(owners.len(), 1);
}

#[test]
fn join_events_name_the_node_and_state() {
    let mut sim = cluster(3, 2, lan());
    sim.run_for(Duration::from_secs(3)).unwrap();
    sim.take_events(0);
    sim.with_node(1, |n, now| n.add_service(now, "uploader", "u1", b"meta"))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_millis(20)).unwrap();
    let joined: Vec<_> = sim
        .take_events(0)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ServiceJoined(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(&*joined[0].node.name, "n1");
    assert_eq!(&*joined[0].data, b"meta");
    assert_eq!(joined[0].state, dispatch_core::presence::State::Online);
}

#[test]
fn crash_leaves_within_down_period_and_restart_leaves_no_zombie() {
    let cfg = Config::default();
    let mut sim = cluster(4, 3, lan());
    sim.run_for(Duration::from_secs(3)).unwrap();
    sim.with_node(3, |n, now| n.add_service(now, "uploader", "old", b""))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_millis(50)).unwrap();
    let crashed_at = sim.now();
    sim.crash(3);
    let model = Model::new();
    let deadline = crashed_at + cfg.down_after + cfg.heartbeat_period + Duration::from_millis(200);
    assert!(sim
        .run_until_condition(|s| converged(s, &model), deadline)
        .unwrap());
    // The down period runs from the last heartbeat heard, at most one
    // period before the crash.
    assert!(
        sim.now() + cfg.heartbeat_period >= crashed_at + cfg.down_after,
        "left before the down period: a false down"
    );
    // It comes back as a new incarnation with a new service: the old one
    // never reappears.
    sim.restart(3);
    sim.with_node(3, |n, now| n.add_service(now, "uploader", "new", b""))
        .unwrap()
        .unwrap();
    let mut model = Model::new();
    model.insert(("n3".into(), "uploader".into(), "new".into()));
    let t = sim.now();
    let ok = sim
        .run_until_condition(|s| converged(s, &model), t + Duration::from_secs(3))
        .unwrap();
    assert!(ok);
    sim.run_for(Duration::from_secs(30)).unwrap();
    assert!(converged(&sim, &model));
}

#[test]
fn restart_before_down_period_replaces_old_incarnation_at_once() {
    let mut sim = cluster(3, 4, lan());
    sim.run_for(Duration::from_secs(2)).unwrap();
    sim.with_node(2, |n, now| n.add_service(now, "uploader", "old", b""))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_millis(50)).unwrap();
    sim.crash(2);
    sim.restart(2);
    let model = Model::new();
    let t = sim.now();
    // The restarted node's first heartbeat retires the old incarnation: far
    // sooner than the down period.
    assert!(sim
        .run_until_condition(|s| converged(s, &model), t + Duration::from_secs(3))
        .unwrap());
}

#[test]
fn graceful_leave_removes_services_at_once() {
    let mut sim = cluster(4, 5, lan());
    sim.run_for(Duration::from_secs(2)).unwrap();
    sim.with_node(1, |n, now| n.add_service(now, "uploader", "u", b""))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_millis(50)).unwrap();
    sim.with_node(1, |n, now| n.leave(now)).unwrap();
    let model = Model::new();
    let t = sim.now();
    assert!(sim
        .run_until_condition(|s| converged(s, &model), t + Duration::from_millis(20))
        .unwrap());
}

#[test]
fn disabled_instances_are_skipped_by_routing_unless_allowed() {
    let mut sim = cluster(2, 6, lan());
    sim.run_for(Duration::from_secs(2)).unwrap();
    sim.with_node(0, |n, now| n.add_service(now, "uploader", "a", b""))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_millis(20)).unwrap();
    sim.with_node(0, |n, now| n.disable_service(now, "uploader", "a"))
        .unwrap()
        .unwrap();
    sim.run_for(Duration::from_millis(20)).unwrap();
    let other = sim.node(1).unwrap();
    assert!(other.find_service("uploader", b"k", false).is_err());
    assert_eq!(
        other.find_service("uploader", b"k", true).unwrap().id(),
        "a"
    );
    assert_eq!(other.services("uploader").count(), 1);
    assert_eq!(other.online_services("uploader").count(), 0);
}

#[test]
fn a_large_registration_crosses_in_chunks_and_survives_loss() {
    let mut sim = cluster(
        3,
        7,
        LinkConfig {
            loss_ppm: 100_000,
            ..lan()
        },
    );
    sim.run_for(Duration::from_secs(2)).unwrap();
    let mut model = Model::new();
    // 600 instances added before anyone hears of them: catching up needs a
    // transfer of many chunks.
    sim.crash(1);
    for k in 0..600 {
        let id = format!("instance-{k:04}");
        sim.with_node(0, |n, now| n.add_service(now, "uploader", &id, b""))
            .unwrap()
            .unwrap();
        model.insert(("n0".into(), "uploader".into(), id));
    }
    sim.restart(1);
    let t = sim.now();
    assert!(sim
        .run_until_condition(|s| converged(s, &model), t + Duration::from_secs(20))
        .unwrap());
    assert!(sim.node(1).unwrap().stats().transfers_received >= 1);
    for i in 0..3 {
        assert_eq!(sim.stats(i).dropped.oversize, 0);
    }
}

#[test]
fn foreign_and_garbage_datagrams_are_counted_and_harmless() {
    let mut sim = cluster(2, 8, lan());
    sim.run_for(Duration::from_secs(2)).unwrap();
    let from = SimAddr(1);
    let errs = sim
        .with_node(0, |n, now| {
            let mut errs = 0;
            for junk in [
                &b""[..],
                b"DS",
                b"hello world",
                b"DS\x02\x07\x00\x00\x00\x00",
                b"DS\x09\x00\x00\x00\x00\x00\x00",
            ] {
                errs += u32::from(n.handle_datagram(now, from, junk).is_err());
            }
            errs
        })
        .unwrap();
    assert_eq!(errs, 5);
    let stats = sim.node(0).unwrap().stats();
    assert_eq!(stats.dropped_total(), 5);
    assert_eq!(
        stats.dropped(dispatch_core::node::DropReason::ForeignCluster),
        1
    );
    assert_eq!(stats.dropped(dispatch_core::node::DropReason::Version), 1);
}

#[test]
fn bad_configuration_is_refused_with_what_to_change() {
    let cfg = Config {
        down_after: Duration::from_secs(1),
        ..Config::default()
    };
    let err = Node::<SimAddr>::new(ReplicaId::new("n", 1), cfg, Instant::ZERO)
        .err()
        .unwrap();
    assert!(err.to_string().contains("down_after"), "{err}");
    let cfg = Config {
        mtu: 100,
        ..Config::default()
    };
    let err = Node::<SimAddr>::new(ReplicaId::new("n", 1), cfg, Instant::ZERO)
        .err()
        .unwrap();
    assert!(err.to_string().contains("512"), "{err}");
}

/// The scenario CI runs over 1000 seeds: 8 nodes with jitter, duplication
/// and loss; random registrations, removals, state changes, crashes,
/// restarts, graceful leaves, partitions (some one-way); then the network
/// heals and every live node must show exactly the model's set, with no
/// entry of a dead incarnation.
fn chaos(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0xC4A0_5EED);
    let link = LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(800),
        loss_ppm: rng.below(200_001) as u32,
        duplicate_ppm: 20_000,
    };
    let n = 8;
    // Every node lists the others as seeds, as a static cluster would: with
    // a single seed, a node whose seed leaves while it is cut off can never
    // be introduced to anyone.
    let mut config = Config::default();
    if seed % 2 == 1 {
        // Tiny delta generations: a lagging peer is usually past them, so
        // catching up needs an extract.
        config.presence.generations = vec![2, 4];
    }
    let mut sim = cluster_with(n, seed, link, Some(n), config);
    // What each node's current incarnation registered: (type, id).
    let mut own: Vec<BTreeSet<(String, String)>> = vec![BTreeSet::new(); n];
    let mut left = vec![false; n];
    sim.run_for(Duration::from_secs(2)).map_err(s)?;
    for step in 0..40 {
        let i = rng.below(n as u64) as usize;
        let roll = rng.below(100);
        if left[i] {
            continue;
        }
        if !sim.is_up(i) {
            if roll < 50 {
                sim.restart(i);
                own[i].clear();
            }
        } else if roll < 45 {
            let ty = ["uploader", "resizer"][rng.below(2) as usize].to_string();
            let id = format!("s{step}");
            sim.with_node(i, |nd, now| nd.add_service(now, &ty, &id, b""))
                .map_err(s)?
                .map_err(s)?;
            own[i].insert((ty, id));
        } else if roll < 60 {
            if let Some(entry) = own[i].iter().next().cloned() {
                sim.with_node(i, |nd, now| nd.remove_service(now, &entry.0, &entry.1))
                    .map_err(s)?
                    .map_err(s)?;
                own[i].remove(&entry);
            }
        } else if roll < 70 {
            if let Some(entry) = own[i].iter().next().cloned() {
                sim.with_node(i, |nd, now| nd.disable_service(now, &entry.0, &entry.1))
                    .map_err(s)?
                    .map_err(s)?;
            }
        } else if roll < 78 {
            sim.crash(i);
            own[i].clear();
        } else if roll < 81 {
            sim.with_node(i, |nd, now| nd.leave(now)).map_err(s)?;
            left[i] = true;
            own[i].clear();
        } else if roll < 88 {
            let cut = 1 + rng.below(n as u64 - 1) as usize;
            let (a, b): (Vec<usize>, Vec<usize>) = ((0..cut).collect(), (cut..n).collect());
            if roll < 85 {
                sim.partition(&a, &b);
            } else {
                sim.block(&a, &b);
            }
        } else if roll < 92 {
            sim.heal();
        }
        if std::env::var("DISPATCH_SIM_TRACE").is_ok() {
            eprintln!("{:?} step {step}: node {i} roll {roll}", sim.now());
        }
        sim.run_for(Duration::from_millis(rng.below(3000)))
            .map_err(s)?;
    }
    sim.heal();
    let mut model = Model::new();
    for (i, set) in own.iter().enumerate() {
        if sim.is_up(i) && !left[i] {
            for (ty, id) in set {
                model.insert((format!("n{i}"), ty.clone(), id.clone()));
            }
        }
    }
    // Crashed nodes stay down: their entries leave after the down period,
    // and everything else converges well within it.
    let cfg = Config::default();
    let deadline = sim.now() + cfg.down_after + cfg.heartbeat_period * 3;
    if !sim
        .run_until_condition(|s| converged(s, &model), deadline)
        .map_err(s)?
    {
        let views: Vec<String> = (0..n)
            .filter(|&i| sim.is_up(i) && !left[i])
            .map(|i| {
                let node = sim.node(i).unwrap();
                let peers: Vec<String> = node
                    .peers()
                    .map(|p| format!("{}:{:?}", p.id, p.status))
                    .collect();
                format!("n{i}: {:?}\n    peers {peers:?}", visible(node))
            })
            .collect();
        if std::env::var("DISPATCH_SIM_TRACE").is_ok() {
            for i in 0..n {
                for e in sim.events(i) {
                    match &e.event {
                        Event::ServiceJoined(_) | Event::ServiceLeft(_) => {}
                        other => eprintln!("n{i} {:?} {other:?}", e.at),
                    }
                }
            }
        }
        return Err(format!(
            "no convergence\nmodel: {model:?}\n{}",
            views.join("\n")
        ));
    }
    for i in 0..n {
        if sim.stats(i).dropped.oversize > 0 {
            return Err(format!("n{i} sent a datagram over the MTU"));
        }
    }
    Ok(())
}

#[test]
fn chaos_over_many_seeds_converges_to_the_model() {
    let seeds: u64 = std::env::var("DISPATCH_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let passed = check_seeds(0..seeds, replay().as_deref(), chaos);
    assert!(passed >= 1);
}

#[test]
fn no_false_downs_under_twenty_percent_loss() {
    check_seeds(0..20, replay().as_deref(), |seed| {
        let link = LinkConfig {
            loss_ppm: 200_000,
            ..lan()
        };
        let mut sim = cluster(8, seed, link);
        sim.run_for(Duration::from_secs(300)).map_err(s)?;
        for i in 0..8 {
            let downs = sim
                .events(i)
                .iter()
                .filter(|e| matches!(e.event, Event::PeerDown(_)))
                .count();
            if downs > 0 {
                return Err(format!("n{i} marked {downs} live peers down"));
            }
        }
        Ok::<(), String>(())
    });
}

#[test]
fn a_512_byte_mtu_carries_everything() {
    let config = Config {
        mtu: 512,
        ..Config::default()
    };
    let mut cfg_link = lan();
    cfg_link.loss_ppm = 50_000;
    let mut sim = cluster_with(4, 9, cfg_link, None, config);
    sim.run_for(Duration::from_secs(2)).unwrap();
    let mut model = Model::new();
    for k in 0..200 {
        let id = format!("a-rather-long-instance-name-{k:04}");
        sim.with_node(k % 4, |n, now| {
            n.add_service(now, "uploader", &id, &[7; 100])
        })
        .unwrap()
        .unwrap();
        model.insert((format!("n{}", k % 4), "uploader".into(), id));
    }
    let t = sim.now();
    assert!(sim
        .run_until_condition(|s| converged(s, &model), t + Duration::from_secs(10))
        .unwrap());
    for i in 0..4 {
        assert_eq!(
            sim.stats(i).dropped.oversize,
            0,
            "n{i} wrote past 512 bytes"
        );
    }
}

#[test]
fn a_replayed_heartbeat_is_dropped_and_counted() {
    use dispatch_core::node::{DropReason, RecvError};
    let now = Instant::ZERO;
    let mut a: Node<u8> = Node::new(ReplicaId::new("a", 1), Config::default(), now).unwrap();
    let mut b: Node<u8> = Node::new(ReplicaId::new("b", 1), Config::default(), now).unwrap();
    a.join(now, &[2]);
    let mut buf = [0u8; 1500];
    // a greets its seed, which answers a stranger without believing it...
    let t = a.poll_transmit(now, &mut buf).expect("a greets its seed");
    assert_eq!(b.handle_datagram(now, 1, &buf[..t.len]), Ok(()));
    assert_eq!(b.peers().count(), 0, "a stranger is not a peer");
    let t = b
        .poll_transmit(now, &mut buf)
        .expect("b greets the stranger");
    // ...and a, hearing b's greeting written for it, greets b in turn.
    assert_eq!(a.handle_datagram(now, 2, &buf[..t.len]), Ok(()));
    let t = a
        .poll_transmit(now, &mut buf)
        .expect("a greets its new peer");
    let heartbeat = buf[..t.len].to_vec();
    assert_eq!(b.handle_datagram(now, 1, &heartbeat), Ok(()));
    assert_eq!(b.peers().count(), 1);
    assert_eq!(
        b.handle_datagram(now, 1, &heartbeat),
        Err(RecvError(DropReason::Replayed))
    );
    assert_eq!(b.stats().dropped(DropReason::Replayed), 1);
    assert_eq!(b.peers().count(), 1);
}

#[test]
fn the_peer_table_is_bounded() {
    let mut config = Config {
        max_peers: 2,
        ..Config::default()
    };
    config.presence.max_replicas = 3;
    let mut sim = cluster_with(6, 10, lan(), Some(6), config);
    sim.run_for(Duration::from_secs(5)).unwrap();
    let mut refused = 0;
    for i in 0..6 {
        let node = sim.node(i).unwrap();
        assert!(node.peers().count() <= 2);
        refused += node
            .stats()
            .dropped(dispatch_core::node::DropReason::TooManyPeers);
    }
    assert!(
        refused > 0,
        "six nodes that know each other overflow a table of two"
    );
}

#[test]
fn services_registered_before_the_seed_answers_arrive_without_waiting_a_heartbeat() {
    let config = Config {
        heartbeat_period: Duration::from_secs(5),
        down_after: Duration::from_secs(30),
        ..Config::default()
    };
    let mut cfg = SimConfig::new(2, 3);
    cfg.link = lan();
    let mut sim = Sim::new(cfg, move |i, restarts, now| {
        let mut node = start(i, restarts, now, 3, config.clone(), None);
        // Each registers at once, before hearing from anyone.
        node.add_service(now, "uploader", &format!("u{i}"), b"")
            .expect("add");
        node
    });
    let mut model = Model::new();
    model.insert(("n0".into(), "uploader".into(), "u0".into()));
    model.insert(("n1".into(), "uploader".into(), "u1".into()));
    // Well within one heartbeat period (5 s): a greeting, a catch-up, a delta.
    assert!(sim
        .run_until_condition(
            |s| converged(s, &model),
            Instant::ZERO + Duration::from_millis(100)
        )
        .unwrap());
}
