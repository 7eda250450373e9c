//! The simulated network: determinism, link behaviour, partitions, crashes,
//! virtual time, the stall guard and the seed helper, checked with small toy
//! endpoints.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use dispatch_core::sim::{
    check_seeds, run_seeds, Endpoint, LinkConfig, Sim, SimAddr, SimConfig, SimError, SEED_ENV,
};
use dispatch_core::time::Instant;
use dispatch_core::transmit::{Destination, Transmit};

// ---------------------------------------------------------------------------
// Probe: sends numbered, timestamped datagrams on a schedule and logs what it
// receives, so tests can measure the network itself.

/// A datagram a probe received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Got {
    from: SimAddr,
    seq: u64,
    sent_at: Instant,
    len: usize,
}

/// Every `period`, send `burst` datagrams of `size` bytes to `dest`, for
/// `ticks` periods.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    dest: Destination<SimAddr>,
    period: Duration,
    burst: u64,
    size: usize,
    ticks: u64,
}

#[derive(Debug, Default)]
struct Probe {
    schedule: Option<Schedule>,
    next_tick: Option<Instant>,
    ticks: u64,
    seq: u64,
    outbox: VecDeque<(Destination<SimAddr>, usize, u64, Instant)>,
    inbox: VecDeque<Got>,
}

impl Probe {
    /// A probe created at `now` that follows `schedule` from then on.
    fn with_schedule(now: Instant, schedule: Schedule) -> Self {
        Probe {
            schedule: Some(schedule),
            next_tick: Some(now + schedule.period),
            ..Probe::default()
        }
    }

    fn send(&mut self, now: Instant, dest: Destination<SimAddr>, size: usize) {
        self.outbox.push_back((dest, size, self.seq, now));
        self.seq += 1;
    }
}

impl Endpoint for Probe {
    type Addr = SimAddr;
    type Event = Got;

    fn handle_datagram(&mut self, _now: Instant, from: SimAddr, data: &[u8]) {
        let seq = u64::from_le_bytes(data[..8].try_into().unwrap());
        let sent_at = Instant::from_micros(u64::from_le_bytes(data[8..16].try_into().unwrap()));
        self.inbox.push_back(Got {
            from,
            seq,
            sent_at,
            len: data.len(),
        });
    }

    fn handle_timeout(&mut self, now: Instant) {
        let (Some(s), Some(t)) = (self.schedule, self.next_tick) else {
            return;
        };
        if now < t {
            return;
        }
        self.ticks += 1;
        for _ in 0..s.burst {
            self.send(now, s.dest, s.size);
        }
        self.next_tick = (self.ticks < s.ticks).then(|| t + s.period);
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit<SimAddr>> {
        let (destination, len, seq, at) = self.outbox.pop_front()?;
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..16].copy_from_slice(&at.as_micros().to_le_bytes());
        buf[16..len].fill(0xAB);
        Some(Transmit { destination, len })
    }

    fn poll_event(&mut self) -> Option<Got> {
        self.inbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }
}

/// A simulation where node 0 follows `schedule` and the others only listen.
fn probe_sim(config: SimConfig, schedule: Schedule) -> Sim<Probe> {
    Sim::new(config, move |i, _, now| {
        if i == 0 {
            Probe::with_schedule(now, schedule)
        } else {
            Probe::default()
        }
    })
}

fn to(i: u16) -> Destination<SimAddr> {
    Destination::Peer(SimAddr(i))
}

fn received(sim: &Sim<Probe>, i: usize) -> Vec<Got> {
    sim.events(i).iter().map(|e| e.event).collect()
}

// ---------------------------------------------------------------------------
// Gossip: floods the largest value it knows, acks what it hears, and resends
// on a timer to peers that have not acked. A (re)started node says hello so
// that its peers' acks bring it up to date.

#[derive(Debug)]
struct Gossip {
    me: usize,
    n: usize,
    value: u64,
    acked: Vec<u64>,
    outbox: VecDeque<(usize, u8, u64)>,
    adopted: VecDeque<u64>,
    next_resend: Instant,
}

