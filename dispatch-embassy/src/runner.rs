//! [`Runner`]: the one loop that moves datagrams and time in and out of the
//! node, and nothing else (adapters only drive).

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use dispatch_core::time::Instant;
use dispatch_core::transmit::Destination;
use embassy_futures::select::{select3, Either3};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::Timer;

use crate::dispatch::Dispatch;
use crate::socket::{RecvError, Socket};
use crate::time;

/// Largest datagram the runner receives: the largest UDP payload in one
/// Ethernet frame (1500 − 20 − 8 bytes), so that servers with the default
/// 1200-byte MTU reach a device whose own MTU is smaller. The socket's
/// receive buffer must hold at least one datagram this long.
pub const RECV_BUFFER: usize = 1472;

/// Drives one [`Dispatch`] node over a [`Socket`]. Made by
/// [`Dispatch::runner`]; run it in its own task with [`run`](Self::run).
pub struct Runner<
    'a,
    M: RawMutex,
    S,
    const EVENTS: usize,
    const REQUESTS: usize,
    const CALLS: usize,
> {
    dispatch: &'a Dispatch<M, EVENTS, REQUESTS, CALLS>,
    socket: S,
    /// Lent to `poll_transmit`: the node's MTU.
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl<
        'a,
        M: RawMutex,
        S: Socket,
        const EVENTS: usize,
        const REQUESTS: usize,
        const CALLS: usize,
    > Runner<'a, M, S, EVENTS, REQUESTS, CALLS>
{
    pub(crate) fn new(
        dispatch: &'a Dispatch<M, EVENTS, REQUESTS, CALLS>,
        socket: S,
        mtu: usize,
    ) -> Self {
        Runner {
            dispatch,
            socket,
            tx: vec![0; mtu],
            rx: vec![0; RECV_BUFFER],
        }
    }

    /// Runs the node: receives, times out, or wakes on a handle's command;
    /// after each, sends what the node wrote and routes what it reported.
    /// Returns once the node has left the cluster
    /// ([`Handle::leave`](crate::Handle::leave)) and its farewell is sent.
    pub async fn run(mut self) {
        // The time of the last timer input, so that a deadline the node did
        // not move past it cannot spin the loop.
        let mut last_timeout: Option<Instant> = None;
        loop {
            self.flush().await;
            let (deadline, left) = self
                .dispatch
                .with(|s, _| (s.node.poll_timeout(), s.node.has_left()));
            if left {
                return;
            }
            let deadline = match (deadline, last_timeout) {
                (Some(t), Some(last)) if t <= last => Some(last + Duration::from_millis(1)),
                (t, _) => t,
            };
            let timer = Timer::at(deadline.map_or(embassy_time::Instant::MAX, time::to_embassy));
            let dispatch = self.dispatch;
            match select3(
                self.socket.recv_from(&mut self.rx),
                timer,
                dispatch.wake.wait(),
            )
            .await
            {
                Either3::First(Ok((len, from))) => {
                    let data = &self.rx[..len];
                    dispatch.with(|s, now| {
                        // Counted by reason in the node's stats.
                        if s.node.handle_datagram(now, from, data).is_err() {
                            s.stats.datagrams_dropped += 1;
                        }
                    });
                    last_timeout = None;
                }
                Either3::First(Err(RecvError::Truncated)) => {
                    dispatch.with(|s, _| s.stats.truncated += 1);
                }
                Either3::Second(()) => {
                    last_timeout = Some(dispatch.with(|s, now| {
                        s.node.handle_timeout(now);
                        now
                    }));
                }
                Either3::Third(()) => last_timeout = None,
            }
        }
    }

    /// Sends every datagram the node wrote, then routes its events.
    async fn flush(&mut self) {
        loop {
            let tx = &mut self.tx;
            let next = self.dispatch.with(|s, now| {
                s.node
                    .poll_transmit(now, tx)
                    .map(|t| (t.destination, t.len))
            });
            let Some((to, len)) = next else { break };
            let sent = match to {
                Destination::Peer(addr) => self.socket.send_to(&self.tx[..len], addr).await.is_ok(),
                // Not written: `Dispatch::new` refuses broadcasting
                // transports.
                Destination::Broadcast => false,
            };
            if !sent {
                self.dispatch.with(|s, _| s.stats.send_errors += 1);
            }
        }
        self.dispatch.route_events();
    }
}
