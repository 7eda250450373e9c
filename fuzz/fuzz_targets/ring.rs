//! Builds rings from arbitrary histories and checks that the answers depend
//! only on the final member set, that claims resolve to the smallest key, that
//! replica lists are distinct and complete, and that a leave moves only the
//! leaver's keys.
#![no_main]

use arbitrary::Arbitrary;
use dispatch_core::ring::{Ring, Routing, Slot};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Insert { key: u8, slot: u8, online: bool },
    Remove { key: u8 },
    SetOnline { key: u8, online: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
    /// Spreads slots out so that sparse rings (rounds and fallback) are hit.
    stride: u8,
    keys: Vec<u32>,
}

const BOTH: [Routing; 2] = [Routing::OnlineOnly, Routing::AllowOffline];

/// The highest slot routable under `routing`.
fn highest(r: &Ring<u8>, routing: Routing) -> Option<u32> {
    r.members()
        .filter(|(k, m)| r.holds(k) && (m.online || routing == Routing::AllowOffline))
        .map(|(_, m)| m.slot)
        .max()
}

fn answers(r: &Ring<u8>, keys: &[[u8; 4]]) -> Vec<(Option<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for k in keys {
        for routing in BOTH {
            out.push((
                r.lookup(k, routing).copied(),
                r.lookup_n(k, 5, routing).into_iter().copied().collect(),
            ));
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let stride = Slot::from(input.stride % 64) + 1;
    let mut ring = Ring::new();
    for op in input.ops.iter().take(200) {
        match *op {
            Op::Insert { key, slot, online } => {
                let claim = ring.insert(key, Slot::from(slot % 48) * stride, online);
                assert!(claim.is_ok());
            }
            Op::Remove { key } => {
                ring.remove(&key);
            }
            Op::SetOnline { key, online } => {
                assert_eq!(ring.set_online(&key, online), ring.member(&key).is_some());
            }
        }
    }
    let set: Vec<(u8, Slot, bool)> = ring
        .members()
        .map(|(k, m)| (*k, m.slot, m.online))
        .collect();
    let mut keys: Vec<[u8; 4]> = input
        .keys
        .iter()
        .take(32)
        .map(|k| k.to_le_bytes())
        .collect();
    keys.extend((0..16u32).map(|k| k.to_le_bytes()));

    // Purity: the same set in ascending and descending order answers alike.
    let mut up = Ring::new();
    for &(k, s, o) in &set {
        up.insert(k, s, o).unwrap();
    }
    let mut down = Ring::new();
    for &(k, s, o) in set.iter().rev() {
        down.insert(k, s, o).unwrap();
    }
    let want = answers(&ring, &keys);
    assert_eq!(answers(&up, &keys), want);
    assert_eq!(answers(&down, &keys), want);
    assert_eq!(up.free_slot(), ring.free_slot());
    assert!(up.displaced().eq(ring.displaced()));

    // Claims: the smallest claimant holds each slot.
    for &(k, s, _) in &set {
        let smallest = set.iter().filter(|m| m.1 == s).map(|m| m.0).min();
        assert_eq!(ring.holder(s).copied(), smallest);
        assert_eq!(ring.holds(&k), smallest == Some(k));
    }

    // Replica lists: min(n, routable) distinct holders, the owner first.
    for routing in BOTH {
        let routable = ring.routable(routing);
        for k in &keys {
            let list = ring.lookup_n(k, 5, routing);
            assert_eq!(list.len(), routable.min(5));
            for (i, m) in list.iter().enumerate() {
                assert!(ring.holds(m));
                assert!(!list[..i].contains(m));
                if routing == Routing::OnlineOnly {
                    assert!(ring.member(m).unwrap().online);
                }
            }
            assert_eq!(list.first().copied(), ring.lookup(k, routing));
        }
    }

    // Minimal disruption: a leave moves only the leaver's keys (or hands
    // them to the contender that takes its slot). Read backwards, the same
    // pair of rings checks that a join moves keys only to the joiner. The
    // highest routable slot is the exception (it sets the range buckets are
    // drawn in; ring_props bounds what else it moves), so a leave that
    // changes it is not checked here.
    for &(leaver, slot, _) in set.iter().take(4) {
        let mut after = ring.clone();
        after.remove(&leaver);
        let successor = after.holder(slot).filter(|_| ring.holds(&leaver)).copied();
        for routing in BOTH {
            if highest(&ring, routing) != highest(&after, routing) {
                continue;
            }
            for k in &keys {
                let (old, new) = (ring.lookup(k, routing), after.lookup(k, routing));
                assert!(
                    old == new
                        || old == Some(&leaver)
                        || (successor.is_some() && new == successor.as_ref()),
                    "{old:?} -> {new:?} after {leaver} left"
                );
            }
        }
    }
});
