//! The handle and the runner on an in-memory network, in virtual time
//! (embassy-time's mock driver): commands and events flow between devices,
//! calls are answered, and every bounded queue that fills gives an error or
//! a counted gap, never a hang.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use dispatch_core::node::{CallError, Config, RequestKind};
use dispatch_embassy::socket::{RecvError, SendError};
use dispatch_embassy::{Dispatch, ServiceEvent, SetupError, Socket};
use embassy_futures::block_on;
use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_futures::yield_now;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{with_timeout, Duration, MockDriver, Timer};

type Inbox = Channel<NoopRawMutex, (SocketAddr, Vec<u8>), 64>;

/// Hosts by address; a datagram to an address nobody has is unreachable.
#[derive(Default)]
struct Net {
    hosts: RefCell<Vec<(SocketAddr, Rc<Inbox>)>>,
}

impl Net {
    fn socket(self: &Rc<Self>, addr: &str) -> TestSocket {
        let addr: SocketAddr = addr.parse().expect("an address");
        let inbox = Rc::new(Inbox::new());
        self.hosts.borrow_mut().push((addr, Rc::clone(&inbox)));
        TestSocket {
            addr,
            net: Rc::clone(self),
            inbox,
        }
    }

    /// Delivers `data` to `to` as if `from` sent it.
    fn inject(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let hosts = self.hosts.borrow();
        let (_, inbox) = hosts.iter().find(|(a, _)| *a == to).expect("a host");
        inbox
            .try_send((from, data.to_vec()))
            .expect("room in the inbox");
    }
}

struct TestSocket {
    addr: SocketAddr,
    net: Rc<Net>,
    inbox: Rc<Inbox>,
}

impl Socket for TestSocket {
    async fn send_to(&mut self, data: &[u8], to: SocketAddr) -> Result<(), SendError> {
        let hosts = self.net.hosts.borrow();
        let (_, inbox) = hosts
            .iter()
            .find(|(a, _)| *a == to)
            .ok_or(SendError::Unreachable)?;
        // A full inbox loses the datagram, as a full socket buffer would.
        let _ = inbox.try_send((self.addr, data.to_vec()));
        Ok(())
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), RecvError> {
        let (from, data) = self.inbox.receive().await;
        let Some(room) = buf.get_mut(..data.len()) else {
            return Err(RecvError::Truncated);
        };
        room.copy_from_slice(&data);
        Ok((data.len(), from))
    }
}

/// The mock clock is global: one test at a time, each from time zero.
static CLOCK: Mutex<()> = Mutex::new(());

/// Runs `test` with `runners` in virtual time, advancing the clock 1 ms per
/// round of polls.
fn virtual_time<T>(runners: impl Future, test: impl Future<Output = T>) -> T {
    let _one_at_a_time = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    MockDriver::get().reset();
    let clock = async {
        loop {
            MockDriver::get().advance(Duration::from_millis(1));
            yield_now().await;
        }
    };
    block_on(async {
        match select(test, join(runners, clock)).await {
            Either::First(out) => out,
            Either::Second(_) => unreachable!("the clock never stops"),
        }
    })
}

/// Awaits `f`, failing the test after `secs` virtual seconds.
async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    match with_timeout(Duration::from_secs(secs), f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing within {secs} s of virtual time"),
    }
}

/// Waits until `cond` holds, failing after `secs` virtual seconds.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    within(secs, what, async {
        while !cond() {
            Timer::after_millis(5).await;
        }
    })
    .await
}

fn config() -> Config {
    let mut c = Config::small();
    c.heartbeat_period = StdDuration::from_millis(200);
    c.down_after = StdDuration::from_secs(2);
    c.call_timeout = StdDuration::from_secs(2);
    // As many calls as the handle's queues hold, so that those fill first.
    c.max_outgoing_calls = 8;
    c.max_incoming_calls = 8;
    c
}

