//! A node fed arbitrary datagrams from a few addresses, timer calls and local
//! commands, calls and replies: it never panics, never writes a datagram
//! over its MTU, and its peer table, presence set and call tables stay within
//! the configured bounds. Half the runs give the node a keyring and seal the
//! well-formed messages with its key: forged, flipped and replayed sealed
//! datagrams come from the raw inputs.
#![no_main]

use arbitrary::Arbitrary;
use dispatch_core::keyring::{Key, Keyring};
use dispatch_core::node::{Config, Event, Node, RequestId};
use dispatch_core::presence::ReplicaId;
use dispatch_core::time::Instant;
use dispatch_core::wire::{self, CallRequest, Framing, Heartbeat, Message, Outcome};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Input {
    /// Raw bytes from address `from`.
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    /// A well-formed heartbeat, so the fuzzer reaches the deeper handlers.
    Heartbeat {
        from: u8,
        name: u8,
        incarnation: u8,
        seq: u8,
        clock: u16,
        want_peers: bool,
    },
    /// A well-formed header in front of arbitrary body bytes.
    Body {
        from: u8,
        bytes: Vec<u8>,
    },
    /// Time passes.
    Advance {
        millis: u16,
    },
    /// Local commands.
    Add {
        id: u8,
    },
    Remove {
        id: u8,
    },
    Disable {
        id: u8,
    },
    /// A well-formed request for one of our instances (or not).
    Request {
        from: u8,
        name: u8,
        incarnation: u8,
        call: u8,
        id: u8,
        budget_ms: u16,
        cast: bool,
        done_below: u8,
        len: u16,
    },
    /// A well-formed reply to a call we may have made.
    Reply {
        from: u8,
        name: u8,
        incarnation: u8,
        call: u8,
        len: u16,
    },
    /// A local call or cast.
    Call {
        key: u8,
        cast: bool,
        timeout_ms: u16,
    },
    /// The application answers one of the requests it was handed.
    Answer {
        which: u8,
        len: u16,
    },
}

/// A run: the node holds a keyring (and the well-formed messages are sealed
/// with its key) or speaks in the clear.
#[derive(Debug, Arbitrary)]
struct Run {
    keyed: bool,
    inputs: Vec<Input>,
}