const VALUE: u8 = 0;
const ACK: u8 = 1;
const RESEND: Duration = Duration::from_millis(50);

impl Gossip {
    fn new(me: usize, n: usize, now: Instant) -> Self {
        let mut g = Gossip {
            me,
            n,
            value: 0,
            acked: vec![0; n],
            outbox: VecDeque::new(),
            adopted: VecDeque::new(),
            next_resend: now + RESEND,
        };
        for p in g.peers() {
            g.outbox.push_back((p, VALUE, 0));
        }
        g
    }

    fn peers(&self) -> impl Iterator<Item = usize> {
        let me = self.me;
        (0..self.n).filter(move |&p| p != me)
    }

    fn set(&mut self, v: u64) {
        if v > self.value {
            self.value = v;
            self.adopted.push_back(v);
            for p in self.peers().collect::<Vec<_>>() {
                self.outbox.push_back((p, VALUE, v));
            }
        }
    }
}

impl Endpoint for Gossip {
    type Addr = SimAddr;
    type Event = u64;

    fn handle_datagram(&mut self, _now: Instant, from: SimAddr, data: &[u8]) {
        let [kind, rest @ ..] = data else { return };
        let Ok(bytes) = <[u8; 8]>::try_from(rest) else {
            return;
        };
        let v = u64::from_le_bytes(bytes);
        let p = from.index();
        self.acked[p] = self.acked[p].max(v);
        self.set(v);
        if *kind == VALUE {
            self.outbox.push_back((p, ACK, self.value));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_resend {
            return;
        }
        self.next_resend = now + RESEND;
        for p in self.peers().collect::<Vec<_>>() {
            if self.acked[p] < self.value {
                self.outbox.push_back((p, VALUE, self.value));
            }
        }
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit<SimAddr>> {
        let (p, kind, v) = self.outbox.pop_front()?;
        buf[0] = kind;
        buf[1..9].copy_from_slice(&v.to_le_bytes());
        Some(Transmit {
            destination: Destination::Peer(SimAddr(p as u16)),
            len: 9,
        })
    }

    fn poll_event(&mut self) -> Option<u64> {
        self.adopted.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_resend)
    }
}

fn gossip_sim(config: SimConfig) -> Sim<Gossip> {
    let n = config.nodes;
    Sim::new(config, move |i, _, now| Gossip::new(i, n, now))
}

fn lossy(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(8, seed);
    config.link = LinkConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        loss_ppm: 200_000,
        duplicate_ppm: 50_000,
    };
    config
}

/// Everything observable about a run: each node's events with their times
/// and its counters.
fn transcript(sim: &Sim<Gossip>) -> Vec<String> {
    (0..sim.len())
        .map(|i| format!("{:?} {:?}", sim.events(i), sim.stats(i)))
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn same_seed_replays_the_same_run_and_another_seed_does_not() {
    let run = |seed| {
        let mut sim = gossip_sim(lossy(seed));
        sim.run_for(Duration::from_millis(3)).unwrap();
        sim.with_node(2, |g, _| g.set(7)).unwrap();
        sim.partition(&[0, 1], &[5, 6, 7]);
        sim.run_for(Duration::from_millis(200)).unwrap();
        sim.crash(3);
        sim.heal();
        sim.with_node(6, |g, _| g.set(9)).unwrap();
        sim.run_for(Duration::from_millis(100)).unwrap();
        sim.restart(3);
        sim.run_for(Duration::from_secs(1)).unwrap();
        assert_eq!(sim.seed(), seed);
        transcript(&sim)
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12));
}