/// The runners of `a` at 10.0.0.1 and of `b` at 10.0.0.2, which joins
/// the cluster through `a`.
fn run_pair<'a, const EA: usize, const EB: usize>(
    net: &Rc<Net>,
    a: &'a Dispatch<NoopRawMutex, EA>,
    b: &'a Dispatch<NoopRawMutex, EB>,
) -> impl Future<Output = ((), ())> + 'a {
    join(
        a.runner(net.socket("10.0.0.1:7000"), &[]).run(),
        b.runner(net.socket("10.0.0.2:7000"), &[addr("10.0.0.1:7000")])
            .run(),
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

#[test]
fn devices_see_each_others_instances_route_to_them_and_call_them() {
    let net = Rc::new(Net::default());
    let a: Dispatch<NoopRawMutex> = Dispatch::new("a", 1, config()).expect("a node");
    let b: Dispatch<NoopRawMutex> = Dispatch::new("b", 1, config()).expect("a node");
    let runners = run_pair(&net, &a, &b);
    let (ha, hb) = (a.handle(), b.handle());
    virtual_time(runners, async {
        ha.add_service("sensor", "s1", b"v1").expect("added");
        let joined = within(5, "b hears of s1", hb.next_event()).await;
        let ServiceEvent::Joined(s) = joined else {
            panic!("expected a join, got {joined:?}")
        };
        assert_eq!(
            (&*s.ty, &*s.id, &*s.node.name, &*s.data),
            ("sensor", "s1", "a", &b"v1"[..])
        );
        let listed = hb.services("sensor");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            hb.find_service("sensor", b"file.png").expect("an owner").id,
            s.id
        );
        assert_eq!(
            hb.find_multi_service(3, "sensor", b"file.png")
                .expect("owners")
                .len(),
            1
        );

        // b calls a's instance; a's application answers.
        let answer = async {
            let request = within(5, "a's request", ha.next_request()).await;
            assert_eq!(request.kind, RequestKind::Call);
            assert_eq!((&*request.ty, &*request.service_id), ("sensor", "s1"));
            let mut reply = b"reading for ".to_vec();
            reply.extend_from_slice(&request.payload);
            ha.reply(&request.id, &reply).expect("replied");
        };
        let (reply, ()) = join(hb.call("sensor", b"file.png", b"b", None), answer).await;
        assert_eq!(reply.expect("a reply"), b"reading for b");
        assert_eq!(
            hb.call("uploader", b"k", b"", None).await,
            Err(CallError::NoService)
        );

        // A cast reaches a's application as a cast.
        hb.cast("sensor", b"file.png", b"note").expect("cast");
        let cast = within(5, "a's cast", ha.next_request()).await;
        assert_eq!(
            (cast.kind, &cast.payload[..]),
            (RequestKind::Cast, &b"note"[..])
        );

        // Junk from a stranger is dropped and counted, and changes nothing.
        let before = hb.stats().driver.datagrams_dropped;
        net.inject(addr("10.0.0.9:7000"), addr("10.0.0.2:7000"), b"\x01junk");
        until(5, "the junk is counted", || {
            hb.stats().driver.datagrams_dropped == before + 1
        })
        .await;
        assert_eq!(hb.services("sensor").len(), 1);
        assert_eq!(hb.try_next_event(), None);

        // Disabling is an update (a leave and a join); removing is one leave.
        ha.disable_service("sensor", "s1").expect("disabled");
        assert!(matches!(
            within(5, "left", hb.next_event()).await,
            ServiceEvent::Left(_)
        ));
        assert!(matches!(
            within(5, "joined", hb.next_event()).await,
            ServiceEvent::Joined(_)
        ));
        assert_eq!(
            hb.find_service("sensor", b"file.png").ok(),
            None,
            "offline is not routed to"
        );
        ha.remove_service("sensor", "s1").expect("removed");
        let left = within(5, "b hears s1 leave", hb.next_event()).await;
        assert!(
            matches!(left, ServiceEvent::Left(ref s) if &*s.id == "s1"),
            "{left:?}"
        );
        Timer::after_secs(3).await;
        assert_eq!(hb.try_next_event(), None, "one leave per remove");
        assert!(hb.services("sensor").is_empty());
    });
}

#[test]
fn a_device_that_leaves_takes_its_instances_with_it_and_its_runner_returns() {
    let net = Rc::new(Net::default());
    let a: Dispatch<NoopRawMutex> = Dispatch::new("a", 1, config()).expect("a node");
    let b: Dispatch<NoopRawMutex> = Dispatch::new("b", 1, config()).expect("a node");
    let (ha, hb) = (a.handle(), b.handle());
    let a_stopped = Rc::new(RefCell::new(false));
    let runners = join(
        async {
            a.runner(net.socket("10.0.0.1:7000"), &[]).run().await;
            *a_stopped.borrow_mut() = true;
        },
        b.runner(net.socket("10.0.0.2:7000"), &[addr("10.0.0.1:7000")])
            .run(),
    );
    virtual_time(runners, async {
        ha.add_service("sensor", "s1", b"").expect("added");
        until(5, "b lists s1", || hb.services("sensor").len() == 1).await;
        ha.leave();
        let left = within(1, "b hears s1 leave at once", async {
            loop {
                if let ServiceEvent::Left(s) = hb.next_event().await {
                    return s;
                }
            }
        })
        .await;
        assert_eq!(&*left.id, "s1");
        until(1, "a's runner returns", || *a_stopped.borrow()).await;
        assert!(
            ha.add_service("sensor", "s2", b"").is_err(),
            "a left: commands fail"
        );
    });
}

