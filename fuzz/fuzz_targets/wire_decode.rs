//! Any bytes: decoding never panics, and whatever decodes encodes back to
//! bytes that decode to the same message.
#![no_main]

use dispatch_core::wire::{self, Message};
use libfuzzer_sys::fuzz_target;

const CLUSTER: u32 = 0x00C0_FFEE;

fuzz_target!(|data: &[u8]| {
    // Give the fuzzer a valid header most of the time, so it explores bodies.
    let mut datagram = Vec::with_capacity(data.len() + 7);
    if data.first().is_some_and(|b| b & 1 == 0) {
        datagram.extend_from_slice(&wire::MAGIC);
        datagram.push(wire::VERSION);
        datagram.extend_from_slice(&CLUSTER.to_le_bytes());
        datagram.extend_from_slice(&data[1..]);
    } else {
        datagram.extend_from_slice(data);
    }
    let Ok(msg) = wire::decode::<u16>(&datagram, CLUSTER) else {
        return;
    };
    let mut buf = vec![0u8; datagram.len() + 64];
    let len = wire::encode(&msg, CLUSTER, &mut buf).expect("a decoded message encodes");
    let again: Message<'_, u16> =
        wire::decode(&buf[..len], CLUSTER).expect("an encoded message decodes");
    assert_eq!(msg, again);
    if let Message::Chunk { .. } = msg {
        return;
    }
    // Transfer bodies too.
    if let Ok(body) = wire::decode_transfer(&datagram[7.min(datagram.len())..]) {
        let bytes = wire::encode_transfer(&body).expect("a decoded body encodes");
        assert_eq!(wire::decode_transfer(&bytes).expect("re-decodes"), body);
    }
});
