//! Calls and casts between real nodes over the simulated network: routing to
//! the owner, exactly-once completion under loss, duplication and
//! reordering, large payloads, crashes, leaves, limits and timeouts.
//!
//! A failing seed is printed; replay it alone with
//! `DISPATCH_SIM_SEED=<seed> cargo test --release --test calls_sim`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dispatch_core::node::{CallError, CallId, Config, Event, Node, Request, RequestKind};
use dispatch_core::sim::{check_seeds, LinkConfig, Rng, Sim, SimAddr, SimConfig, SEED_ENV};

mod support;
use support::start;

type SimNode = Node<SimAddr>;

fn lan() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        ..LinkConfig::default()
    }
}

fn cluster(n: usize, seed: u64, link: LinkConfig, config: Config) -> Sim<SimNode> {
    let mut cfg = SimConfig::new(n, seed);
    cfg.link = link;
    Sim::new(cfg, move |i, restarts, now| {
        start(i, restarts, now, seed, config.clone(), Some(n))
    })
}

/// How the test's handlers answer requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// Reply `"<node>/<id>:" + payload` at once.
    Echo,
    /// Reply with `len` bytes derived from the request.
    Large(usize),
    /// Never reply.
    Silent,
}

/// A call's outcome as its caller heard it.
type CallResult = Result<Vec<u8>, CallError>;

/// What the application layer of every node saw.
#[derive(Default)]
struct World {
    /// Requests handed to each node's application, in order.
    requests: Vec<(usize, Request)>,
    /// Replies, per calling node and call.
    replies: BTreeMap<(usize, CallId), Vec<CallResult>>,
}

impl World {
    /// Runs `sim` for `d` in steps of one millisecond, answering every
    /// request as `handler` says.
    fn run(&mut self, sim: &mut Sim<SimNode>, d: Duration, handler: Handler) {
        let end = sim.now() + d;
        while sim.now() < end {
            sim.run_for(Duration::from_millis(1)).unwrap();
            self.drain(sim, handler);
        }
    }

    /// Runs until `done` holds or `d` passes; whether it held.
    fn run_until(
        &mut self,
        sim: &mut Sim<SimNode>,
        d: Duration,
        handler: Handler,
        done: impl Fn(&World) -> bool,
    ) -> bool {
        let end = sim.now() + d;
        while sim.now() < end {
            if done(self) {
                return true;
            }
            sim.run_for(Duration::from_millis(1)).unwrap();
            self.drain(sim, handler);
        }
        done(self)
    }

    fn drain(&mut self, sim: &mut Sim<SimNode>, handler: Handler) {
        for i in 0..sim.len() {
            for e in sim.take_events(i) {
                match e.event {
                    Event::Request(r) => {
                        if r.kind == RequestKind::Call && handler != Handler::Silent {
                            let name = format!("n{i}/{}:", r.service_id);
                            let body = match handler {
                                Handler::Large(len) => large(&r.payload, len),
                                _ => [name.as_bytes(), &r.payload].concat(),
                            };
                            if sim.is_up(i) {
                                sim.with_node(i, |n, now| n.reply(now, &r.id, &body))
                                    .unwrap()
                                    .unwrap();
                            }
                        }
                        self.requests.push((i, r));
                    }
                    Event::Reply { call, result } => {
                        self.replies.entry((i, call)).or_default().push(result)
                    }
                    _ => {}
                }
            }
        }
    }

    fn result(&self, node: usize, call: CallId) -> Option<&CallResult> {
        self.replies.get(&(node, call)).and_then(|r| r.first())
    }
}

/// `len` bytes that depend on `seed` bytes, to check large bodies byte for
/// byte.
fn large(seed: &[u8], len: usize) -> Vec<u8> {
    let s: u32 = seed.iter().map(|&b| u32::from(b)).sum();
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(s) as u8)
        .collect()
}

