//! The driver: the one loop that moves bytes and time in and out of the
//! core's [`Node`], and nothing else (adapters only drive).
//!
//! ## Who holds the node
//! The node lives in a `std::sync::Mutex` shared by the driver task and
//! every [`Registry`](crate::Registry) handle. Whoever feeds an input (the
//! driver with a datagram or a timer, a handle with a command) locks it,
//! reads the clock, feeds the input, drains every transmit and event into an
//! [`Outputs`], and unlocks; then it sends the datagrams and runs the
//! handlers with no lock held. No lock is ever held across an `.await`, so a
//! read waits at most for one datagram's processing, never for the network.
//!
//! The driver sleeps until the node's [`poll_timeout`](Node::poll_timeout);
//! a command that brings that deadline forward wakes it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dispatch_core::node::{CallError, CallId, Event, Node, Request, RequestId, RequestKind};
use dispatch_core::time::Instant;
use dispatch_core::transmit::Destination;
use tokio::sync::{broadcast, oneshot, watch, Notify};
use tracing::{debug, info, trace, warn};

use crate::handler::ErasedHandler;
use crate::subscription::ServiceEvent;
use crate::time::Clock;
use crate::transport::Transport;

/// Largest datagram the driver receives; the core never writes more than
/// its MTU, which is at most this.
const RECV_BUFFER: usize = 65_536;

/// Where a call's reply goes.
pub(crate) type ReplySender = oneshot::Sender<Result<Vec<u8>, CallError>>;

/// Everything behind the lock: the node and the tables the driver routes
/// its events with.
pub(crate) struct Shared<A> {
    pub(crate) node: Node<A>,
    /// Join and leave streams, per service type.
    pub(crate) subscribers: HashMap<Box<str>, broadcast::Sender<ServiceEvent>>,
    /// Calls of this node waiting for their reply.
    pub(crate) pending: HashMap<CallId, ReplySender>,
    /// The handler of each local instance, by (type, id).
    pub(crate) handlers: HashMap<(Box<str>, Box<str>), Arc<dyn ErasedHandler>>,
    /// Counters of the driver's own I/O.
    pub(crate) io: IoStats,
    /// When the driver will next wake, as it last computed.
    armed: Option<Instant>,
    /// Transfer counters at the last drain, to log transfers as they happen.
    transfers_seen: (u64, u64, u64),
    /// Lent to `poll_transmit`.
    tx_buf: Vec<u8>,
}

/// Counters of the driver's socket operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Datagrams the transport failed to send.
    pub send_errors: u64,
    /// Receive calls that failed.
    pub recv_errors: u64,
}

/// What an input left to do once the lock is released.
pub(crate) struct Outputs<A> {
    transmits: Vec<(Destination<A>, Vec<u8>)>,
    requests: Vec<(Request, Arc<dyn ErasedHandler>)>,
}

impl<A> Default for Outputs<A> {
    fn default() -> Self {
        Outputs {
            transmits: Vec::new(),
            requests: Vec::new(),
        }
    }
}

/// The node, its transport and its clock, shared by the driver and the
/// handles.
pub(crate) struct Core<T: Transport> {
    state: Mutex<Shared<T::Addr>>,
    pub(crate) transport: T,
    pub(crate) clock: Clock,
    /// Wakes the driver to recompute its deadline.
    wake: Notify,
    /// Set once to stop the driver (it then leaves the cluster).
    stop: watch::Sender<bool>,
    /// Capacity of each type's event stream.
    pub(crate) subscription_capacity: usize,
}

