//! A node fed arbitrary datagrams from a few addresses, timer calls and local
//! commands: it never panics, never writes a datagram over its MTU, and its
//! peer table and presence set stay within the configured bounds.
#![no_main]

use arbitrary::Arbitrary;
use dispatch_core::node::{Config, Node};
use dispatch_core::presence::ReplicaId;
use dispatch_core::time::Instant;
use dispatch_core::wire::{self, Heartbeat, Message};
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
}

fuzz_target!(|inputs: Vec<Input>| {
    let mut config = Config::small();
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
                if let Ok(len) = wire::encode(&msg, cluster, &mut buf) {
                    let bytes = buf[..len].to_vec();
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
        }
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            assert!(
                t.len <= mtu,
                "datagram of {} bytes over the MTU of {mtu}",
                t.len
            );
        }
        while node.poll_event().is_some() {}
        if let (true, Some(deadline)) = (timed, node.poll_timeout()) {
            // Right after handle_timeout, a deadline not in the future would
            // keep a driver spinning.
            assert!(deadline > now, "deadline {deadline:?} not after {now:?}");
        }
        assert!(node.peers().count() <= 4);
        assert!(node.presence().replicas().count() <= 5);
    }
});