/// A started cluster of `n` nodes where node `k` (for each `k` in
/// `owners`) registered `uploader` instance `u{k}`, seen by every node.
fn with_uploaders(n: usize, seed: u64, link: LinkConfig, owners: &[usize]) -> Sim<SimNode> {
    with_uploaders_config(n, seed, link, owners, Config::default())
}

fn with_uploaders_config(
    n: usize,
    seed: u64,
    link: LinkConfig,
    owners: &[usize],
    config: Config,
) -> Sim<SimNode> {
    let mut sim = cluster(n, seed, link, config);
    sim.run_for(Duration::from_secs(2)).unwrap();
    for &k in owners {
        sim.with_node(k, |node, now| {
            node.add_service(now, "uploader", &format!("u{k}"), b"")
        })
        .unwrap()
        .unwrap();
    }
    let expected = owners.len();
    let seen = sim
        .run_until_condition(
            |s| {
                (0..s.len()).all(|i| {
                    // Every instance listed and routable: concurrent slot
                    // claims are settled.
                    s.node(i).is_some_and(|n| {
                        n.online_services("uploader").count() == expected
                            && n.find_multi_service(expected, "uploader", b"", false)
                                .is_ok_and(|v| v.len() == expected)
                    })
                })
            },
            sim.now() + Duration::from_secs(30),
        )
        .unwrap();
    assert!(seen, "every node sees the uploaders (seed {seed})");
    for i in 0..n {
        sim.take_events(i);
    }
    sim
}

/// `(node index, id)` of the owner of `key` as node `from` sees it.
fn owner(sim: &Sim<SimNode>, from: usize, key: &str) -> (usize, String) {
    let e = sim
        .node(from)
        .unwrap()
        .find_service("uploader", key.as_bytes(), false)
        .unwrap();
    let node: usize = e.replica().name[1..].parse().unwrap();
    (node, e.id().to_string())
}

#[test]
fn a_call_reaches_the_owner_of_its_key_and_returns_its_reply() {
    let mut sim = with_uploaders(4, 1, lan(), &[1, 2, 3]);
    let mut world = World::default();
    for key in ["file.png", "a.txt", "b.txt", "c.txt", "d.txt", "e.txt"] {
        let (owner_node, owner_id) = owner(&sim, 0, key);
        // Every node agrees on the owner.
        for i in 1..4 {
            assert_eq!(owner(&sim, i, key), (owner_node, owner_id.clone()));
        }
        let call = sim
            .with_node(0, |n, now| {
                n.call(now, "uploader", key.as_bytes(), key.as_bytes(), None)
            })
            .unwrap()
            .unwrap();
        assert!(
            world.run_until(&mut sim, Duration::from_millis(50), Handler::Echo, |w| w
                .result(0, call)
                .is_some())
        );
        let expected = format!("n{owner_node}/{owner_id}:{key}");
        assert_eq!(world.result(0, call), Some(&Ok(expected.into_bytes())));
        let (at, req) = world.requests.last().unwrap();
        assert_eq!(
            (*at, &*req.service_id, &req.payload[..]),
            (owner_node, &*owner_id, key.as_bytes())
        );
        assert_eq!(req.id.caller().name.as_ref(), "n0");
    }
    // On a quiet LAN a call is one request and one reply: nothing resent.
    assert_eq!(sim.node(0).unwrap().stats().requests_resent, 0);
}

#[test]
fn a_call_whose_owner_is_local_completes_without_the_network() {
    let mut sim = with_uploaders(2, 2, lan(), &[0]);
    let mut world = World::default();
    let before = sim.node(0).unwrap().stats().datagrams_out;
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"k", b"hi", None))
        .unwrap()
        .unwrap();
    // The request is handled, then its reply drained: two drains, no
    // time passing.
    world.drain(&mut sim, Handler::Echo);
    world.drain(&mut sim, Handler::Echo);
    assert_eq!(world.result(0, call), Some(&Ok(b"n0/u0:hi".to_vec())));
    assert_eq!(sim.node(0).unwrap().stats().datagrams_out, before);
}