impl<A> Shared<A>
where
    A: Clone + Ord + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    /// Drains every transmit and event of the node. Events are published
    /// here; requests are returned to be handled outside the lock.
    fn drain(&mut self, now: Instant) -> Outputs<A> {
        let mut out = Outputs::default();
        let mut buf = std::mem::take(&mut self.tx_buf);
        while let Some(t) = self.node.poll_transmit(now, &mut buf) {
            out.transmits.push((t.destination, buf[..t.len].to_vec()));
        }
        self.tx_buf = buf;
        while let Some(event) = self.node.poll_event() {
            self.on_event(event, &mut out);
        }
        let s = self.node.stats();
        let seen = (s.transfers_sent, s.transfers_received, s.transfers_failed);
        if seen != self.transfers_seen {
            debug!(
                sent = s.transfers_sent,
                received = s.transfers_received,
                failed = s.transfers_failed,
                "transfers"
            );
            self.transfers_seen = seen;
        }
        out
    }

    fn on_event(&mut self, event: Event, out: &mut Outputs<A>) {
        match event {
            Event::ServiceJoined(s) => {
                info!(ty = %s.ty, id = %s.id, node = %s.node, state = ?s.state, "service joined");
                self.publish(ServiceEvent::Joined(s));
            }
            Event::ServiceLeft(s) => {
                info!(ty = %s.ty, id = %s.id, node = %s.node, "service left");
                self.publish(ServiceEvent::Left(s));
            }
            Event::PeerUp(id) => info!(peer = %id, "peer up"),
            Event::PeerDown(id) => warn!(peer = %id, "peer down"),
            Event::PeerGone(id) => info!(peer = %id, "peer gone"),
            Event::Request(request) => {
                let key = (request.ty.clone(), request.service_id.clone());
                match self.handlers.get(&key) {
                    Some(h) => out.requests.push((request, Arc::clone(h))),
                    // Handlers are added and removed with their instance
                    // under this lock, so only a request drained before a
                    // removal and handled after it lands here.
                    None => {
                        debug!(ty = %request.ty, id = %request.service_id, "request for an instance with no handler")
                    }
                }
            }
            Event::Reply { call, result } => {
                trace!(call = call.get(), ok = result.is_ok(), "reply");
                if let Some(tx) = self.pending.remove(&call) {
                    // The caller may have stopped waiting; nothing to do.
                    let _ = tx.send(result);
                }
            }
            other => debug!(event = ?other, "unhandled node event"),
        }
    }

    fn publish(&mut self, event: ServiceEvent) {
        let ty = match &event {
            ServiceEvent::Joined(s) | ServiceEvent::Left(s) => &s.ty,
            ServiceEvent::Lagged(_) => return,
        };
        if let Some(tx) = self.subscribers.get(ty) {
            if tx.send(event.clone()).is_err() {
                // Every subscription of this type was dropped.
                let ty = ty.clone();
                self.subscribers.remove(&ty);
            }
        }
    }
}

impl<T: Transport> Core<T> {
    /// A core around `node`, not yet driven: call [`run`].
    pub(crate) fn new(
        node: Node<T::Addr>,
        transport: T,
        clock: Clock,
        mtu: usize,
        subscription_capacity: usize,
    ) -> (Arc<Self>, watch::Receiver<bool>) {
        let (stop, stopped) = watch::channel(false);
        let core = Core {
            state: Mutex::new(Shared {
                node,
                subscribers: HashMap::new(),
                pending: HashMap::new(),
                handlers: HashMap::new(),
                io: IoStats::default(),
                armed: None,
                transfers_seen: (0, 0, 0),
                tx_buf: vec![0; mtu],
            }),
            transport,
            clock,
            wake: Notify::new(),
            stop,
            subscription_capacity,
        };
        (Arc::new(core), stopped)
    }

    /// The shared state, for a short read or write. Never hold it across an
    /// `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared<T::Addr>> {
        // A panic while locked leaves the node as consistent as the core
        // keeps it between calls; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds one input: runs `f` on the state with the current time under
    /// the lock, drains the node, and wakes the driver if its next deadline
    /// moved earlier. Send the returned outputs with [`Core::flush`].
    pub(crate) fn input<R>(
        &self,
        f: impl FnOnce(&mut Shared<T::Addr>, Instant) -> R,
    ) -> (R, Outputs<T::Addr>) {
        let mut s = self.lock();
        let now = self.clock.now();
        let r = f(&mut s, now);
        let out = s.drain(now);
        if let Some(t) = s.node.poll_timeout() {
            if s.armed.is_none_or(|armed| t < armed) {
                s.armed = Some(t);
                self.wake.notify_one();
            }
        }
        (r, out)
    }

    /// Sends what an input produced and runs the handlers of its requests.
    pub(crate) async fn flush(self: &Arc<Self>, out: Outputs<T::Addr>) {
        let mut out = out;
        loop {
            for (to, bytes) in out.transmits.drain(..) {
                if let Err(e) = self.transport.send(&to, &bytes).await {
                    self.lock().io.send_errors += 1;
                    debug!(to = ?to, error = %e, "send failed");
                }
            }
            if out.requests.is_empty() {
                return;
            }
            let mut next = Outputs::default();
            for (request, handler) in std::mem::take(&mut out.requests) {
                if let Some(more) = self.handle_request(request, &*handler) {
                    next.transmits.extend(more.transmits);
                    next.requests.extend(more.requests);
                }
            }
            out = next;
        }
    }

