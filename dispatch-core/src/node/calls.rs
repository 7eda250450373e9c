//! Calls and casts to the instance that owns a key.
//!
//! The caller's node resolves the owner through the type's ring and sends a
//! [`CallRequest`] to the owner's node, which hands it to the application as
//! an [`Event::Request`]; the application answers with [`Node::reply`], and
//! the answer completes the call as an [`Event::Reply`]. A cast is a request
//! that expects no reply.
//!
//! ## Over a lossy transport
//! The caller is responsible for delivery: it sends a request again after
//! `call_retry`, then after twice that, and so on up to `retry_after`, until
//! the reply (or, for a cast, an acknowledgement) arrives or the deadline
//! passes. The receiver remembers every request it accepted, so a copy is
//! never handed to the application twice: a copy of a call being handled is
//! acknowledged (the caller then slows down), a copy of an answered call gets
//! the stored reply again. Each request tells the receiver below which
//! number the caller has finished all its calls, so the receiver forgets
//! answered requests as soon as the caller has their replies, and ignores
//! copies that arrive later still. Requests and replies larger than one
//! datagram travel as chunked transfers.
//!
//! With `reliable_transport` (libp2p request-response) nothing is
//! acknowledged or sent again.
//!
//! ## Bounds
//! At most `max_outgoing_calls` calls wait for replies and
//! `max_incoming_calls` requests are remembered; past them `call` fails with
//! [`CallError::Busy`] and requests are refused as busy. Requests and
//! replies are at most `max_call_bytes` long.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Event, Node, PeerStatus, Service};
use crate::presence::ReplicaId;
use crate::time::Instant;
use crate::transmit::Destination;
use crate::wire::{self, CallRequest, Message, Outcome, Refusal, TransferBody, TransferKind};

/// Identifies a call this node made; its [`Event::Reply`] carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(u64);

impl CallId {
    /// The call's number, increasing within this node's incarnation.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Identifies a request this node received; pass it to [`Node::reply`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    caller: ReplicaId,
    call: u64,
}

impl RequestId {
    /// The node that made the request.
    pub fn caller(&self) -> &ReplicaId {
        &self.caller
    }

    /// The caller's number for it.
    pub fn call(&self) -> u64 {
        self.call
    }
}

/// Whether a request waits for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// The caller waits for [`Node::reply`].
    Call,
    /// Fire and forget: there is nothing to reply.
    Cast,
}

/// A request for one of this node's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Pass it to [`Node::reply`] to answer a call.
    pub id: RequestId,
    /// Call or cast.
    pub kind: RequestKind,
    /// The service type.
    pub ty: Box<str>,
    /// The instance the request is for.
    pub service_id: Box<str>,
    /// The application's request.
    pub payload: Vec<u8>,
}

/// Why a call, a cast or a reply failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// No online instance of the type is known.
    NoService,
    /// No reply came before the deadline.
    Timeout,
    /// The target node has no such instance: it left, or was never there.
    NoSuchInstance,
    /// The request or the reply is longer than the limit.
    TooLarge {
        /// Its length, in bytes (0 when the other node refused it).
        len: u32,
        /// The limit, in bytes.
        max: u32,
    },
    /// The target node is down, left, or restarted before replying.
    NodeDown,
    /// Too many calls are in flight, here or on the target node.
    Busy,
    /// This node has left the cluster.
    Left,
    /// [`Node::reply`] names no call waiting for a reply: it was answered
    /// already, expired, its caller is gone, or it was a cast.
    UnknownRequest,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoService => f.write_str("no online instance of that service type"),
            CallError::Timeout => f.write_str("no reply before the deadline"),
            CallError::NoSuchInstance => {
                f.write_str("the target node has no such instance (it left, or never was)")
            }
            CallError::TooLarge { len: 0, max } => {
                write!(
                    f,
                    "the other node refused a message over its {max}-byte limit"
                )
            }
            CallError::TooLarge { len, max } => {
                write!(f, "{len} bytes exceeds the {max}-byte limit on calls")
            }
            CallError::NodeDown => f.write_str("the target node is down, left or restarted"),
            CallError::Busy => f.write_str("too many calls in flight; try again later"),
            CallError::Left => f.write_str("the node has left the cluster"),
            CallError::UnknownRequest => {
                f.write_str("no call awaits this reply (answered, expired, caller gone, or a cast)")
            }
        }
    }
}

impl core::error::Error for CallError {}

