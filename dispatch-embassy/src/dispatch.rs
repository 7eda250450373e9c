//! [`Dispatch`]: the node and the queues its runner and handles share.
//!
//! Everything lives in one value the application keeps in static memory
//! (a `StaticCell`). The node sits behind an embassy-sync blocking mutex:
//! whoever feeds it (the runner with a datagram or a timer, a handle with a
//! command) locks it, reads the clock, feeds the input and unlocks; no lock
//! is held across an `.await`. What the node reports is routed into bounded
//! queues: join and leave events, requests for this device's instances, and
//! the replies of calls a handle waits on.

use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::net::SocketAddr;

use dispatch_core::node::{CallError, CallId, Config, ConfigError, Event, Node, Request};
use dispatch_core::presence::ReplicaId;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_sync::waitqueue::MultiWakerRegistration;

use crate::event::ServiceEvent;
use crate::handle::Handle;
use crate::runner::Runner;
use crate::socket::Socket;
use crate::stats::DriverStats;
use crate::time;

/// Join and leave events queued for the application, by default.
pub const DEFAULT_EVENTS: usize = 16;
/// Requests for this device's instances queued for the application, by
/// default; `Config::max_incoming_calls` may not exceed it.
pub const DEFAULT_REQUESTS: usize = 8;
/// Calls the handles wait on at once, by default;
/// `Config::max_outgoing_calls` may not exceed it.
pub const DEFAULT_CALLS: usize = 8;

/// One device's node and its queues; see the [module docs](self).
///
/// `M` is the embassy-sync mutex kind: `NoopRawMutex` when the runner and
/// every task using a [`Handle`] run on one executor,
/// `CriticalSectionRawMutex` otherwise. The capacities are visible in the
/// type: `EVENTS` join and leave events, `REQUESTS` requests and `CALLS`
/// calls waiting for replies.
pub struct Dispatch<
    M: RawMutex,
    const EVENTS: usize = DEFAULT_EVENTS,
    const REQUESTS: usize = DEFAULT_REQUESTS,
    const CALLS: usize = DEFAULT_CALLS,
> {
    pub(crate) state: Mutex<M, RefCell<State<CALLS>>>,
    pub(crate) events: Channel<M, ServiceEvent, EVENTS>,
    pub(crate) requests: Channel<M, Request, REQUESTS>,
    /// Tells the runner that a command changed the node: send what it
    /// wrote and recompute the deadline.
    pub(crate) wake: Signal<M, ()>,
    mtu: usize,
}

/// A call's reply, or why there is none.
pub(crate) type CallResult = Result<Vec<u8>, CallError>;

/// Behind the lock.
pub(crate) struct State<const CALLS: usize> {
    pub(crate) node: Node<SocketAddr>,
    /// Calls a handle waits on, with their reply once it came.
    pub(crate) calls: heapless::Vec<(CallId, Option<CallResult>), CALLS>,
    /// Handles waiting for a reply.
    pub(crate) reply_wakers: MultiWakerRegistration<CALLS>,
    /// Events dropped since the last one queued (reported as
    /// [`ServiceEvent::Lagged`]).
    pub(crate) lagged: u32,
    pub(crate) stats: DriverStats,
}

/// Why [`Dispatch::new`] refused to start a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// The core refused the configuration.
    Config(ConfigError),
    /// A limit of the configuration exceeds the queue that serves it.
    Capacity {
        /// The setting, e.g. `Config::max_incoming_calls`.
        setting: &'static str,
        /// Its value.
        value: usize,
        /// The type parameter of [`Dispatch`] that bounds it.
        parameter: &'static str,
        /// That parameter's value.
        capacity: usize,
    },
    /// The configuration is for another transport (gossipsub broadcasts or
    /// a reliable transport); this driver sends UDP datagrams.
    Transport(&'static str),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Config(e) => write!(f, "configuration refused: {e}"),
            SetupError::Capacity {
                setting,
                value,
                parameter,
                capacity,
            } => write!(
                f,
                "{setting} is {value} but Dispatch's {parameter} parameter holds {capacity}: \
                 set {setting} to at most {capacity}, or raise {parameter}"
            ),
            SetupError::Transport(setting) => {
                write!(
                    f,
                    "{setting} is set, but this driver sends UDP datagrams: leave it false"
                )
            }
        }
    }
}

impl core::error::Error for SetupError {}

impl From<ConfigError> for SetupError {
    fn from(e: ConfigError) -> Self {
        SetupError::Config(e)
    }
}