fuzz_target!(|run: Run| {
    let Run { keyed, inputs } = run;
    let key = Key::new(1, [7; 32]).expect("a valid key id");
    let mut config = Config::small();
    if keyed {
        config.keyring = Some(Keyring::new(key.clone()));
    }
    // Well-formed messages are written for the node's incarnation, sealed
    // when it is keyed, so that they reach the handlers past the stranger
    // check.
    let cluster_id = config.cluster_id;
    let mut nonce = 0u128;
    let mut frame = |msg: &Message<'_, u8>, buf: &mut [u8]| -> Option<Vec<u8>> {
        nonce += 1;
        let framing = Framing {
            cluster: cluster_id,
            to: Some(1),
            seal: keyed.then_some((&key, nonce)),
        };
        let len = wire::encode_framed(msg, &framing, buf).ok()?;
        Some(buf[..len].to_vec())
    };
    config.max_peers = 4;
    config.presence.max_replicas = 5;
    let mtu = config.mtu;
    let cluster = config.cluster_id;
    let Ok(mut node) = Node::<u8>::new(ReplicaId::new("me", 1), config, Instant::ZERO) else {
        return;
    };
    let mut now = Instant::ZERO;
    node.join(now, &[1, 2]);
    let mut buf = vec![0u8; 65_536];
    let mut requests: Vec<RequestId> = Vec::new();
    for input in inputs.into_iter().take(512) {
        let timed = matches!(input, Input::Advance { .. });
        match input {
            Input::Raw { from, bytes } => {
                let _ = node.handle_datagram(now, from, &bytes);
            }
            Input::Heartbeat {
                from,
                name,
                incarnation,
                seq,
                clock,
                want_peers,
            } => {
                let msg: Message<'_, u8> = Message::Heartbeat(Heartbeat {
                    from: ReplicaId::new(&format!("p{}", name % 8), u64::from(incarnation)),
                    seq: u64::from(seq),
                    clock: u64::from(clock),
                    want_peers,
                    peers: Vec::new(),
                });
                if let Some(bytes) = frame(&msg, &mut buf) {
                    let _ = node.handle_datagram(now, from, &bytes);
                }
            }
            Input::Body { from, bytes } => {
                let mut datagram = wire::MAGIC.to_vec();
                datagram.push(wire::VERSION);
                datagram.extend_from_slice(&cluster.to_le_bytes());
                datagram.extend_from_slice(&bytes);
                let _ = node.handle_datagram(now, from, &datagram);
            }
            Input::Advance { millis } => {
                now = now + core::time::Duration::from_millis(u64::from(millis));
                node.handle_timeout(now);
            }
            Input::Add { id } => {
                let _ = node.add_service(now, "t", &format!("s{id}"), b"");
            }
            Input::Remove { id } => {
                let _ = node.remove_service(now, "t", &format!("s{id}"));
            }
            Input::Disable { id } => {
                let _ = node.disable_service(now, "t", &format!("s{id}"));
            }
            Input::Request {
                from,
                name,
                incarnation,
                call,
                id,
                budget_ms,
                cast,
                done_below,
                len,
            } => {
                let payload = vec![1u8; usize::from(len % 2048)];
                let id = format!("s{id}");
                let msg: Message<'_, u8> = Message::Request {
                    from: ReplicaId::new(&format!("p{}", name % 8), u64::from(incarnation)),
                    request: CallRequest {
                        call: u64::from(call),
                        ty: "t",
                        id: &id,
                        budget_ms: u32::from(budget_ms),
                        cast,
                        done_below: u64::from(done_below),
                        payload: &payload,
                    },
                };
                if let Some(bytes) = frame(&msg, &mut buf) {
                    let _ = node.handle_datagram(now, from, &bytes);
                }
            }
            Input::Reply {
                from,
                name,
                incarnation,
                call,
                len,
            } => {
                let payload = vec![2u8; usize::from(len % 2048)];
                let msg: Message<'_, u8> = Message::Reply {
                    from: ReplicaId::new(&format!("p{}", name % 8), u64::from(incarnation)),
                    call: u64::from(call),
                    outcome: Outcome::Replied(&payload),
                };
                if let Some(bytes) = frame(&msg, &mut buf) {
                    let _ = node.handle_datagram(now, from, &bytes);
                }
            }
            Input::Call {
                key,
                cast,
                timeout_ms,
            } => {
                let timeout = Some(core::time::Duration::from_millis(u64::from(timeout_ms) + 1));
                let _ = if cast {
                    node.cast(now, "t", &[key], b"x")
                } else {
                    node.call(now, "t", &[key], b"x", timeout).map(|_| ())
                };
            }
            Input::Answer { which, len } => {
                if !requests.is_empty() {
                    let id = requests[usize::from(which) % requests.len()].clone();
                    let _ = node.reply(now, &id, &vec![3u8; usize::from(len)]);
                }
            }
        }
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            assert!(
                t.len <= mtu,
                "datagram of {} bytes over the MTU of {mtu}",
                t.len
            );
        }
        while let Some(event) = node.poll_event() {
            if let Event::Request(r) = event {
                requests.push(r.id);
                if requests.len() > 16 {
                    requests.remove(0);
                }
            }
        }
        if let (true, Some(deadline)) = (timed, node.poll_timeout()) {
            // Right after handle_timeout, a deadline not in the future would
            // keep a driver spinning.
            assert!(deadline > now, "deadline {deadline:?} not after {now:?}");
        }
        assert!(node.peers().count() <= 4);
        assert!(node.presence().replicas().count() <= 5);
        let (outgoing, incoming) = node.calls_in_flight();
        assert!(
            outgoing <= 8 && incoming <= 8,
            "{outgoing} calls out, {incoming} in"
        );
    }
});
