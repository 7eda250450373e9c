//! The simulation itself: nodes, the network between them, and virtual time.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use core::fmt;
use core::time::Duration;

use super::config::{LinkConfig, SimConfig};
use super::endpoint::{Endpoint, SimAddr};
use super::stats::NodeStats;
use crate::rng::Rng;
use crate::time::{duration_micros, Instant};
use crate::transmit::{Destination, Transmit};

/// Size of the buffer lent to `poll_transmit`: the largest UDP payload, so
/// that a node writing more than the MTU is caught and counted rather than
/// truncated.
const TX_BUF_LEN: usize = 65_535;

/// Why a simulation run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// More than [`SimConfig::max_steps_per_instant`] inputs, or outputs
    /// from one drain, at the instant `at`: the endpoint at `node` (the one
    /// being fed when the bound was crossed) keeps time from advancing, for
    /// example by returning a deadline `<= now` forever. The simulation is
    /// stopped: every later run returns this error again.
    Stalled {
        /// The instant time could not leave.
        at: Instant,
        /// Index of the node being fed when the bound was crossed.
        node: usize,
    },
    /// [`Sim::with_node`] was asked for a node that is crashed. Nothing
    /// changed.
    NodeDown(usize),
}

/// An event a node emitted, with the virtual time it was drained at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent<V> {
    /// When the event was drained from the node.
    pub at: Instant,
    /// The event.
    pub event: V,
}

/// Creates the endpoint of node `index` for its `restarts`-th start (0 for
/// the first) at `now`.
type Factory<E> = Box<dyn FnMut(usize, u32, Instant) -> E>;

/// N endpoints over a simulated network in virtual time.
///
/// Every random choice (loss, duplication, delay) comes from one [`Rng`]
/// seeded by [`SimConfig::seed`], every queue is ordered by time and then by
/// a sequence number, so the same seed and the same test give the same run,
/// event for event. Nothing sleeps: a run jumps from one event (a delivery
/// or a node's deadline) to the next.
///
/// After every input to a node (a datagram, a timeout, a call through
/// [`with_node`](Sim::with_node), its creation) the simulator drains all of
/// its transmits onto the network and its events into a per-node log, then
/// reads its next deadline.
pub struct Sim<E: Endpoint<Addr = SimAddr>> {
    config: SimConfig,
    factory: Factory<E>,
    nodes: Vec<Node<E>>,
    now: Instant,
    rng: Rng,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    /// `(deadline, node)` of every live node that has one.
    timers: BTreeSet<(Instant, usize)>,
    /// Live nodes created or restarted but not yet drained.
    fresh: BTreeSet<usize>,
    /// Directed `(from, to)` pairs a partition blocks.
    blocked: BTreeSet<(usize, usize)>,
    links: BTreeMap<(usize, usize), LinkConfig>,
    next_seq: u64,
    steps_this_instant: u32,
    failed: Option<SimError>,
    tx_buf: Vec<u8>,
}

struct Node<E: Endpoint> {
    endpoint: Option<E>,
    restarts: u32,
    deadline: Option<Instant>,
    events: Vec<TimedEvent<E::Event>>,
    stats: NodeStats,
}

struct InFlight {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    data: Vec<u8>,
}

impl<E: Endpoint<Addr = SimAddr>> Sim<E> {
    /// A simulation of `config.nodes` nodes at time zero, node `i` created by
    /// `factory(i, 0, Instant::ZERO)`. A restart of node `i` calls
    /// `factory(i, restarts, now)` with `restarts` counting from 1.
    ///
    /// The nodes' first outputs are drained when the simulation first runs
    /// (or a node is first used through [`with_node`](Sim::with_node)).
    ///
    /// # Panics
    /// If `config.nodes` exceeds 65,536, the number of [`SimAddr`]s.
    pub fn new(config: SimConfig, factory: impl FnMut(usize, u32, Instant) -> E + 'static) -> Self {
        assert!(
            config.nodes <= usize::from(u16::MAX) + 1,
            "a simulation has at most 65,536 nodes"
        );
        let mut factory: Factory<E> = Box::new(factory);
        let nodes = (0..config.nodes)
            .map(|i| Node {
                endpoint: Some(factory(i, 0, Instant::ZERO)),
                restarts: 0,
                deadline: None,
                events: Vec::new(),
                stats: NodeStats::default(),
            })
            .collect();
        Sim {
            rng: Rng::new(config.seed),
            fresh: (0..config.nodes).collect(),
            config,
            factory,
            nodes,
            now: Instant::ZERO,
            in_flight: BinaryHeap::new(),
            timers: BTreeSet::new(),
            blocked: BTreeSet::new(),
            links: BTreeMap::new(),
            next_seq: 0,
            steps_this_instant: 0,
            failed: None,
            tx_buf: vec![0; TX_BUF_LEN],
        }
    }