impl<M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize>
    Dispatch<M, EVENTS, REQUESTS, CALLS>
{
    /// A node named `name` in `incarnation`, not yet on the network: start
    /// it with [`runner`](Self::runner).
    ///
    /// The incarnation must grow with every boot (peers refuse an older one
    /// of a name they know, as a replay): take it from a real-time clock
    /// (microseconds since the UNIX epoch, as `dispatch-std` does) or a boot
    /// counter kept in flash. Set `config.seed` from the board's RNG.
    pub fn new(name: &str, incarnation: u64, config: Config) -> Result<Self, SetupError> {
        check_capacity(
            "Config::max_outgoing_calls",
            config.max_outgoing_calls,
            "CALLS",
            CALLS,
        )?;
        check_capacity(
            "Config::max_incoming_calls",
            config.max_incoming_calls,
            "REQUESTS",
            REQUESTS,
        )?;
        if config.transport_broadcasts {
            return Err(SetupError::Transport("Config::transport_broadcasts"));
        }
        if config.reliable_transport {
            return Err(SetupError::Transport("Config::reliable_transport"));
        }
        let mtu = config.mtu;
        let node = Node::new(ReplicaId::new(name, incarnation), config, time::now())?;
        Ok(Dispatch {
            state: Mutex::new(RefCell::new(State {
                node,
                calls: heapless::Vec::new(),
                reply_wakers: MultiWakerRegistration::new(),
                lagged: 0,
                stats: DriverStats::default(),
            })),
            events: Channel::new(),
            requests: Channel::new(),
            wake: Signal::new(),
            mtu,
        })
    }

    /// The runner that drives this node over `socket`, greeting `seeds`
    /// (addresses of some members of the cluster) at once. Run it in its
    /// own task: [`Runner::run`].
    pub fn runner<S: Socket>(
        &self,
        socket: S,
        seeds: &[SocketAddr],
    ) -> Runner<'_, M, S, EVENTS, REQUESTS, CALLS> {
        self.with(|s, now| s.node.join(now, seeds));
        Runner::new(self, socket, self.mtu)
    }

    /// A handle for application tasks. Copy it freely.
    pub fn handle(&self) -> Handle<'_, M, EVENTS, REQUESTS, CALLS> {
        Handle::new(self)
    }

    /// Runs `f` on the state with the current time, under the lock.
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut State<CALLS>, dispatch_core::time::Instant) -> R,
    ) -> R {
        self.state.lock(|cell| {
            let mut s = cell.borrow_mut();
            let now = time::now();
            f(&mut s, now)
        })
    }

    /// Moves every event of the node into the queues.
    pub(crate) fn route_events(&self) {
        self.with(|s, _| {
            while let Some(event) = s.node.poll_event() {
                self.route(s, event);
            }
        });
    }

    fn route(&self, s: &mut State<CALLS>, event: Event) {
        match event {
            Event::ServiceJoined(service) => self.publish(s, ServiceEvent::Joined(service)),
            Event::ServiceLeft(service) => self.publish(s, ServiceEvent::Left(service)),
            Event::Request(request) => self.queue_request(s, request),
            Event::Reply { call, result } => {
                // A reply nobody waits for (the caller's future was
                // dropped) is discarded.
                if let Some(slot) = s.calls.iter_mut().find(|(id, _)| *id == call) {
                    slot.1 = Some(result);
                    s.reply_wakers.wake();
                }
            }
            // Peer events are visible in the node's peer table; the
            // application is told about services.
            _ => {}
        }
    }

    /// Queues `request` for the application, or counts it dropped. The
    /// queue fills only when the application stops taking requests: the
    /// core refuses more than `max_incoming_calls` (at most `REQUESTS`) at
    /// once, but forgets the ones it expired.
    fn queue_request(&self, s: &mut State<CALLS>, request: Request) {
        if self.requests.try_send(request).is_err() {
            s.stats.requests_dropped += 1;
        }
    }

    /// Queues `event`, or counts it dropped. After a drop, the next event
    /// that fits is preceded by [`ServiceEvent::Lagged`], so the gap shows
    /// where it is.
    fn publish(&self, s: &mut State<CALLS>, event: ServiceEvent) {
        if s.lagged > 0 {
            if self
                .events
                .try_send(ServiceEvent::Lagged(s.lagged))
                .is_err()
            {
                s.lagged = s.lagged.saturating_add(1);
                s.stats.events_dropped += 1;
                return;
            }
            s.lagged = 0;
        }
        if self.events.try_send(event).is_err() {
            s.lagged = 1;
            s.stats.events_dropped += 1;
        }
    }
}

fn check_capacity(
    setting: &'static str,
    value: usize,
    parameter: &'static str,
    capacity: usize,
) -> Result<(), SetupError> {
    if value > capacity {
        return Err(SetupError::Capacity {
            setting,
            value,
            parameter,
            capacity,
        });
    }
    Ok(())
}