impl From<Refusal> for CallError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NoSuchInstance => CallError::NoSuchInstance,
            Refusal::TooLarge(max) => CallError::TooLarge { len: 0, max },
            Refusal::Busy => CallError::Busy,
        }
    }
}

/// A request or a reply as it is sent (and sent again).
#[derive(Debug, Clone)]
enum Outbound {
    /// One encoded datagram.
    Datagram(Vec<u8>),
    /// An encoded transfer body, and the transfer carrying it, if any.
    Transfer { bytes: Vec<u8>, id: Option<u32> },
}

/// A call or cast of this node, waiting for its reply or acknowledgement.
#[derive(Debug)]
struct Pending<A> {
    kind: RequestKind,
    /// The target node.
    target: ReplicaId,
    /// Where it listens; `None` when the target is this node.
    addr: Option<A>,
    deadline: Instant,
    /// When to send the request again; `None` once it needs no more sending.
    retry_at: Option<Instant>,
    backoff: Duration,
    outbound: Option<Outbound>,
}

/// A request this node accepted.
#[derive(Debug)]
struct Answer<A> {
    /// Where the caller listens; `None` when it is this node.
    addr: Option<A>,
    kind: RequestKind,
    /// When to forget it: the caller has given up by then.
    expires: Instant,
    /// The reply once given, kept to answer copies of the request.
    reply: Option<Outbound>,
}

/// Key of a remembered request: caller name, incarnation, call number.
type AnswerKey = (Box<str>, u64, u64);

/// The calls of a node in both directions.
#[derive(Debug)]
pub(crate) struct Calls<A> {
    next: u64,
    pending: BTreeMap<u64, Pending<A>>,
    answers: BTreeMap<AnswerKey, Answer<A>>,
    /// Per caller incarnation, the number below which it has finished every
    /// call.
    floors: BTreeMap<(Box<str>, u64), u64>,
    /// No entry needs attention before this (see [`Calls::next_deadline`]).
    wake: Option<Instant>,
}

impl<A> Calls<A> {
    pub(crate) fn new() -> Self {
        Calls {
            next: 1,
            pending: BTreeMap::new(),
            answers: BTreeMap::new(),
            floors: BTreeMap::new(),
            wake: None,
        }
    }

    /// The lowest call number this node still waits on.
    fn done_below(&self) -> u64 {
        self.pending.keys().next().copied().unwrap_or(self.next)
    }

    /// When [`Node::handle_timeout`] next has a call to act on: never
    /// later than the true deadline, sometimes earlier (a call that
    /// completed since), which costs one early wake-up.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wake
    }

    /// Makes sure the node wakes by `t`.
    fn arm(&mut self, t: Instant) {
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    /// Sets the wake-up time exactly, from every entry.
    fn rearm(&mut self) {
        let pending = self
            .pending
            .values()
            .map(|p| p.retry_at.map_or(p.deadline, |r| r.min(p.deadline)));
        let answers = self.answers.values().map(|a| a.expires);
        self.wake = pending.chain(answers).min();
    }

    fn insert_pending(&mut self, call: u64, p: Pending<A>) {
        self.arm(p.retry_at.map_or(p.deadline, |r| r.min(p.deadline)));
        self.pending.insert(call, p);
    }
}

/// Whole milliseconds in `d`, rounded up, saturating.
fn millis_ceil(d: Duration) -> u32 {
    u32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u32::MAX)
}