    /// Processes every delivery and deadline up to and including `t`, then
    /// sets the clock to `t` (if later than now).
    pub fn run_until(&mut self, t: Instant) -> Result<(), SimError> {
        self.start_run()?;
        while let Some(next) = self.next_event_time() {
            if next > t {
                break;
            }
            self.step()?;
        }
        self.advance_to(t);
        Ok(())
    }

    /// [`run_until`](Sim::run_until) `now + d`.
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        self.run_until(self.now + d)
    }

    /// Runs until `pred` holds or `deadline` passes, and returns whether it
    /// held. `pred` is checked before the first event and after each one; on
    /// `true` the clock stays at the event that made it hold, on `false` it
    /// ends at `deadline`.
    pub fn run_until_condition(
        &mut self,
        mut pred: impl FnMut(&Self) -> bool,
        deadline: Instant,
    ) -> Result<bool, SimError> {
        self.start_run()?;
        if pred(self) {
            return Ok(true);
        }
        while let Some(next) = self.next_event_time() {
            if next > deadline {
                break;
            }
            self.step()?;
            if pred(self) {
                return Ok(true);
            }
        }
        self.advance_to(deadline);
        Ok(pred(self))
    }

    /// Calls `f` with node `i`'s endpoint and the current time (a local
    /// command, such as registering a service or leaving gracefully), then
    /// drains the node's outputs. Fails without calling `f` if the node is
    /// down or the simulation has stopped.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn with_node<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut E, Instant) -> R,
    ) -> Result<R, SimError> {
        self.start_run()?;
        if self.nodes[i].endpoint.is_none() {
            return Err(SimError::NodeDown(i));
        }
        let mut out = None;
        self.feed(i, |ep, now| out = Some(f(ep, now)))?;
        Ok(out.expect("feed calls the input on a live node, checked above"))
    }

    /// Crashes node `i`: its endpoint is dropped with its deadline, datagrams
    /// it sent that are still in flight are lost (counted as
    /// [`Drops::crashed`](super::Drops::crashed)), and datagrams reaching it
    /// while it is down are dropped. Its events and counters stay readable.
    /// Does nothing if it is already down.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.endpoint.take().is_none() {
            return;
        }
        if let Some(d) = node.deadline.take() {
            self.timers.remove(&(d, i));
        }
        self.fresh.remove(&i);
        let before = self.in_flight.len();
        self.in_flight.retain(|Reverse(p)| p.from != i);
        node.stats.dropped.crashed += (before - self.in_flight.len()) as u64;
    }

    /// Restarts node `i` with a new endpoint from the factory, called with
    /// the node's restart count (1 for the first restart) and the current
    /// time; the node keeps its address. A live node is
    /// [crashed](Sim::crash) first. Its first outputs are drained when the
    /// simulation next runs.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn restart(&mut self, i: usize) {
        self.crash(i);
        let node = &mut self.nodes[i];
        node.restarts += 1;
        node.endpoint = Some((self.factory)(i, node.restarts, self.now));
        self.fresh.insert(i);
    }

    /// Blocks every datagram from any node of `from` to any node of `to`,
    /// one way, from now until [`heal`](Sim::heal). Datagrams already in
    /// flight still arrive.
    pub fn block(&mut self, from: &[usize], to: &[usize]) {
        for &a in from {
            for &b in to {
                self.blocked.insert((a, b));
            }
        }
    }

    /// Blocks traffic between `a` and `b` both ways (a partition).
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        self.block(a, b);
        self.block(b, a);
    }

    /// Removes every partition and one-way block.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Sets how the link from `from` to `to` (one direction) behaves, or with
    /// `None` returns it to [`SimConfig::link`]. Applies to datagrams sent
    /// from now on.
    pub fn set_link(&mut self, from: usize, to: usize, link: Option<LinkConfig>) {
        match link {
            Some(l) => self.links.insert((from, to), l),
            None => self.links.remove(&(from, to)),
        };
    }

    /// Changes how every link without an override behaves, for datagrams
    /// sent from now on (for example to stop the loss before checking
    /// convergence).
    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.config.link = link;
    }

    /// Removes and returns the events node `i` has emitted so far.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn take_events(&mut self, i: usize) -> Vec<TimedEvent<E::Event>> {
        core::mem::take(&mut self.nodes[i].events)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The seed this simulation was created with.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The number of nodes, up or down.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the simulation has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s endpoint, for queries, or `None` if it is down.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn node(&self, i: usize) -> Option<&E> {
        self.nodes[i].endpoint.as_ref()
    }

    /// Whether node `i` is up.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].endpoint.is_some()
    }

    /// How many times node `i` has been restarted.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn restarts(&self, i: usize) -> u32 {
        self.nodes[i].restarts
    }

    /// The events node `i` has emitted and not yet had taken, oldest first,
    /// across its restarts.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn events(&self, i: usize) -> &[TimedEvent<E::Event>] {
        &self.nodes[i].events
    }

    /// Node `i`'s traffic counters, across its restarts.
    ///
    /// # Panics
    /// If `i` is not a node index.
    pub fn stats(&self, i: usize) -> &NodeStats {
        &self.nodes[i].stats
    }

    /// The sum of every node's counters.
    pub fn total_stats(&self) -> NodeStats {
        let mut total = NodeStats::default();
        for n in &self.nodes {
            total += n.stats;
        }
        total
    }

    /// Datagrams sent but not yet delivered or dropped.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Why the simulation stopped, if it did.
    pub fn error(&self) -> Option<SimError> {
        self.failed
    }

    /// Fails if the simulation already stopped, then drains fresh nodes.
    fn start_run(&mut self) -> Result<(), SimError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while let Some(i) = self.fresh.pop_first() {
            self.feed(i, |_, _| ())?;
        }
        Ok(())
    }

    /// The time of the next delivery or deadline, never before now.
    fn next_event_time(&self) -> Option<Instant> {
        let packet = self.in_flight.peek().map(|Reverse(p)| p.at);
        let timer = self.timers.first().map(|&(t, _)| t);
        let next = match (packet, timer) {
            (Some(p), Some(t)) => p.min(t),
            (p, t) => p.or(t)?,
        };
        Some(next.max(self.now))
    }

    /// Processes the next delivery or deadline; deliveries go first at equal
    /// times.
    fn step(&mut self) -> Result<(), SimError> {
        let Some(at) = self.next_event_time() else {
            return Ok(());
        };
        self.advance_to(at);
        let packet = self.in_flight.peek().map(|Reverse(p)| p.at);
        let timer = self.timers.first().copied();
        let deliver = match (packet, timer) {
            (Some(p), Some((t, _))) => p <= t,
            (p, _) => p.is_some(),
        };
        if deliver {
            let Reverse(p) = self.in_flight.pop().expect("peeked above");
            if self.nodes[p.to].endpoint.is_none() {
                self.nodes[p.from].stats.dropped.crashed += 1;
                return Ok(());
            }
            let stats = &mut self.nodes[p.to].stats;
            stats.received_datagrams += 1;
            stats.received_bytes += p.data.len() as u64;
            let from = SimAddr(p.from as u16);
            self.feed(p.to, |ep, now| ep.handle_datagram(now, from, &p.data))
        } else {
            let (t, i) = timer.expect("no packet, so a timer was the next event");
            self.timers.remove(&(t, i));
            self.nodes[i].deadline = None;
            self.feed(i, |ep, now| ep.handle_timeout(now))
        }
    }

    fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
            self.steps_this_instant = 0;
        }
    }

    /// Gives node `i` one input, then drains its transmits and events and
    /// re-arms its timer. Does nothing if the node is down.
    fn feed(&mut self, i: usize, input: impl FnOnce(&mut E, Instant)) -> Result<(), SimError> {
        let now = self.now;
        let limit = self.config.max_steps_per_instant;
        self.steps_this_instant += 1;
        if self.steps_this_instant > limit {
            return Err(self.fail(i));
        }
        self.fresh.remove(&i);
        let Some(ep) = self.nodes[i].endpoint.as_mut() else {
            return Ok(());
        };
        input(ep, now);
        let mut outputs = 0u32;
        while let Some(tx) = self.nodes[i]
            .endpoint
            .as_mut()
            .and_then(|ep| ep.poll_transmit(now, &mut self.tx_buf))
        {
            outputs += 1;
            if outputs > limit {
                return Err(self.fail(i));
            }
            self.route(i, tx);
        }
        let node = &mut self.nodes[i];
        let Some(ep) = node.endpoint.as_mut() else {
            return Ok(());
        };
        let mut stalled = false;
        while let Some(event) = ep.poll_event() {
            outputs += 1;
            if outputs > limit {
                stalled = true;
                break;
            }
            node.events.push(TimedEvent { at: now, event });
        }
        if stalled {
            return Err(self.fail(i));
        }
        let deadline = ep.poll_timeout();
        if let Some(old) = core::mem::replace(&mut node.deadline, deadline) {
            self.timers.remove(&(old, i));
        }
        if let Some(d) = deadline {
            self.timers.insert((d, i));
        }
        Ok(())
    }

    fn fail(&mut self, node: usize) -> SimError {
        let e = SimError::Stalled { at: self.now, node };
        self.failed = Some(e);
        e
    }

    /// Puts one transmit of node `from` (its bytes in `tx_buf`) on the wire.
    fn route(&mut self, from: usize, tx: Transmit<SimAddr>) {
        self.nodes[from].stats.transmits += 1;
        if tx.len > self.config.mtu || tx.len > self.tx_buf.len() {
            self.nodes[from].stats.dropped.oversize += 1;
            return;
        }
        match tx.destination {
            Destination::Peer(to) => self.send_copy(from, to.index(), tx.len),
            Destination::Broadcast => {
                for to in 0..self.nodes.len() {
                    if to != from && self.nodes[to].endpoint.is_some() {
                        self.send_copy(from, to, tx.len);
                    }
                }
            }
        }
    }

    /// Sends `tx_buf[..len]` from `from` to `to`, drawing its fate.
    fn send_copy(&mut self, from: usize, to: usize, len: usize) {
        let nodes = self.nodes.len();
        let stats = &mut self.nodes[from].stats;
        if to >= nodes {
            stats.dropped.no_route += 1;
            return;
        }
        stats.sent_datagrams += 1;
        stats.sent_bytes += len as u64;
        if self.blocked.contains(&(from, to)) {
            stats.dropped.partition += 1;
            return;
        }
        let link = *self.links.get(&(from, to)).unwrap_or(&self.config.link);
        if self.rng.chance(link.loss_ppm) {
            stats.dropped.loss += 1;
            return;
        }
        let copies = if self.rng.chance(link.duplicate_ppm) {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + self.draw_delay(&link);
            let seq = self.next_seq;
            self.next_seq += 1;
            let data = self.tx_buf[..len].to_vec();
            self.in_flight.push(Reverse(InFlight {
                at,
                seq,
                from,
                to,
                data,
            }));
        }
    }

    /// A delay uniform in `latency ± jitter`, clamped at zero.
    fn draw_delay(&mut self, link: &LinkConfig) -> Duration {
        let latency = duration_micros(link.latency);
        let jitter = duration_micros(link.jitter);
        let spread = jitter.saturating_mul(2).saturating_add(1);
        let offset = self.rng.below(spread);
        Duration::from_micros(latency.saturating_add(offset).saturating_sub(jitter))
    }
}

impl<E: Endpoint<Addr = SimAddr>> fmt::Debug for Sim<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.config.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("in_flight", &self.in_flight.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    /// By arrival time, then by send order: `seq` is unique, so the order is
    /// total and a seed replays exactly.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Stalled { at, node } => write!(
                f,
                "node {node} kept time from advancing past {} µs (livelock?)",
                at.as_micros()
            ),
            SimError::NodeDown(i) => write!(f, "node {i} is down"),
        }
    }
}

impl core::error::Error for SimError {}
