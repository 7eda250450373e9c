//! Keyed clusters in the simulator: what outsiders send is refused and
//! counted, the cluster's services stay the model's, keys rotate with nodes
//! running; and an unkeyed node flooded by strangers still admits a real
//! node at once.
//!
//! A failing seed is printed; replay it alone with
//! `DISPATCH_SIM_SEED=<seed> cargo test --release --test sealed_sim`.

use std::collections::BTreeSet;
use std::time::Duration;

use dispatch_core::keyring::{Key, Keyring};
use dispatch_core::node::{Config, DropReason, Event, Node};
use dispatch_core::presence::{Meta, Presence, ReplicaId};
use dispatch_core::sim::{check_seeds, LinkConfig, Sim, SimAddr, SimConfig, SEED_ENV};
use dispatch_core::transmit::Destination;
use dispatch_core::wire::{self, Framing, Heartbeat, Message};

mod support;
use support::{start, visible};

type Model = BTreeSet<(String, String, String)>;

fn key(id: u8) -> Key {
    Key::new(id, [id.wrapping_mul(37); 32]).unwrap()
}

fn lan() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        ..LinkConfig::default()
    }
}

/// `n` nodes holding `keyring`, node `i` registering `svc/s{i}` at every
/// start.
fn cluster(n: usize, seed: u64, keyring: Option<Keyring>) -> Sim<Node<SimAddr>> {
    let mut cfg = SimConfig::new(n, seed);
    cfg.link = lan();
    let config = Config {
        keyring,
        ..Config::default()
    };
    Sim::new(cfg, move |i, restarts, now| {
        let mut node = start(i, restarts, now, seed, config.clone(), None);
        node.add_service(now, "svc", &format!("s{i}"), b"").unwrap();
        node
    })
}

fn model(n: usize) -> Model {
    (0..n)
        .map(|i| (format!("n{i}"), "svc".to_string(), format!("s{i}")))
        .collect()
}

fn converged(sim: &Sim<Node<SimAddr>>, model: &Model) -> bool {
    (0..sim.len()).all(|i| visible(sim.node(i).unwrap()) == *model)
}

fn drops(sim: &Sim<Node<SimAddr>>, reason: DropReason) -> u64 {
    (0..sim.len())
        .map(|i| sim.node(i).unwrap().stats().dropped(reason))
        .sum()
}

/// What an outsider writes: forged registrations, leaves and heartbeats
/// (with the largest incarnation), in the clear, or sealed with `seal`.
fn forgeries(victim: &ReplicaId, seal: Option<&Key>) -> Vec<Vec<u8>> {
    let mut ghost = Presence::new(ReplicaId::new("ghost", 1), Default::default()).unwrap();
    for k in 0..8 {
        ghost
            .add("svc", &format!("evil{k}"), Meta::online(k, b""))
            .unwrap();
    }
    let delta = ghost.take_delta().unwrap();
    let squatter = ReplicaId::new("n1", u64::MAX);
    let msgs: Vec<Message<'_, SimAddr>> = vec![
        Message::Delta {
            from: ReplicaId::new("ghost", 1),
            delta,
        },
        Message::Heartbeat(Heartbeat {
            from: squatter.clone(),
            seq: u64::MAX,
            clock: 0,
            want_peers: true,
            peers: Vec::new(),
        }),
        Message::Leave {
            from: ReplicaId::new("n2", 1),
        },
    ];
    let mut out = Vec::new();
    for (k, msg) in msgs.iter().enumerate() {
        for to in [None, Some(victim.incarnation)] {
            let mut buf = vec![0u8; 1200];
            let framing = Framing {
                cluster: 0,
                to,
                seal: seal.map(|key| (key, k as u128)),
            };
            let len = wire::encode_framed(msg, &framing, &mut buf).unwrap();
            out.push(buf[..len].to_vec());
        }
    }
    out
}