    /// Starts a handler on `request`. A handler ready at its first poll is
    /// answered here (the outputs of its reply are returned); one that is
    /// not is spawned and answers when done.
    fn handle_request(
        self: &Arc<Self>,
        request: Request,
        handler: &dyn ErasedHandler,
    ) -> Option<Outputs<T::Addr>> {
        let kind = request.kind;
        let id = request.id.clone();
        debug!(ty = %request.ty, id = %request.service_id, caller = %id.caller(), kind = ?kind, "request");
        // A panicking handler must not take the driver down with it: the
        // request then goes unanswered and its caller times out, as when a
        // spawned handler panics.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut reply = handler.handle_boxed(request);
            let first = reply.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            (first, reply)
        }));
        let Ok((first, reply)) = polled else {
            warn!(caller = %id.caller(), call = id.call(), "a handler panicked");
            return None;
        };
        match first {
            Poll::Ready(bytes) => (kind == RequestKind::Call).then(|| self.reply(&id, &bytes)),
            Poll::Pending => {
                let core = Arc::clone(self);
                spawn_reply(core, kind, id, reply);
                None
            }
        }
    }

    /// Answers the call `id` with `bytes`.
    fn reply(&self, id: &RequestId, bytes: &[u8]) -> Outputs<T::Addr> {
        let (result, out) = self.input(|s, now| s.node.reply(now, id, bytes));
        if let Err(e) = result {
            debug!(caller = %id.caller(), call = id.call(), error = %e, "reply not sent");
        }
        out
    }

    /// Asks the driver to leave the cluster and stop.
    pub(crate) fn request_stop(&self) {
        self.stop.send_replace(true);
    }
}

/// Runs a handler that was not ready at once, then sends its reply.
fn spawn_reply<T: Transport>(
    core: Arc<Core<T>>,
    kind: RequestKind,
    id: RequestId,
    reply: crate::handler::BoxReply,
) {
    tokio::spawn(async move {
        let bytes = reply.await;
        if kind == RequestKind::Call {
            let out = core.reply(&id, &bytes);
            core.flush(out).await;
        }
    });
}

/// The driver loop: receive, time out, or wake on a command; after each,
/// the input's outputs are sent. On stop, leaves the cluster (peers drop
/// this node's services at once), then ends every stream and waiting call.
pub(crate) async fn run<T: Transport>(core: Arc<Core<T>>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    // The time of the last timer input, so that a deadline the node did not
    // move past it cannot spin the loop.
    let mut last_timeout: Option<Instant> = None;
    loop {
        let deadline = {
            let mut s = core.lock();
            let t = s.node.poll_timeout();
            s.armed = t;
            t
        };
        let deadline = match (deadline, last_timeout) {
            (Some(t), Some(last)) if t <= last => Some(last + Duration::from_millis(1)),
            (t, _) => t,
        };
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(core.clock.to_tokio(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            received = core.transport.recv(&mut buf) => match received {
                Ok((len, from)) => {
                    let (result, out) = core.input(|s, now| s.node.handle_datagram(now, from.clone(), &buf[..len]));
                    if let Err(e) = result {
                        // Counted in the node's stats; at debug level so a
                        // flood of junk does not flood the log.
                        debug!(from = ?from, error = %e, "datagram dropped");
                    }
                    core.transport.judged(result);
                    core.flush(out).await;
                }
                Err(e) => {
                    core.lock().io.recv_errors += 1;
                    debug!(error = %e, "receive failed");
                    // A persistent error must not spin the loop.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            _ = sleep => {
                let (now, out) = core.input(|s, now| { s.node.handle_timeout(now); now });
                last_timeout = Some(now);
                core.flush(out).await;
                continue;
            },
            _ = core.wake.notified() => {}
        }
        last_timeout = None;
    }
    let ((), out) = core.input(|s, now| s.node.leave(now));
    info!("left the cluster");
    core.flush(out).await;
    let mut s = core.lock();
    s.subscribers.clear();
    s.pending.clear();
    s.handlers.clear();
}
