//! Any bytes: decoding and opening never panic, whatever decodes encodes
//! back to bytes that decode to the same message, and any body sealed with
//! the cluster key opens to itself, while the same datagram with one byte
//! changed, or opened for another incarnation, does not open.
#![no_main]

use dispatch_core::keyring::{Key, Keyring};
use dispatch_core::wire::{self, Framing, Message, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

const CLUSTER: u32 = 0x00C0_FFEE;

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::new(Key::new(3, [0x42; 32]).expect("a valid key id"));
    // Give the fuzzer a valid header most of the time, so it explores bodies
    // (the last header byte, key id and addressed bit, comes from the input).
    let mut datagram = Vec::with_capacity(data.len() + HEADER_LEN);
    if data.first().is_some_and(|b| b & 1 == 0) {
        datagram.extend_from_slice(&wire::MAGIC);
        datagram.push(wire::VERSION);
        datagram.extend_from_slice(&CLUSTER.to_le_bytes());
        datagram.extend_from_slice(&data[1..]);
    } else {
        datagram.extend_from_slice(data);
    }
    // Opening hostile bytes, keyed or not, never panics, and a body it
    // hands back lies inside the datagram.
    for ring in [None, Some(&keyring)] {
        let mut copy = datagram.clone();
        if let Ok(opened) = wire::open(&mut copy, CLUSTER, ring, 7) {
            assert!(opened.body.end <= copy.len());
        }
    }
    sealed_round_trip(&keyring, data);
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
    if let Ok(body) = wire::decode_transfer(&datagram[HEADER_LEN.min(datagram.len())..]) {
        let bytes = wire::encode_transfer(&body).expect("a decoded body encodes");
        assert_eq!(wire::decode_transfer(&bytes).expect("re-decodes"), body);
    }
});

/// Seals `data` as a body, addressed to incarnation 7 when its first byte
/// is odd, and opens it again; then changes one byte chosen by the input.
fn sealed_round_trip(keyring: &Keyring, data: &[u8]) {
    let addressed = data.first().is_some_and(|b| b & 1 == 1);
    let nonce = data
        .iter()
        .take(12)
        .fold(0u128, |n, &b| n << 8 | u128::from(b));
    let framing = Framing {
        cluster: CLUSTER,
        to: addressed.then_some(7),
        seal: Some((keyring.primary(), nonce)),
    };
    let start = framing.body_start();
    let mut buf = vec![0u8; framing.overhead() + data.len()];
    buf[start..start + data.len()].copy_from_slice(data);
    let len = framing
        .close(&mut buf, data.len())
        .expect("the buffer fits");
    assert_eq!(len, buf.len());
    let sealed = buf.clone();
    let opened = wire::open(&mut buf, CLUSTER, Some(keyring), 7).expect("it opens");
    assert_eq!(&buf[opened.body], data);
    if addressed {
        assert!(wire::open(&mut sealed.clone(), CLUSTER, Some(keyring), 8).is_err());
    }
    if let Some(&pick) = data.last() {
        let mut bad = sealed;
        let at = usize::from(pick) * 7 % bad.len();
        bad[at] ^= 0x01 | pick;
        assert!(wire::open(&mut bad, CLUSTER, Some(keyring), 7).is_err());
    }
}