#[test]
fn a_full_event_queue_reports_the_gap_once_and_loses_nothing_after_it() {
    let net = Rc::new(Net::default());
    let a: Dispatch<NoopRawMutex> = Dispatch::new("a", 1, config()).expect("a node");
    let b: Dispatch<NoopRawMutex, 4> = Dispatch::new("b", 1, config()).expect("a node");
    let runners = run_pair(&net, &a, &b);
    let (ha, hb) = (a.handle(), b.handle());
    virtual_time(runners, async {
        for i in 0..10 {
            ha.add_service("sensor", &format!("s{i}"), b"")
                .expect("added");
        }
        until(5, "b lists all ten", || hb.services("sensor").len() == 10).await;
        let mut seen = Vec::new();
        while let Some(event) = hb.try_next_event() {
            seen.push(match event {
                ServiceEvent::Joined(_) => "joined".to_string(),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(seen, ["joined", "joined", "joined", "joined", "Lagged(6)"]);
        assert_eq!(hb.stats().driver.events_dropped, 6);
        assert_eq!(hb.try_next_event(), None, "the gap is reported once");
        ha.add_service("sensor", "s10", b"").expect("added");
        let next = within(5, "the next join", hb.next_event()).await;
        assert!(
            matches!(next, ServiceEvent::Joined(ref s) if &*s.id == "s10"),
            "{next:?}"
        );
    });
}

#[test]
fn calls_past_the_limit_are_busy_unanswered_ones_time_out_and_dropped_ones_free_their_slot() {
    let net = Rc::new(Net::default());
    let a: Dispatch<NoopRawMutex> = Dispatch::new("a", 1, config()).expect("a node");
    let b: Dispatch<NoopRawMutex> = Dispatch::new("b", 1, config()).expect("a node");
    let runners = run_pair(&net, &a, &b);
    let (ha, hb) = (a.handle(), b.handle());
    virtual_time(runners, async {
        ha.add_service("sensor", "s1", b"").expect("added");
        until(5, "b lists s1", || hb.services("sensor").len() == 1).await;
        // Nobody on a answers: eight calls fill b's slots.
        let mut calls: Vec<_> = (0..8)
            .map(|_| Box::pin(hb.call("sensor", b"k", b"?", None)))
            .collect();
        for call in &mut calls {
            assert!(embassy_futures::poll_once(call.as_mut()).is_pending());
        }
        let ninth = within(1, "a ninth call", hb.call("sensor", b"k", b"?", None)).await;
        assert_eq!(ninth, Err(CallError::Busy), "full, not a hang");
        // Dropping a waiting call frees the handle's slot, but the node
        // still waits on that call until its timeout: Busy, not a hang.
        drop(calls.pop());
        let busy = within(
            1,
            "a call after a drop",
            hb.call("sensor", b"k", b"?", None),
        )
        .await;
        assert_eq!(busy, Err(CallError::Busy));
        for call in calls {
            assert_eq!(within(5, "a timeout", call).await, Err(CallError::Timeout));
        }
        // Every slot is free again.
        let later = within(5, "a later call", hb.call("sensor", b"k", b"?", None)).await;
        assert_eq!(later, Err(CallError::Timeout));
        // a's application never took its requests: the queue holds eight,
        // and the ninth, sent once the node had forgotten the first ones,
        // was dropped and counted.
        let mut queued = 0;
        while ha.try_next_request().is_some() {
            queued += 1;
        }
        assert_eq!(queued, 8);
        assert_eq!(ha.stats().driver.requests_dropped, 1);
    });
}

#[test]
fn setup_refuses_limits_beyond_the_queues_and_other_transports() {
    let _one_at_a_time = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    let refused = Dispatch::<NoopRawMutex, 16, 2, 8>::new("a", 1, Config::small()).err();
    assert_eq!(
        refused.map(|e| e.to_string()).as_deref(),
        Some(
            "Config::max_incoming_calls is 4 but Dispatch's REQUESTS parameter holds 2: \
             set Config::max_incoming_calls to at most 2, or raise REQUESTS"
        )
    );
    let mut c = Config::small();
    c.transport_broadcasts = true;
    assert!(matches!(
        Dispatch::<NoopRawMutex>::new("a", 1, c).err(),
        Some(SetupError::Transport("Config::transport_broadcasts"))
    ));
    let mut c = Config::small();
    c.mtu = 100;
    assert!(matches!(
        Dispatch::<NoopRawMutex>::new("a", 1, c).err(),
        Some(SetupError::Config(_))
    ));
}