#[test]
fn loss_and_duplication_rates_stay_within_bounds() {
    let mut config = SimConfig::new(2, 3);
    config.link.loss_ppm = 100_000;
    config.link.duplicate_ppm = 50_000;
    config.link.jitter = Duration::from_micros(300);
    let schedule = Schedule {
        dest: to(1),
        period: Duration::from_millis(1),
        burst: 200,
        size: 100,
        ticks: 200,
    };
    let mut sim = probe_sim(config, schedule);
    sim.run_for(Duration::from_secs(1)).unwrap();

    let sent = *sim.stats(0);
    assert_eq!(sent.transmits, 40_000);
    assert_eq!(sent.sent_datagrams, 40_000);
    assert_eq!(sent.sent_bytes, 4_000_000);
    let loss = sent.dropped.loss as f64 / 40_000.0;
    assert!((0.09..0.11).contains(&loss), "loss rate {loss}");
    let not_lost = 40_000 - sent.dropped.loss;
    let dup = sent.duplicated as f64 / not_lost as f64;
    assert!((0.04..0.06).contains(&dup), "duplication rate {dup}");
    assert_eq!(sent.dropped.total(), sent.dropped.loss);

    assert_eq!(sim.in_flight(), 0);
    let got = sim.stats(1);
    assert_eq!(got.received_datagrams, not_lost + sent.duplicated);
    assert_eq!(got.received_bytes, 100 * got.received_datagrams);
    assert_eq!(received(&sim, 1).len() as u64, got.received_datagrams);
}

#[test]
fn delays_stay_within_latency_plus_or_minus_jitter_and_reorder() {
    let mut config = SimConfig::new(2, 5);
    config.link.latency = Duration::from_millis(5);
    config.link.jitter = Duration::from_millis(2);
    let schedule = Schedule {
        dest: to(1),
        period: Duration::from_micros(100),
        burst: 1,
        size: 16,
        ticks: 5_000,
    };
    let mut sim = probe_sim(config, schedule);
    sim.run_for(Duration::from_secs(2)).unwrap();

    let events = sim.events(1);
    assert_eq!(events.len(), 5_000);
    let delays: Vec<u64> = events
        .iter()
        .map(|e| (e.at - e.event.sent_at).as_micros() as u64)
        .collect();
    assert!(delays.iter().all(|d| (3_000..=7_000).contains(d)));
    assert!(
        *delays.iter().min().unwrap() < 3_100,
        "jitter reaches -2 ms"
    );
    assert!(
        *delays.iter().max().unwrap() > 6_900,
        "jitter reaches +2 ms"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.event.seq).collect();
    assert!(seqs.windows(2).any(|w| w[0] > w[1]), "jitter reorders");
}