#[test]
fn a_cast_reaches_the_owner_once_and_expects_no_reply() {
    let mut sim = with_uploaders(3, 3, lan(), &[1, 2]);
    let mut world = World::default();
    sim.with_node(0, |n, now| n.cast(now, "uploader", b"file.png", b"go"))
        .unwrap()
        .unwrap();
    world.run(&mut sim, Duration::from_secs(1), Handler::Echo);
    let (owner_node, _) = owner(&sim, 0, "file.png");
    assert_eq!(world.requests.len(), 1);
    assert_eq!(world.requests[0].0, owner_node);
    assert_eq!(world.requests[0].1.kind, RequestKind::Cast);
    assert!(world.replies.is_empty());
    // Acknowledged: nothing is waiting any more.
    assert_eq!(sim.node(0).unwrap().calls_in_flight().0, 0);
    // And a reply to a cast is refused.
    let id = world.requests[0].1.id.clone();
    let refused = sim
        .with_node(owner_node, |n, now| n.reply(now, &id, b"x"))
        .unwrap();
    assert_eq!(refused, Err(CallError::UnknownRequest));
}

#[test]
fn multi_call_reaches_n_distinct_instances_owner_first() {
    let mut sim = with_uploaders(5, 4, lan(), &[0, 1, 2, 3, 4]);
    let mut world = World::default();
    let calls = sim
        .with_node(0, |n, now| {
            n.multi_call(now, 3, "uploader", b"file.png", b"x", None)
        })
        .unwrap()
        .unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].0.id.as_ref(), owner(&sim, 0, "file.png").1);
    let distinct: BTreeSet<_> = calls.iter().map(|(s, _)| s.id.clone()).collect();
    assert_eq!(distinct.len(), 3);
    assert!(
        world.run_until(&mut sim, Duration::from_millis(50), Handler::Echo, |w| {
            calls.iter().all(|(_, c)| w.result(0, *c).is_some())
        })
    );
    for (service, call) in &calls {
        let expected = format!("{}/{}:x", service.node.name, service.id);
        assert_eq!(world.result(0, *call), Some(&Ok(expected.into_bytes())));
    }
    // Asking for more instances than exist reaches all of them.
    let reached = sim
        .with_node(1, |n, now| n.multi_cast(now, 9, "uploader", b"k", b"y"))
        .unwrap()
        .unwrap();
    assert_eq!(reached, 5);
    world.run(&mut sim, Duration::from_millis(50), Handler::Echo);
    let cast_targets: BTreeSet<usize> = world
        .requests
        .iter()
        .filter(|(_, r)| r.kind == RequestKind::Cast)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(cast_targets, (0..5).collect());
}