#[test]
fn a_keyed_cluster_refuses_forgeries_replays_flips_and_other_keys() {
    let replay = std::env::var(SEED_ENV).ok();
    let passed = check_seeds(0..100, replay.as_deref(), |seed| -> Result<(), String> {
        // Key 2 is the cluster's; key 1 was retired before the run.
        let ring = Keyring::new(key(2));
        let mut sim = cluster(4, seed, Some(ring));
        let model = model(4);
        sim.run_for(Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        if !converged(&sim, &model) {
            return Err("the keyed cluster did not converge".into());
        }
        let hostile = SimAddr(9);
        let victim = sim.node(0).unwrap().id().clone();
        let plain = forgeries(&victim, None);
        let other = Key::new(2, [0xEE; 32]).unwrap();
        let wrong = forgeries(&victim, Some(&other));
        let retired = forgeries(&victim, Some(&key(1)));
        // Captured: datagrams node 1 writes, taken off the wire.
        let captured: Vec<(SimAddr, Vec<u8>)> = sim
            .with_node(1, |n, now| {
                n.add_service(now, "svc", "extra", b"").unwrap();
                n.remove_service(now, "svc", "extra").unwrap();
                let mut buf = vec![0u8; 1500];
                let mut out = Vec::new();
                while let Some(t) = n.poll_transmit(now, &mut buf) {
                    if let Destination::Peer(to) = t.destination {
                        out.push((to, buf[..t.len].to_vec()));
                    }
                }
                out
            })
            .map_err(|e| e.to_string())?;
        if captured.is_empty() {
            return Err("nothing captured".into());
        }
        let before = |sim: &Sim<Node<SimAddr>>, r| drops(sim, r);
        let (unsealed0, tag0, unknown0, replayed0) = (
            before(&sim, DropReason::Unsealed),
            before(&sim, DropReason::BadTag),
            before(&sim, DropReason::UnknownKey),
            before(&sim, DropReason::Replayed),
        );
        // Delivered once as the network would, then replayed, then flipped.
        let mut flipped = 0;
        for (to, d) in &captured {
            let i = to.index();
            sim.with_node(i, |n, now| {
                let first = n.handle_datagram(now, SimAddr(1), d);
                let again = n.handle_datagram(now, hostile, d);
                (first.is_ok(), again.is_err())
            })
            .map_err(|e| e.to_string())
            .and_then(|(first, again)| {
                if first && again {
                    Ok(())
                } else {
                    Err(format!(
                        "captured datagram to n{i}: first ok {first}, replay refused {again}"
                    ))
                }
            })?;
            for byte in [wire::HEADER_LEN + 1, d.len() / 2, d.len() - 1] {
                let mut bad = d.clone();
                bad[byte] ^= 0x10;
                flipped += 1;
                let refused = sim
                    .with_node(i, |n, now| n.handle_datagram(now, hostile, &bad).is_err())
                    .map_err(|e| e.to_string())?;
                if !refused {
                    return Err(format!("flipped byte {byte} accepted"));
                }
            }
        }
        for d in plain.iter().chain(&wrong).chain(&retired) {
            let refused = sim
                .with_node(0, |n, now| n.handle_datagram(now, hostile, d).is_err())
                .map_err(|e| e.to_string())?;
            if !refused {
                return Err("a forgery was accepted".into());
            }
        }
        let counted = |r, base, want: u64, what: &str| -> Result<(), String> {
            let got = drops(&sim, r) - base;
            if got >= want {
                Ok(())
            } else {
                Err(format!("{what}: {got} counted, {want} sent"))
            }
        };
        counted(DropReason::Unsealed, unsealed0, plain.len() as u64, "clear")?;
        counted(
            DropReason::BadTag,
            tag0,
            wrong.len() as u64 + flipped,
            "wrong key or flipped",
        )?;
        counted(
            DropReason::UnknownKey,
            unknown0,
            retired.len() as u64,
            "retired key",
        )?;
        counted(
            DropReason::Replayed,
            replayed0,
            captured.len() as u64,
            "replayed",
        )?;
        // The receivers restart; what was captured before cannot bring
        // anything back.
        let targets: BTreeSet<usize> = captured.iter().map(|(to, _)| to.index()).collect();
        for &i in &targets {
            sim.crash(i);
            sim.restart(i);
        }
        sim.run_for(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        for (to, d) in &captured {
            sim.with_node(to.index(), |n, now| {
                let _ = n.handle_datagram(now, hostile, d);
            })
            .map_err(|e| e.to_string())?;
        }
        sim.run_for(Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        for i in 0..4 {
            let node = sim.node(i).unwrap();
            if visible(node) != model {
                return Err(format!("n{i} shows {:?}", visible(node)));
            }
            if let Some(p) = node.peers().find(|p| p.addr == hostile) {
                return Err(format!("n{i} believes {:?} is at the attacker", p.id));
            }
            if node.peers().any(|p| p.id.name.as_ref() == "ghost") {
                return Err(format!("n{i} lists the ghost"));
            }
        }
        for i in 0..4 {
            for e in sim.take_events(i) {
                if let Event::PeerDown(id) = &e.event {
                    return Err(format!("n{i} saw {id:?} down"));
                }
            }
        }
        Ok(())
    });
    assert!(passed >= 1);
}

#[test]
fn keys_rotate_with_nodes_running() {
    let replay = std::env::var(SEED_ENV).ok();
    check_seeds(0..40, replay.as_deref(), |seed| -> Result<(), String> {
        let n = 4;
        let mut sim = cluster(n, seed, Some(Keyring::new(key(1))));
        let mut model = model(n);
        sim.run_for(Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        let steps = [
            Keyring::new(key(1)).with_secondary(key(2)).unwrap(),
            Keyring::new(key(2)).with_secondary(key(1)).unwrap(),
            Keyring::new(key(2)),
        ];
        for (s, ring) in steps.iter().enumerate() {
            // One node at a time, a little apart, as an operator would.
            for i in 0..n {
                sim.with_node(i, |node, now| {
                    node.set_keyring(Some(ring.clone()));
                    node.add_service(now, "svc", &format!("r{s}-{i}"), b"")
                        .unwrap();
                })
                .map_err(|e| e.to_string())?;
                model.insert((format!("n{i}"), "svc".into(), format!("r{s}-{i}")));
                sim.run_for(Duration::from_millis(700))
                    .map_err(|e| e.to_string())?;
            }
        }
        sim.run_for(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        if !converged(&sim, &model) {
            return Err("an entry was lost during rotation".into());
        }
        for i in 0..n {
            for e in sim.take_events(i) {
                if let Event::PeerDown(id) | Event::PeerGone(id) = &e.event {
                    return Err(format!("n{i} saw {id:?} leave during rotation"));
                }
            }
        }
        // The old key is refused once removed.
        let victim = sim.node(0).unwrap().id().clone();
        let old = forgeries(&victim, Some(&key(1)));
        for d in &old {
            let err = sim
                .with_node(0, |node, now| node.handle_datagram(now, SimAddr(9), d))
                .map_err(|e| e.to_string())?;
            if err.map_err(|e| e.0) != Err(DropReason::UnknownKey) {
                return Err(format!("a datagram under the removed key gave {err:?}"));
            }
        }
        Ok(())
    });
}

#[test]
fn an_unkeyed_node_flooded_by_strangers_admits_a_real_node_at_once() {
    let replay = std::env::var(SEED_ENV).ok();
    check_seeds(0..40, replay.as_deref(), |seed| -> Result<(), String> {
        let n = 4;
        let mut sim = cluster(n, seed, None);
        // Node 3 joins later.
        sim.crash(3);
        sim.run_for(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        let hostile = SimAddr(9);
        let flood = |sim: &mut Sim<Node<SimAddr>>, round: u64| -> Result<(), String> {
            sim.with_node(0, |node, now| {
                let wrong_incarnation = node.id().incarnation + 1;
                for k in 0..1000u64 {
                    let msg: Message<'_, SimAddr> = Message::Heartbeat(Heartbeat {
                        from: ReplicaId::new(&format!("stranger{round}-{k}"), u64::MAX - k),
                        seq: 1,
                        clock: 1,
                        want_peers: true,
                        peers: Vec::new(),
                    });
                    let to = (k % 2 == 1).then_some(wrong_incarnation);
                    let mut buf = vec![0u8; 1200];
                    let framing = Framing {
                        cluster: 0,
                        to,
                        seal: None,
                    };
                    let len = wire::encode_framed(&msg, &framing, &mut buf).unwrap();
                    let _ = node.handle_datagram(now, hostile, &buf[..len]);
                }
            })
            .map_err(|e| e.to_string())
        };
        for round in 0..3 {
            flood(&mut sim, round)?;
            sim.run_for(Duration::from_millis(100))
                .map_err(|e| e.to_string())?;
        }
        sim.restart(3);
        let t = sim.now();
        for round in 3..6 {
            flood(&mut sim, round)?;
            sim.run_for(Duration::from_millis(20))
                .map_err(|e| e.to_string())?;
        }
        let joined = sim
            .run_until_condition(
                |s| {
                    s.node(0)
                        .unwrap()
                        .peers()
                        .any(|p| p.id.name.as_ref() == "n3")
                },
                t + Duration::from_millis(200),
            )
            .map_err(|e| e.to_string())?;
        if !joined {
            return Err("the real node was not admitted within 200 ms".into());
        }
        let node = sim.node(0).unwrap();
        if node.peers().any(|p| p.id.name.starts_with("stranger")) {
            return Err("a stranger took a place in the peer table".into());
        }
        if node.stats().dropped(DropReason::NotForUs) < 2500 {
            return Err("datagrams for another incarnation not counted".into());
        }
        let t = sim.now();
        let all = model(n);
        if !sim
            .run_until_condition(|s| converged(s, &all), t + Duration::from_secs(3))
            .map_err(|e| e.to_string())?
        {
            return Err("the joined node's services did not spread".into());
        }
        Ok(())
    });
}