#[test]
fn without_jitter_delay_is_exact_and_order_kept_and_links_can_differ() {
    let mut config = SimConfig::new(3, 5);
    config.link.latency = Duration::from_millis(2);
    let schedule = Schedule {
        dest: Destination::Broadcast,
        period: Duration::from_micros(10),
        burst: 3,
        size: 16,
        ticks: 100,
    };
    let mut sim = probe_sim(config, schedule);
    let slow = LinkConfig {
        latency: Duration::from_millis(30),
        ..LinkConfig::default()
    };
    sim.set_link(0, 2, Some(slow));
    sim.run_for(Duration::from_millis(100)).unwrap();

    for (node, delay) in [(1, 2_000), (2, 30_000)] {
        let events = sim.events(node);
        assert_eq!(events.len(), 300);
        assert!(events
            .iter()
            .all(|e| (e.at - e.event.sent_at).as_micros() == delay));
        let seqs: Vec<u64> = events.iter().map(|e| e.event.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn one_way_block_stops_one_direction_only_until_healed() {
    let config = SimConfig::new(2, 1);
    let mut sim = Sim::new(config, |_, _, _| Probe::default());
    sim.block(&[0], &[1]);
    for _ in 0..10 {
        sim.with_node(0, |p, now| p.send(now, to(1), 16)).unwrap();
        sim.with_node(1, |p, now| p.send(now, to(0), 16)).unwrap();
    }
    sim.run_for(Duration::from_millis(10)).unwrap();
    assert!(sim.events(1).is_empty());
    assert_eq!(sim.events(0).len(), 10);
    assert_eq!(sim.stats(0).sent_datagrams, 10);
    assert_eq!(sim.stats(0).dropped.partition, 10);
    assert_eq!(sim.stats(1).dropped.partition, 0);

    // Datagrams already in flight when a partition starts still arrive.
    sim.heal();
    sim.with_node(0, |p, now| p.send(now, to(1), 16)).unwrap();
    sim.partition(&[0], &[1]);
    sim.with_node(1, |p, now| p.send(now, to(0), 16)).unwrap();
    sim.run_for(Duration::from_millis(10)).unwrap();
    assert_eq!(sim.events(1).len(), 1);
    assert_eq!(sim.events(0).len(), 10);
    assert_eq!(sim.stats(1).dropped.partition, 1);

    sim.heal();
    sim.with_node(1, |p, now| p.send(now, to(0), 16)).unwrap();
    sim.run_for(Duration::from_millis(10)).unwrap();
    assert_eq!(sim.events(0).len(), 11);
}

#[test]
fn broadcast_sends_one_copy_to_every_other_live_node() {
    let mut sim = Sim::new(SimConfig::new(4, 1), |_, _, _| Probe::default());
    sim.crash(2);
    sim.with_node(0, |p, now| p.send(now, Destination::Broadcast, 40))
        .unwrap();
    sim.run_for(Duration::from_millis(5)).unwrap();
    assert!(sim.events(0).is_empty());
    assert!(sim.events(2).is_empty());
    for i in [1, 3] {
        assert_eq!(received(&sim, i).len(), 1);
        assert_eq!(received(&sim, i)[0].from, SimAddr(0));
    }
    let s = sim.stats(0);
    assert_eq!((s.transmits, s.sent_datagrams, s.sent_bytes), (1, 2, 80));
    assert_eq!(s.dropped.total(), 0);
}

#[test]
fn crash_drops_traffic_and_restart_calls_the_factory_with_the_next_count() {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&calls);
    let schedule = Schedule {
        dest: to(0),
        period: Duration::from_millis(1),
        burst: 1,
        size: 16,
        ticks: u64::MAX,
    };
    let mut config = SimConfig::new(2, 9);
    config.link.latency = Duration::from_millis(3);
    let mut sim = Sim::new(config, move |i, restarts, now| {
        log.borrow_mut().push((i, restarts, now));
        if i == 1 {
            Probe::with_schedule(now, schedule)
        } else {
            Probe::default()
        }
    });
    assert_eq!(
        *calls.borrow(),
        [(0, 0, Instant::ZERO), (1, 0, Instant::ZERO)]
    );

    sim.run_until(Instant::from_micros(10_500)).unwrap();
    assert_eq!(received(&sim, 0).len(), 7, "sent at 1..=10 ms, 3 ms away");
    assert_eq!(sim.in_flight(), 3);
    sim.crash(1);
    assert!(!sim.is_up(1) && sim.node(1).is_none());
    assert_eq!(sim.in_flight(), 0, "its in-flight datagrams are lost");
    assert_eq!(sim.stats(1).dropped.crashed, 3);
    assert_eq!(sim.with_node(1, |_, _| ()), Err(SimError::NodeDown(1)));

    // Node 1 is silent and datagrams to it are dropped.
    sim.with_node(0, |p, now| p.send(now, to(1), 16)).unwrap();
    sim.run_until(Instant::from_millis(100)).unwrap();
    assert_eq!(received(&sim, 0).len(), 7);
    assert_eq!(sim.stats(0).dropped.crashed, 1);
    sim.crash(1);
    assert_eq!(sim.restarts(1), 0, "crashing a down node does nothing");

    // Datagrams sent to it while down but arriving after its restart arrive.
    sim.with_node(0, |p, now| p.send(now, to(1), 16)).unwrap();
    sim.restart(1);
    assert_eq!(calls.borrow()[2], (1, 1, Instant::from_millis(100)));
    assert_eq!(sim.restarts(1), 1);
    sim.run_until(Instant::from_micros(105_500)).unwrap();
    assert_eq!(received(&sim, 1).len(), 1);
    let from_restarted = &received(&sim, 0)[7..];
    assert_eq!(from_restarted.len(), 2, "ticks at 101 and 102 ms arrived");
    assert_eq!(sim.in_flight(), 3, "ticks at 103, 104 and 105 ms");
    assert!(from_restarted.iter().all(|g| g.from == SimAddr(1)));
    assert_eq!(from_restarted[0].seq, 0, "a fresh endpoint");

    // Restarting a live node crashes it first.
    sim.restart(1);
    assert_eq!(calls.borrow()[3], (1, 2, Instant::from_micros(105_500)));
    assert_eq!(sim.stats(1).dropped.crashed, 6);
}

#[test]
fn an_hour_of_virtual_time_takes_no_real_time() {
    let wall = std::time::Instant::now();
    let schedule = Schedule {
        dest: to(1),
        period: Duration::from_secs(1),
        burst: 1,
        size: 16,
        ticks: u64::MAX,
    };
    let mut sim = probe_sim(SimConfig::new(2, 1), schedule);
    sim.run_for(Duration::from_secs(3600)).unwrap();
    assert_eq!(sim.now(), Instant::from_millis(3_600_000));
    assert_eq!(sim.node(0).unwrap().ticks, 3600);
    assert_eq!(
        sim.stats(1).received_datagrams,
        3599,
        "the last is in flight"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "{:?}",
        wall.elapsed()
    );
}

#[test]
fn run_until_condition_stops_when_it_holds_or_at_the_deadline() {
    let schedule = Schedule {
        dest: to(1),
        period: Duration::from_millis(10),
        burst: 1,
        size: 16,
        ticks: 5,
    };
    let mut sim = probe_sim(SimConfig::new(2, 1), schedule);
    let third = |s: &Sim<Probe>| s.events(1).len() >= 3;
    assert!(sim
        .run_until_condition(third, Instant::from_millis(1000))
        .unwrap());
    assert_eq!(sim.now(), Instant::from_millis(31));
    let tenth = |s: &Sim<Probe>| s.events(1).len() >= 10;
    assert!(!sim
        .run_until_condition(tenth, Instant::from_millis(500))
        .unwrap());
    assert_eq!(sim.now(), Instant::from_millis(500));
    assert_eq!(sim.events(1).len(), 5);
}

/// An endpoint that may have a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stuck {
    /// No bug: waits for input.
    Quiet,
    /// Asks to be woken at 2 ms, and keeps asking after it was.
    WakeAtTwoMillisForever,
    /// Never runs out of transmits.
    EndlessTransmits,
}

impl Endpoint for Stuck {
    type Addr = SimAddr;
    type Event = ();
    fn handle_datagram(&mut self, _: Instant, _: SimAddr, _: &[u8]) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<Transmit<SimAddr>> {
        (*self == Stuck::EndlessTransmits).then_some(Transmit {
            destination: Destination::Peer(SimAddr(0)),
            len: 1,
        })
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (*self == Stuck::WakeAtTwoMillisForever).then_some(Instant::from_millis(2))
    }
}

#[test]
fn a_livelocked_endpoint_is_reported_not_waited_on() {
    let mut config = SimConfig::new(3, 1);
    config.max_steps_per_instant = 1_000;
    let mut sim = Sim::new(config, |i, _, _| {
        if i == 1 {
            Stuck::WakeAtTwoMillisForever
        } else {
            Stuck::Quiet
        }
    });
    let err = sim.run_for(Duration::from_secs(10)).unwrap_err();
    assert_eq!(
        err,
        SimError::Stalled {
            at: Instant::from_millis(2),
            node: 1
        }
    );
    assert_eq!(sim.now(), Instant::from_millis(2));
    assert_eq!(sim.error(), Some(err));
    assert_eq!(
        sim.run_for(Duration::from_secs(1)),
        Err(err),
        "it stays stopped"
    );
    assert_eq!(sim.with_node(0, |_, _| ()), Err(err));
    assert!(err.to_string().contains("node 1"));

    let mut sim = Sim::new(SimConfig::new(1, 1), |_, _, _| Stuck::EndlessTransmits);
    let err = sim.run_for(Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        err,
        SimError::Stalled {
            at: Instant::ZERO,
            node: 0
        }
    );
}

#[test]
fn datagrams_over_the_mtu_or_to_no_node_are_counted_and_dropped() {
    let mut config = SimConfig::new(2, 1);
    config.mtu = 512;
    let mut sim = Sim::new(config, |_, _, _| Probe::default());
    sim.with_node(0, |p, now| {
        p.send(now, to(1), 512);
        p.send(now, to(1), 513);
        p.send(now, Destination::Broadcast, 2000);
        p.send(now, to(7), 16);
    })
    .unwrap();
    sim.run_for(Duration::from_millis(5)).unwrap();
    let got = received(&sim, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len, 512);
    let s = sim.stats(0);
    assert_eq!(s.transmits, 4);
    assert_eq!(s.dropped.oversize, 2);
    assert_eq!(s.dropped.no_route, 1);
    assert_eq!(sim.total_stats().dropped.oversize, 2);
}

#[test]
fn the_seed_helper_names_the_failing_seed_and_replays_one() {
    let mut ran = Vec::new();
    let failure = run_seeds(0..100, None, |seed| {
        ran.push(seed);
        if seed == 7 {
            Err(format!("value diverged on node {}", seed % 3))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!(ran, (0..=7).collect::<Vec<_>>(), "stops at the failure");
    assert_eq!(failure.seed, 7);
    let message = failure.to_string();
    assert!(
        message.contains("seed 7: value diverged on node 1"),
        "{message}"
    );
    assert!(message.contains(&format!("{SEED_ENV}=7")), "{message}");

    let mut ran = Vec::new();
    let passed = run_seeds(0..100, Some("42"), |seed| {
        ran.push(seed);
        Ok::<(), String>(())
    });
    assert_eq!((passed, ran), (Ok(1), vec![42]));
    assert_eq!(check_seeds(5..15, None, |_| Ok::<(), String>(())), 10);
}

#[test]
#[should_panic(expected = "replay only this seed with DISPATCH_SIM_SEED=3")]
fn check_seeds_panics_with_the_replay_command() {
    check_seeds(
        0..10,
        None,
        |seed| if seed == 3 { Err("boom") } else { Ok(()) },
    );
}

/// The toy gossip converges after partitions heal, under 20% loss, jitter and
/// duplication, with a crash and a restart, over many seeds.
#[test]
fn gossip_converges_after_heal_over_many_seeds() {
    let replay = std::env::var(SEED_ENV).ok();
    let passed = check_seeds(0..300, replay.as_deref(), |seed| {
        let mut sim = gossip_sim(lossy(seed));
        sim.partition(&[0, 1, 2], &[3, 4, 5, 6, 7]);
        sim.block(&[3], &[4]);
        sim.with_node(1, |g, _| g.set(10))
            .map_err(|e| e.to_string())?;
        sim.with_node(6, |g, _| g.set(20))
            .map_err(|e| e.to_string())?;
        sim.run_for(Duration::from_millis(300))
            .map_err(|e| e.to_string())?;
        if sim.node(0).unwrap().value != 10 || sim.node(4).unwrap().value != 20 {
            return Err("each side should agree on its own value".into());
        }
        sim.crash(5);
        sim.heal();
        sim.run_for(Duration::from_millis(100))
            .map_err(|e| e.to_string())?;
        sim.restart(5);
        let all = |s: &Sim<Gossip>| (0..s.len()).all(|i| s.node(i).unwrap().value == 20);
        let deadline = sim.now() + Duration::from_secs(2);
        if !sim
            .run_until_condition(all, deadline)
            .map_err(|e| e.to_string())?
        {
            let values: Vec<u64> = (0..8).map(|i| sim.node(i).unwrap().value).collect();
            return Err(format!("no convergence by {deadline:?}: {values:?}"));
        }
        if sim.total_stats().dropped.oversize != 0 {
            return Err("oversize datagrams".into());
        }
        Ok(())
    });
    assert!(passed >= 1);
}