#[test]
fn errors_a_caller_can_act_on() {
    let config = Config {
        max_call_bytes: 64 << 10,
        max_outgoing_calls: 4,
        ..Config::default()
    };
    let mut sim = with_uploaders_config(3, 5, lan(), &[1], config);
    let mut world = World::default();
    // No instance of the type.
    let r = sim
        .with_node(0, |n, now| n.call(now, "resizer", b"k", b"", None))
        .unwrap();
    assert_eq!(r, Err(CallError::NoService));
    // Too large to send.
    let big = vec![7u8; (64 << 10) + 1];
    let r = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"k", &big, None))
        .unwrap();
    assert_eq!(
        r,
        Err(CallError::TooLarge {
            len: (64 << 10) + 1,
            max: 64 << 10
        })
    );
    // A timeout, when the handler never answers.
    let short = Some(Duration::from_millis(300));
    let t0 = sim.now();
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"k", b"", short))
        .unwrap()
        .unwrap();
    assert!(
        world.run_until(&mut sim, Duration::from_secs(1), Handler::Silent, |w| w
            .result(0, call)
            .is_some())
    );
    assert_eq!(world.result(0, call), Some(&Err(CallError::Timeout)));
    let waited = sim.now().saturating_duration_since(t0);
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(310));
    // Only one request reached the handler, despite the resends.
    assert_eq!(world.requests.len(), 1);
    // Too many calls in flight here.
    for _ in 0..4 {
        sim.with_node(0, |n, now| n.call(now, "uploader", b"k", b"", short))
            .unwrap()
            .unwrap();
    }
    let r = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"k", b"", None))
        .unwrap();
    assert_eq!(r, Err(CallError::Busy));
    world.run(&mut sim, Duration::from_secs(1), Handler::Silent);
    // The instance left on its node before the caller heard of it.
    sim.with_node(1, |n, now| n.remove_service(now, "uploader", "u1"))
        .unwrap()
        .unwrap();
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"k", b"", None))
        .unwrap()
        .unwrap();
    assert!(
        world.run_until(&mut sim, Duration::from_secs(1), Handler::Echo, |w| w
            .result(0, call)
            .is_some())
    );
    assert_eq!(world.result(0, call), Some(&Err(CallError::NoSuchInstance)));
    // Every call got exactly one answer.
    assert!(world.replies.values().all(|r| r.len() == 1));
}

#[test]
fn a_reply_over_the_limit_reaches_the_caller_as_an_error() {
    let config = Config {
        max_call_bytes: 8 << 10,
        ..Config::default()
    };
    let mut sim = with_uploaders_config(2, 6, lan(), &[1], config);
    let mut world = World::default();
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"k", b"", None))
        .unwrap()
        .unwrap();
    world.run(&mut sim, Duration::from_millis(5), Handler::Silent);
    let (_, req) = world.requests.pop().unwrap();
    let r = sim
        .with_node(1, |n, now| n.reply(now, &req.id, &vec![0; (8 << 10) + 1]))
        .unwrap();
    assert_eq!(
        r,
        Err(CallError::TooLarge {
            len: (8 << 10) + 1,
            max: 8 << 10
        })
    );
    assert!(
        world.run_until(&mut sim, Duration::from_millis(50), Handler::Silent, |w| w
            .result(0, call)
            .is_some())
    );
    assert_eq!(
        world.result(0, call),
        Some(&Err(CallError::TooLarge {
            len: 0,
            max: 8 << 10
        }))
    );
}

#[test]
fn large_requests_and_replies_cross_a_lossy_link_whole() {
    let link = LinkConfig {
        loss_ppm: 100_000,
        duplicate_ppm: 50_000,
        ..lan()
    };
    let mut sim = with_uploaders(2, 7, link, &[1]);
    let mut world = World::default();
    let mut calls = Vec::new();
    for k in 0..4u8 {
        let request = large(&[k], 100_000);
        let call = sim
            .with_node(0, |n, now| {
                n.call(
                    now,
                    "uploader",
                    &[k],
                    &request,
                    Some(Duration::from_secs(20)),
                )
            })
            .unwrap()
            .unwrap();
        calls.push((request, call));
    }
    assert!(world.run_until(
        &mut sim,
        Duration::from_secs(25),
        Handler::Large(300_000),
        |w| calls.iter().all(|(_, c)| w.result(0, *c).is_some())
    ));
    for (request, call) in &calls {
        assert_eq!(world.result(0, *call), Some(&Ok(large(request, 300_000))));
    }
    // Each request was reassembled byte for byte, and handled once.
    assert_eq!(world.requests.len(), 4);
    for (_, r) in &world.requests {
        assert!(calls.iter().any(|(req, _)| *req == r.payload));
    }
}

