//! [`Handle`]: what application tasks use to register instances, read the
//! replicated set, route keys, hear joins and leaves, call other instances
//! and answer calls for their own.
//!
//! Commands and reads lock the node briefly and return at once; a command
//! then wakes the runner, which sends what the node wrote. Only
//! [`call`](Handle::call), [`next_event`](Handle::next_event) and
//! [`next_request`](Handle::next_request) wait.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Poll;
use core::time::Duration;

use dispatch_core::node::{
    CallError, CallId, CommandError, FindError, Request, RequestId, Service,
};
use dispatch_core::presence::{Ref, ReplicaId};
use embassy_sync::blocking_mutex::raw::RawMutex;

use crate::dispatch::Dispatch;
use crate::event::ServiceEvent;
use crate::stats::Stats;

/// A handle on a device's node; see the [module docs](self). Copy it into
/// every task that needs it.
pub struct Handle<'a, M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize> {
    dispatch: &'a Dispatch<M, EVENTS, REQUESTS, CALLS>,
}

impl<M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize> Clone
    for Handle<'_, M, EVENTS, REQUESTS, CALLS>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize> Copy
    for Handle<'_, M, EVENTS, REQUESTS, CALLS>
{
}

impl<'a, M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize>
    Handle<'a, M, EVENTS, REQUESTS, CALLS>
{
    pub(crate) fn new(dispatch: &'a Dispatch<M, EVENTS, REQUESTS, CALLS>) -> Self {
        Handle { dispatch }
    }

    /// Runs a command on the node, then wakes the runner to send what it
    /// wrote.
    fn command<R>(
        &self,
        f: impl FnOnce(&mut crate::dispatch::State<CALLS>, dispatch_core::time::Instant) -> R,
    ) -> R {
        let r = self.dispatch.with(f);
        self.dispatch.wake.signal(());
        r
    }

    // ---- this device's instances ----

    /// Registers instance `id` of service type `ty`, online, with the
    /// application's `data`. Every peer hears of it at once.
    pub fn add_service(&self, ty: &str, id: &str, data: &[u8]) -> Result<Ref, CommandError> {
        self.command(|s, now| s.node.add_service(now, ty, id, data))
    }

    /// Unregisters an instance of this device.
    pub fn remove_service(&self, ty: &str, id: &str) -> Result<(), CommandError> {
        self.command(|s, now| s.node.remove_service(now, ty, id))
    }

    /// Marks an instance of this device online: keys route to it again.
    pub fn enable_service(&self, ty: &str, id: &str) -> Result<(), CommandError> {
        self.command(|s, now| s.node.enable_service(now, ty, id))
    }

    /// Marks an instance of this device offline: it is still listed, but
    /// keys no longer route to it.
    pub fn disable_service(&self, ty: &str, id: &str) -> Result<(), CommandError> {
        self.command(|s, now| s.node.disable_service(now, ty, id))
    }

    /// Leaves the cluster: every peer drops this device's instances at once.
    /// The runner sends the farewell and returns; further commands fail with
    /// `Left`.
    pub fn leave(&self) {
        self.command(|s, now| s.node.leave(now));
    }

    // ---- reads of the replicated set ----

    /// Every instance of `ty` this device knows of, online or offline, with
    /// its node.
    pub fn services(&self, ty: &str) -> Vec<Service> {
        self.dispatch.with(|s, _| {
            s.node
                .services(ty)
                .map(|e| Service::from_entry(&e))
                .collect()
        })
    }

    /// The online instance of `ty` that owns `key`: the same on every node
    /// that sees the same set.
    pub fn find_service(&self, ty: &str, key: &[u8]) -> Result<Service, FindError> {
        self.dispatch.with(|s, _| {
            s.node
                .find_service(ty, key, false)
                .map(|e| Service::from_entry(&e))
        })
    }

    /// Up to `n` distinct online instances of `ty` for `key`, owner first.
    pub fn find_multi_service(
        &self,
        n: usize,
        ty: &str,
        key: &[u8],
    ) -> Result<Vec<Service>, FindError> {
        self.dispatch.with(|s, _| {
            s.node
                .find_multi_service(n, ty, key, false)
                .map(|found| found.iter().map(Service::from_entry).collect())
        })
    }

    /// This device's name and incarnation.
    pub fn id(&self) -> ReplicaId {
        self.dispatch.with(|s, _| s.node.id().clone())
    }

    /// How many peers this device knows (up or down).
    pub fn peer_count(&self) -> usize {
        self.dispatch.with(|s, _| s.node.peers().count())
    }

    /// The node's and the driver's counters.
    pub fn stats(&self) -> Stats {
        self.dispatch.with(|s, _| Stats {
            node: s.node.stats().clone(),
            driver: s.stats,
        })
    }

    // ---- events ----

    /// Waits for the next join or leave of any type. One task should read
    /// them: each event is delivered once. When the queue was full, a
    /// [`ServiceEvent::Lagged`] marks where events were dropped.
    pub async fn next_event(&self) -> ServiceEvent {
        if let Some(event) = self.try_next_event() {
            return event;
        }
        self.dispatch.events.receive().await
    }

    /// The next join or leave, if one is queued.
    pub fn try_next_event(&self) -> Option<ServiceEvent> {
        if let Ok(event) = self.dispatch.events.try_receive() {
            return Some(event);
        }
        // The queue is empty: report a gap that no later event reported.
        self.dispatch.with(|s, _| {
            let n = core::mem::take(&mut s.lagged);
            (n > 0).then_some(ServiceEvent::Lagged(n))
        })
    }

    // ---- calls and casts ----

    /// Sends `payload` to the online instance of `ty` that owns `key` and
    /// waits for its reply, at most `timeout` (default
    /// `Config::call_timeout`). Dropping the future abandons the call.
    pub async fn call(
        &self,
        ty: &str,
        key: &[u8],
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let call = self.command(|s, now| {
            if s.calls.is_full() {
                return Err(CallError::Busy);
            }
            let call = s.node.call(now, ty, key, payload, timeout)?;
            // Room was checked above.
            let _ = s.calls.push((call, None));
            Ok(call)
        })?;
        self.waiting(call).reply().await
    }

    /// Calls the `n` online instances of `ty` for `key` (fewer when fewer
    /// exist), owner first, and waits for every reply.
    pub async fn multi_call(
        &self,
        n: usize,
        ty: &str,
        key: &[u8],
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<(Service, Result<Vec<u8>, CallError>)>, CallError> {
        let calls = self.command(|s, now| {
            if s.calls.len() + n.min(CALLS) > CALLS {
                return Err(CallError::Busy);
            }
            let calls = s.node.multi_call(now, n, ty, key, payload, timeout)?;
            for (_, call) in &calls {
                let _ = s.calls.push((*call, None));
            }
            Ok(calls)
        })?;
        // Every slot is freed if this future is dropped part way.
        let waiting: Vec<_> = calls.iter().map(|(_, call)| self.waiting(*call)).collect();
        let mut replies = Vec::with_capacity(calls.len());
        for ((service, _), waiting) in calls.into_iter().zip(&waiting) {
            replies.push((service, waiting.reply().await));
        }
        Ok(replies)
    }

    /// Sends `payload` to the online instance of `ty` that owns `key`,
    /// expecting no reply; it is sent again until acknowledged.
    pub fn cast(&self, ty: &str, key: &[u8], payload: &[u8]) -> Result<(), CallError> {
        self.command(|s, now| s.node.cast(now, ty, key, payload))
    }

    /// Casts to the `n` online instances of `ty` for `key`; returns how many
    /// it was sent to.
    pub fn multi_cast(
        &self,
        n: usize,
        ty: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<usize, CallError> {
        self.command(|s, now| s.node.multi_cast(now, n, ty, key, payload))
    }

    /// The guard of `call`'s slot among the calls waiting for a reply.
    fn waiting(&self, call: CallId) -> Waiting<'a, M, EVENTS, REQUESTS, CALLS> {
        Waiting {
            dispatch: self.dispatch,
            call,
        }
    }

    // ---- requests for this device's instances ----

    /// Waits for the next call or cast for one of this device's instances.
    /// Answer a call with [`reply`](Self::reply).
    pub async fn next_request(&self) -> Request {
        self.dispatch.requests.receive().await
    }

    /// The next request, if one is queued.
    pub fn try_next_request(&self) -> Option<Request> {
        self.dispatch.requests.try_receive().ok()
    }

    /// Answers the call `request` with `payload`.
    pub fn reply(&self, request: &RequestId, payload: &[u8]) -> Result<(), CallError> {
        self.command(|s, now| s.node.reply(now, request, payload))
    }
}

/// A call a handle waits on; dropping it (the call's future was dropped)
/// frees its slot, and its reply is then discarded.
struct Waiting<'a, M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize> {
    dispatch: &'a Dispatch<M, EVENTS, REQUESTS, CALLS>,
    call: CallId,
}

impl<M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize>
    Waiting<'_, M, EVENTS, REQUESTS, CALLS>
{
    /// Waits for the reply, which the node delivers exactly once (its
    /// timeout included).
    async fn reply(&self) -> Result<Vec<u8>, CallError> {
        let call = self.call;
        poll_fn(|cx| {
            self.dispatch.with(|s, _| {
                let Some(i) = s.calls.iter().position(|(id, _)| *id == call) else {
                    // Unreachable while the guard lives; answer rather than hang.
                    return Poll::Ready(Err(CallError::UnknownRequest));
                };
                match s.calls[i].1.take() {
                    Some(result) => {
                        s.calls.swap_remove(i);
                        Poll::Ready(result)
                    }
                    None => {
                        s.reply_wakers.register(cx.waker());
                        Poll::Pending
                    }
                }
            })
        })
        .await
    }
}

impl<M: RawMutex, const EVENTS: usize, const REQUESTS: usize, const CALLS: usize> Drop
    for Waiting<'_, M, EVENTS, REQUESTS, CALLS>
{
    fn drop(&mut self) {
        let call = self.call;
        self.dispatch
            .with(|s, _| s.calls.retain(|(id, _)| *id != call));
    }
}