impl<A> Node<A>
where
    A: Clone + Ord + fmt::Debug + Serialize + DeserializeOwned,
{
    // ---- input: local commands ----

    /// Sends `payload` to the online instance of `ty` that owns `key`, and
    /// waits `timeout` (default `call_timeout`) for its reply, which arrives
    /// as an [`Event::Reply`] with the returned id, exactly once.
    pub fn call(
        &mut self,
        now: Instant,
        ty: &str,
        key: &[u8],
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<CallId, CallError> {
        let timeout = timeout.unwrap_or(self.config.call_timeout);
        let [target] = self.call_targets::<1>(ty, key, payload)?;
        self.start_call(now, RequestKind::Call, &target, payload, timeout)
    }

    /// Sends `payload` to the online instance of `ty` that owns `key`,
    /// expecting no reply. Over a lossy transport it is sent again until the
    /// target node acknowledges it or `call_timeout` passes.
    pub fn cast(
        &mut self,
        now: Instant,
        ty: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<(), CallError> {
        let [target] = self.call_targets::<1>(ty, key, payload)?;
        let timeout = self.config.call_timeout;
        self.start_call(now, RequestKind::Cast, &target, payload, timeout)
            .map(|_| ())
    }

    /// Calls the `n` online instances for `key` (fewer when fewer exist),
    /// owner first. Each reply arrives as its own [`Event::Reply`].
    pub fn multi_call(
        &mut self,
        now: Instant,
        n: usize,
        ty: &str,
        key: &[u8],
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<(Service, CallId)>, CallError> {
        let timeout = timeout.unwrap_or(self.config.call_timeout);
        let targets = self.multi_targets(n, ty, key, payload)?;
        let mut calls = Vec::with_capacity(targets.len());
        for target in targets {
            let id = self.start_call(now, RequestKind::Call, &target, payload, timeout)?;
            calls.push((target, id));
        }
        Ok(calls)
    }

    /// Casts to the `n` online instances for `key`; returns how many it was
    /// sent to (fewer than `n` when fewer exist).
    pub fn multi_cast(
        &mut self,
        now: Instant,
        n: usize,
        ty: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<usize, CallError> {
        let targets = self.multi_targets(n, ty, key, payload)?;
        let timeout = self.config.call_timeout;
        for target in &targets {
            self.start_call(now, RequestKind::Cast, target, payload, timeout)?;
        }
        Ok(targets.len())
    }

    /// Answers the call `request` with `payload`. A reply longer than
    /// `max_call_bytes` is refused here, and its caller hears
    /// [`CallError::TooLarge`].
    pub fn reply(
        &mut self,
        now: Instant,
        request: &RequestId,
        payload: &[u8],
    ) -> Result<(), CallError> {
        self.last_now = self.last_now.max(now);
        let key: AnswerKey = (
            request.caller.name.clone(),
            request.caller.incarnation,
            request.call,
        );
        let max = self.config.max_call_bytes;
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let outcome = if len > max {
            Outcome::Refused(Refusal::TooLarge(max))
        } else {
            Outcome::Replied(payload)
        };
        let Some(answer) = self.calls.answers.get(&key) else {
            return Err(CallError::UnknownRequest);
        };
        if answer.kind == RequestKind::Cast || answer.reply.is_some() {
            return Err(CallError::UnknownRequest);
        }
        let Some(addr) = answer.addr.clone() else {
            // Our own call: complete it here.
            self.calls.answers.remove(&key);
            let result = match outcome {
                Outcome::Replied(bytes) => Ok(bytes.to_vec()),
                Outcome::Refused(r) => Err(CallError::from(r)),
            };
            self.complete(request.call, result);
            return if len > max {
                Err(CallError::TooLarge { len, max })
            } else {
                Ok(())
            };
        };
        let mut out = self.encode_reply(request.call, outcome);
        self.send_outbound(now, &addr, &mut out);
        if self.config.reliable_transport {
            self.calls.answers.remove(&key);
        } else if let Some(answer) = self.calls.answers.get_mut(&key) {
            answer.reply = Some(out);
        }
        self.stats.replies_sent += 1;
        if len > max {
            return Err(CallError::TooLarge { len, max });
        }
        Ok(())
    }

    /// How many calls and casts wait for a reply or acknowledgement, and
    /// how many received requests are remembered; bounded by
    /// `max_outgoing_calls` and `max_incoming_calls`.
    pub fn calls_in_flight(&self) -> (usize, usize) {
        (self.calls.pending.len(), self.calls.answers.len())
    }

    // ---- input: the network ----

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        caller: &ReplicaId,
        addr: Option<&A>,
        request: &CallRequest<'_>,
    ) {
        let key: AnswerKey = (caller.name.clone(), caller.incarnation, request.call);
        let floor = self
            .calls
            .floors
            .entry((caller.name.clone(), caller.incarnation))
            .or_insert(0);
        let floor_now = (*floor).max(request.done_below);
        if request.done_below > *floor {
            *floor = request.done_below;
            let done = request.done_below;
            let lo = (caller.name.clone(), caller.incarnation, 0);
            let hi = (caller.name.clone(), caller.incarnation, done);
            let finished: Vec<AnswerKey> = self
                .calls
                .answers
                .range(lo..hi)
                .map(|(k, _)| k.clone())
                .collect();
            for k in finished {
                self.calls.answers.remove(&k);
            }
        }
        if let Some(answer) = self.calls.answers.get_mut(&key) {
            // A copy: answer it as before, never hand it on again.
            self.stats.duplicate_requests += 1;
            let addr = answer.addr.clone();
            match (answer.reply.take(), addr) {
                (Some(mut out), Some(addr)) => {
                    self.send_outbound(now, &addr, &mut out);
                    if let Some(answer) = self.calls.answers.get_mut(&key) {
                        answer.reply = Some(out);
                    }
                }
                (_, Some(addr)) => self.send_request_ack(&addr, request.call),
                (_, None) => {}
            }
            return;
        }
        if request.call < floor_now {
            // Finished on the caller's side already: a late copy.
            self.stats.stale_requests += 1;
            return;
        }
        let kind = if request.cast {
            RequestKind::Cast
        } else {
            RequestKind::Call
        };
        let max = self.config.max_call_bytes;
        let refusal = if request.payload.len() > max as usize {
            Some(Refusal::TooLarge(max))
        } else if self
            .presence
            .get(&self.me.name, request.ty, request.id)
            .is_none()
        {
            Some(Refusal::NoSuchInstance)
        } else if self.calls.answers.len() >= self.config.max_incoming_calls {
            Some(Refusal::Busy)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.stats.requests_refused += 1;
            match addr {
                Some(addr) => {
                    let mut out = self.encode_reply(request.call, Outcome::Refused(refusal));
                    self.send_outbound(now, addr, &mut out);
                }
                None => self.complete(request.call, Err(CallError::from(refusal))),
            }
            return;
        }
        let budget = Duration::from_millis(u64::from(request.budget_ms));
        let reliable = self.config.reliable_transport;
        // Remembered to route the reply, and to recognise copies; a cast
        // needs neither when the transport does not make copies, nor when it
        // is our own.
        let remember = kind == RequestKind::Call || (addr.is_some() && !reliable);
        if remember {
            // Copies delayed a little beyond the caller's deadline are still
            // recognised.
            let expires = now + budget + self.config.retry_after;
            self.calls.arm(expires);
            self.calls.answers.insert(
                key,
                Answer {
                    addr: addr.cloned(),
                    kind,
                    expires,
                    reply: None,
                },
            );
        }
        if kind == RequestKind::Cast && !reliable {
            if let Some(addr) = addr {
                self.send_request_ack(addr, request.call);
            }
        }
        self.stats.requests_handled += 1;
        self.events.push_back(Event::Request(Request {
            id: RequestId {
                caller: caller.clone(),
                call: request.call,
            },
            kind,
            ty: request.ty.into(),
            service_id: request.id.into(),
            payload: request.payload.to_vec(),
        }));
    }

    pub(super) fn on_request_ack(&mut self, sender: &ReplicaId, call: u64) {
        let retry_after = self.config.retry_after;
        let last_now = self.last_now;
        let Some(p) = self.calls.pending.get_mut(&call) else {
            return;
        };
        if p.target != *sender {
            return;
        }
        if p.kind == RequestKind::Cast {
            let p = self.calls.pending.remove(&call);
            self.cancel_outbound(p.and_then(|p| p.outbound));
            return;
        }
        // Being handled: the reply will come; ask less often meanwhile.
        p.backoff = retry_after;
        if p.retry_at.is_some() {
            p.retry_at = Some(last_now + retry_after);
        }
    }

    pub(super) fn on_reply(&mut self, sender: &ReplicaId, call: u64, outcome: Outcome<'_>) {
        if self
            .calls
            .pending
            .get(&call)
            .is_none_or(|p| p.target != *sender)
        {
            self.stats.late_replies += 1;
            return;
        }
        let result = match outcome {
            Outcome::Replied(bytes) => Ok(bytes.to_vec()),
            Outcome::Refused(r) => Err(CallError::from(r)),
        };
        self.complete(call, result);
    }

    /// A transfer carrying a request or a reply arrived whole.
    pub(super) fn on_call_transfer(
        &mut self,
        now: Instant,
        sender: &ReplicaId,
        from: &A,
        body: TransferBody<'_>,
    ) -> bool {
        match body {
            TransferBody::Request(r) => self.on_request(now, sender, Some(from), &r),
            TransferBody::Reply { call, outcome } => self.on_reply(sender, call, outcome),
            _ => return false,
        }
        true
    }

    // ---- timers and peers ----

    /// Sends requests again, times calls out, forgets old requests.
    pub(super) fn call_timeouts(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .calls
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now || p.retry_at.is_some_and(|r| r <= now))
            .map(|(&c, _)| c)
            .collect();
        let cap = self.config.retry_after;
        for call in due {
            let Some(mut p) = self.calls.pending.remove(&call) else {
                continue;
            };
            if p.deadline <= now {
                match p.kind {
                    RequestKind::Call => {
                        self.stats.calls_timed_out += 1;
                        self.events.push_back(Event::Reply {
                            call: CallId(call),
                            result: Err(CallError::Timeout),
                        });
                    }
                    RequestKind::Cast => self.stats.casts_unconfirmed += 1,
                }
                self.cancel_outbound(p.outbound.take());
                continue;
            }
            if let (Some(addr), Some(out)) = (p.addr.clone(), p.outbound.as_mut()) {
                self.stats.requests_resent += 1;
                let mut o = core::mem::replace(out, Outbound::Datagram(Vec::new()));
                self.send_outbound(now, &addr, &mut o);
                p.outbound = Some(o);
            }
            p.backoff = (p.backoff * 2).min(cap);
            p.retry_at = Some(now + p.backoff);
            self.calls.pending.insert(call, p);
        }
        let expired: Vec<AnswerKey> = self
            .calls
            .answers
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(a) = self.calls.answers.remove(&k) {
                self.cancel_outbound(a.reply);
            }
        }
        self.calls.rearm();
    }

    /// Fails every call to the node named `name` (down, left, restarted or
    /// gone) and forgets its requests to us.
    pub(super) fn calls_to_node_failed(&mut self, name: &str) {
        let failed: Vec<u64> = self
            .calls
            .pending
            .iter()
            .filter(|(_, p)| *p.target.name == *name)
            .map(|(&c, _)| c)
            .collect();
        for call in failed {
            let Some(p) = self.calls.pending.remove(&call) else {
                continue;
            };
            if p.kind == RequestKind::Call {
                self.stats.calls_failed += 1;
                self.events.push_back(Event::Reply {
                    call: CallId(call),
                    result: Err(CallError::NodeDown),
                });
            }
            self.cancel_outbound(p.outbound);
        }
        self.calls.answers.retain(|(n, _, _), _| **n != *name);
        self.calls.floors.retain(|(n, _), _| **n != *name);
    }

    /// Fails every call in flight: the node is leaving.
    pub(super) fn calls_abandoned(&mut self) {
        for (call, p) in core::mem::take(&mut self.calls.pending) {
            if p.kind == RequestKind::Call {
                self.stats.calls_failed += 1;
                self.events.push_back(Event::Reply {
                    call: CallId(call),
                    result: Err(CallError::Left),
                });
            }
        }
        self.calls.answers.clear();
    }

    // ---- internals ----

    /// The `N` instances a call for `key` goes to, after the checks every
    /// call makes.
    fn call_targets<const N: usize>(
        &self,
        ty: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<[Service; N], CallError> {
        let targets = self.multi_targets(N, ty, key, payload)?;
        <[Service; N]>::try_from(targets).map_err(|_| CallError::NoService)
    }

    fn multi_targets(
        &self,
        n: usize,
        ty: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<Vec<Service>, CallError> {
        if self.left {
            return Err(CallError::Left);
        }
        let max = self.config.max_call_bytes;
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        if len > max {
            return Err(CallError::TooLarge { len, max });
        }
        let found = self
            .find_multi_service(n, ty, key, false)
            .map_err(|_| CallError::NoService)?;
        if self.calls.pending.len() + found.len() > self.config.max_outgoing_calls {
            return Err(CallError::Busy);
        }
        Ok(found.iter().map(Service::from_entry).collect())
    }

    fn start_call(
        &mut self,
        now: Instant,
        kind: RequestKind,
        target: &Service,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<CallId, CallError> {
        self.last_now = self.last_now.max(now);
        let call = self.calls.next;
        self.calls.next += 1;
        self.stats.calls_started += 1;
        let request = CallRequest {
            call,
            ty: &target.ty,
            id: &target.id,
            budget_ms: millis_ceil(timeout),
            cast: kind == RequestKind::Cast,
            done_below: self.calls.done_below().min(call),
            payload,
        };
        let deadline = now + timeout;
        let me = self.me.clone();
        if target.node.name == me.name {
            if kind == RequestKind::Call {
                self.calls.insert_pending(
                    call,
                    Pending {
                        kind,
                        target: me.clone(),
                        addr: None,
                        deadline,
                        retry_at: None,
                        backoff: Duration::ZERO,
                        outbound: None,
                    },
                );
            }
            self.on_request(now, &me, None, &request);
            return Ok(CallId(call));
        }
        let addr = match self.peers.get(&target.node.name) {
            Some(p) if p.status == PeerStatus::Up && p.id == target.node => p.addr.clone(),
            _ => return Err(CallError::NodeDown),
        };
        let msg: Message<'_, A> = Message::Request {
            from: me,
            request: request.clone(),
        };
        let mut out = match self.encode_datagram(&msg) {
            Some(bytes) => Outbound::Datagram(bytes),
            None => {
                let body = TransferBody::Request(request);
                let bytes = wire::encode_transfer(&body).map_err(|_| CallError::TooLarge {
                    len: payload.len() as u32,
                    max: self.config.max_call_bytes,
                })?;
                Outbound::Transfer { bytes, id: None }
            }
        };
        self.send_outbound(now, &addr, &mut out);
        let reliable = self.config.reliable_transport;
        if reliable && kind == RequestKind::Cast {
            return Ok(CallId(call));
        }
        let backoff = self.config.call_retry;
        self.calls.insert_pending(
            call,
            Pending {
                kind,
                target: target.node.clone(),
                addr: Some(addr),
                deadline,
                retry_at: (!reliable).then_some(now + backoff),
                backoff,
                outbound: (!reliable || matches!(out, Outbound::Transfer { .. })).then_some(out),
            },
        );
        Ok(CallId(call))
    }

    /// Completes call `call` with `result`, if it is still waited on.
    fn complete(&mut self, call: u64, result: Result<Vec<u8>, CallError>) {
        let Some(p) = self.calls.pending.remove(&call) else {
            return;
        };
        self.cancel_outbound(p.outbound);
        if p.kind == RequestKind::Call {
            match result {
                Ok(_) => self.stats.calls_completed += 1,
                Err(_) => self.stats.calls_failed += 1,
            }
            self.events.push_back(Event::Reply {
                call: CallId(call),
                result,
            });
        }
    }

    fn encode_reply(&self, call: u64, outcome: Outcome<'_>) -> Outbound {
        let msg: Message<'_, A> = Message::Reply {
            from: self.me.clone(),
            call,
            outcome,
        };
        if let Some(bytes) = self.encode_datagram(&msg) {
            return Outbound::Datagram(bytes);
        }
        let body = TransferBody::Reply { call, outcome };
        match wire::encode_transfer(&body) {
            Ok(bytes) => Outbound::Transfer { bytes, id: None },
            // Only an allocation failure gets here; the caller times out.
            Err(_) => Outbound::Datagram(Vec::new()),
        }
    }

    fn encode_datagram(&self, msg: &Message<'_, A>) -> Option<Vec<u8>> {
        self.encode_body(msg)
    }

    fn send_request_ack(&mut self, to: &A, call: u64) {
        let msg: Message<'_, A> = Message::RequestAck {
            from: self.me.clone(),
            call,
        };
        self.send(Destination::Peer(to.clone()), &msg);
    }

    /// Sends a request or a reply (again): a datagram as it is, a transfer
    /// by starting it, or, while it is still being sent, by sending its last
    /// chunk again so that a receiver that lost them all asks for the rest.
    fn send_outbound(&mut self, now: Instant, to: &A, out: &mut Outbound) {
        match out {
            Outbound::Datagram(bytes) if !bytes.is_empty() => {
                self.queue(Destination::Peer(to.clone()), bytes.clone());
            }
            Outbound::Datagram(_) => {}
            Outbound::Transfer { bytes, id } => match *id {
                Some(t) if self.transfers.is_sending(t) => self.transfers.probe(now, t),
                _ => {
                    let t = self.rng.next_u64() as u32;
                    let chunk = self.chunk_size();
                    if self.transfers.start(
                        now,
                        to.clone(),
                        TransferKind::Call,
                        t,
                        bytes.clone(),
                        chunk,
                    ) {
                        *id = Some(t);
                    }
                }
            },
        }
    }

    fn cancel_outbound(&mut self, out: Option<Outbound>) {
        if let Some(Outbound::Transfer { id: Some(t), .. }) = out {
            self.transfers.cancel(t);
        }
    }
}