/// One seed of the lossy scenario: 4 nodes, 3 of them with instances, every
/// node calling and casting random keys over links that lose, duplicate and
/// reorder; every call completes exactly once, with the owner's reply or a
/// timeout, and no handler sees a request twice.
fn lossy_calls(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let link = LinkConfig {
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(2),
        loss_ppm: rng.below(200_001) as u32,
        duplicate_ppm: rng.below(200_001) as u32,
    };
    let mut sim = with_uploaders(4, seed, link, &[1, 2, 3]);
    let mut world = World::default();
    let mut calls: Vec<(usize, CallId, Vec<u8>)> = Vec::new();
    let mut casts = 0;
    for round in 0..40u32 {
        let from = rng.below(4) as usize;
        let key = format!("key-{}", rng.below(1000));
        let payload = format!("{seed}-{round}").into_bytes();
        if rng.chance(200_000) {
            sim.with_node(from, |n, now| {
                n.cast(now, "uploader", key.as_bytes(), &payload)
            })
            .unwrap()
            .map_err(|e| format!("cast refused: {e}"))?;
            casts += 1;
        } else {
            let (node, id) = owner(&sim, from, &key);
            let call = sim
                .with_node(from, |n, now| {
                    n.call(now, "uploader", key.as_bytes(), &payload, None)
                })
                .unwrap()
                .map_err(|e| format!("call refused: {e}"))?;
            let expected = [format!("n{node}/{id}:").as_bytes(), &payload].concat();
            calls.push((from, call, expected));
        }
        world.run(
            &mut sim,
            Duration::from_millis(rng.below(20)),
            Handler::Echo,
        );
    }
    // Every call is over within its 5 s timeout; a request first received
    // late is remembered for its budget again, plus a grace period.
    world.run(&mut sim, Duration::from_secs(12), Handler::Echo);
    let mut ok = 0;
    for (from, call, expected) in &calls {
        match world.replies.get(&(*from, *call)).map(Vec::as_slice) {
            Some([Ok(reply)]) if reply == expected => ok += 1,
            Some([Err(CallError::Timeout)]) => {}
            other => return Err(format!("call {call:?} of n{from}: {other:?}")),
        }
    }
    let handled: BTreeSet<_> = world
        .requests
        .iter()
        .map(|(i, r)| (*i, r.id.clone()))
        .collect();
    if handled.len() != world.requests.len() {
        return Err("a handler saw a request twice".into());
    }
    if world.replies.len() != calls.len() {
        return Err(format!(
            "{} replies for {} calls",
            world.replies.len(),
            calls.len()
        ));
    }
    let cast_count = world
        .requests
        .iter()
        .filter(|(_, r)| r.kind == RequestKind::Cast)
        .count();
    if cast_count > casts {
        return Err(format!("{cast_count} casts handled, {casts} sent"));
    }
    // With at most 20% loss and 5 s to retry, nearly every call gets through.
    if ok * 10 < calls.len() * 9 {
        return Err(format!("only {ok} of {} calls completed", calls.len()));
    }
    for i in 0..4 {
        if sim.node(i).unwrap().calls_in_flight() != (0, 0) {
            return Err(format!(
                "n{i} still holds {:?} calls",
                sim.node(i).unwrap().calls_in_flight()
            ));
        }
    }
    Ok(())
}

#[test]
fn calls_under_loss_duplication_and_reordering_complete_exactly_once() {
    let seeds = std::env::var("DISPATCH_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);
    let replay = std::env::var(SEED_ENV).ok();
    assert!(check_seeds(0..seeds, replay.as_deref(), lossy_calls) >= 1);
}

#[test]
fn a_call_to_an_owner_that_crashes_fails_once_the_node_is_down() {
    let mut sim = with_uploaders(3, 8, lan(), &[1, 2]);
    let mut world = World::default();
    let (owner_node, _) = owner(&sim, 0, "file.png");
    let long = Some(Duration::from_secs(60));
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"file.png", b"", long))
        .unwrap()
        .unwrap();
    // The default timeout is shorter than the down period: a timeout.
    let short = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"file.png", b"", None))
        .unwrap()
        .unwrap();
    world.run(&mut sim, Duration::from_millis(5), Handler::Silent);
    sim.crash(owner_node);
    let t0 = sim.now();
    assert!(
        world.run_until(&mut sim, Duration::from_secs(15), Handler::Silent, |w| w
            .result(0, call)
            .is_some())
    );
    assert_eq!(world.result(0, call), Some(&Err(CallError::NodeDown)));
    assert!(sim.now().saturating_duration_since(t0) < Duration::from_secs(12));
    assert_eq!(world.result(0, short), Some(&Err(CallError::Timeout)));
    // New calls for the key go to the surviving owner.
    let (new_owner, _) = owner(&sim, 0, "file.png");
    assert_ne!(new_owner, owner_node);
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"file.png", b"", None))
        .unwrap()
        .unwrap();
    assert!(
        world.run_until(&mut sim, Duration::from_millis(50), Handler::Echo, |w| w
            .result(0, call)
            .is_some())
    );
    assert!(world.result(0, call).unwrap().is_ok());
}

#[test]
fn after_an_owner_leaves_its_keys_go_to_the_new_owner_at_once() {
    let mut sim = with_uploaders(3, 9, lan(), &[1, 2]);
    let mut world = World::default();
    let (owner_node, _) = owner(&sim, 0, "file.png");
    let pending = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"file.png", b"", None))
        .unwrap()
        .unwrap();
    world.run(&mut sim, Duration::from_millis(5), Handler::Silent);
    sim.with_node(owner_node, |n, now| n.leave(now)).unwrap();
    let t0 = sim.now();
    assert!(
        world.run_until(&mut sim, Duration::from_millis(50), Handler::Echo, |w| w
            .result(0, pending)
            .is_some())
    );
    assert_eq!(world.result(0, pending), Some(&Err(CallError::NodeDown)));
    assert!(sim.now().saturating_duration_since(t0) < Duration::from_millis(10));
    let (new_owner, _) = owner(&sim, 0, "file.png");
    assert_ne!(new_owner, owner_node);
    let call = sim
        .with_node(0, |n, now| n.call(now, "uploader", b"file.png", b"", None))
        .unwrap()
        .unwrap();
    assert!(
        world.run_until(&mut sim, Duration::from_millis(50), Handler::Echo, |w| w
            .result(0, call)
            .is_some())
    );
    let (at, _) = world.requests.last().unwrap();
    assert_eq!(*at, new_owner);
}

#[test]
fn over_a_reliable_transport_nothing_is_acknowledged_or_resent() {
    let config = Config {
        reliable_transport: true,
        ..Config::default()
    };
    let mut sim = with_uploaders_config(2, 10, lan(), &[1], config);
    let mut world = World::default();
    let mut calls = Vec::new();
    for k in 0..20u8 {
        let call = sim
            .with_node(0, |n, now| n.call(now, "uploader", &[k], &[k], None))
            .unwrap()
            .unwrap();
        calls.push(call);
        sim.with_node(0, |n, now| n.cast(now, "uploader", &[k], &[k]))
            .unwrap()
            .unwrap();
    }
    assert!(
        world.run_until(&mut sim, Duration::from_millis(100), Handler::Echo, |w| {
            calls.iter().all(|c| w.result(0, *c).is_some())
        })
    );
    world.run(&mut sim, Duration::from_secs(2), Handler::Echo);
    assert!(calls.iter().all(|c| world.result(0, *c).unwrap().is_ok()));
    assert_eq!(world.requests.len(), 40);
    let (caller, callee) = (sim.node(0).unwrap(), sim.node(1).unwrap());
    assert_eq!(caller.stats().requests_resent, 0);
    assert_eq!(caller.calls_in_flight(), (0, 0));
    assert_eq!(callee.calls_in_flight(), (0, 0));
}
