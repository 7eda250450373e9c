//! Merge laws of the presence set, and delta = full state.

mod presence_support;

use presence_support::*;
use proptest::prelude::*;

/// A history over three replicas: local operations and partial syncs.
#[derive(Debug, Clone)]
enum Step {
    Op(usize, LocalOp),
    Delta(usize, usize),
    Sync(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..3, local_op()).prop_map(|(r, op)| Step::Op(r, op)),
        1 => (0usize..3, 0usize..3).prop_map(|(a, b)| Step::Delta(a, b)),
        1 => (0usize..3, 0usize..3).prop_map(|(a, b)| Step::Sync(a, b)),
    ]
}

fn run(steps: &[Step]) -> Vec<dispatch_core::presence::Presence> {
    let mut n = vec![node("a", 1), node("b", 1), node("c", 1)];
    for s in steps {
        match s {
            Step::Op(r, op) => apply(&mut n[*r], op),
            Step::Delta(from, to) if from != to => {
                let d = n[*from]
                    .catch_up(0)
                    .map(|d| postcard::to_allocvec(&d).unwrap());
                if let Some(bytes) = d {
                    let (src, dst) = pair(&mut n, *from, *to);
                    deliver(dst, &bytes, Some(src));
                }
            }
            Step::Sync(from, to) if from != to => {
                let (src, dst) = pair(&mut n, *from, *to);
                dst.merge_state(src).unwrap();
            }
            _ => {}
        }
    }
    n
}

fn pair(
    n: &mut [dispatch_core::presence::Presence],
    from: usize,
    to: usize,
) -> (
    &dispatch_core::presence::Presence,
    &mut dispatch_core::presence::Presence,
) {
    if from < to {
        let (l, r) = n.split_at_mut(to);
        (&l[from], &mut r[0])
    } else {
        let (l, r) = n.split_at_mut(from);
        (&r[0], &mut l[to])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_is_commutative_associative_idempotent(steps in prop::collection::vec(step(), 0..60)) {
        let n = run(&steps);
        let (a, b, c) = (&n[0], &n[1], &n[2]);

        let mut ab = a.clone();
        ab.merge_state(b).unwrap();
        let mut ba = b.clone();
        ba.merge_state(a).unwrap();
        prop_assert_eq!(dump(&ab), dump(&ba));

        let mut ab_c = ab.clone();
        ab_c.merge_state(c).unwrap();
        let mut bc = b.clone();
        bc.merge_state(c).unwrap();
        let mut a_bc = a.clone();
        a_bc.merge_state(&bc).unwrap();
        prop_assert_eq!(dump(&ab_c), dump(&a_bc));

        let before = dump(&ab);
        let s = ab.merge_state(b).unwrap();
        prop_assert_eq!((s.joins, s.leaves), (0, 0));
        prop_assert_eq!(dump(&ab), before);
        let s = ab.merge_state(&ab.clone()).unwrap();
        prop_assert_eq!((s.joins, s.leaves), (0, 0));

        // The join holds exactly the union of each replica's own entries.
        let mut union = own(a);
        union.extend(own(b));
        union.extend(own(c));
        union.sort();
        prop_assert_eq!(dump(&ab_c), union);
    }

    #[test]
    fn deltas_equal_full_state(
        ops in prop::collection::vec(local_op(), 0..80),
        cuts in prop::collection::vec(any::<bool>(), 80),
        late in 0usize..80,
    ) {
        let mut a = node("a", 1);
        let mut by_delta = node("b", 1);
        let mut late_peer = node("c", 1);
        for (k, op) in ops.iter().enumerate() {
            apply(&mut a, op);
            if cuts[k] {
                if let Some(bytes) = encode_delta(&mut a) {
                    deliver(&mut by_delta, &bytes, Some(&a));
                }
            }
            if k == late {
                late_peer.merge_state(&a).unwrap();
            }
        }
        if let Some(bytes) = encode_delta(&mut a) {
            deliver(&mut by_delta, &bytes, Some(&a));
        }
        let mut by_state = node("d", 1);
        by_state.merge_state(&a).unwrap();
        prop_assert_eq!(dump(&by_delta), own(&a));
        prop_assert_eq!(dump(&by_state), own(&a));

        // A lagging peer catches up with a generation when one covers it.
        let have = late_peer.replicas().find(|r| *r.id == *a.me()).map_or(0, |r| r.clock);
        catch_up(&mut late_peer, &a, have);
        prop_assert_eq!(dump(&late_peer), own(&a));
    }

    #[test]
    fn every_generation_catches_up_from_its_start(ops in prop::collection::vec(local_op(), 0..150), at in 0u64..150) {
        let mut a = node("a", 1);
        let mut snapshots = Vec::new();
        for op in &ops {
            snapshots.push((a.clock(), a.clone()));
            apply(&mut a, op);
        }
        // A peer that synced at some past clock and then catches up.
        if let Some((clock, past)) = snapshots.iter().find(|(c, _)| *c >= at.min(a.clock())) {
            let mut peer = node("p", 1);
            peer.merge_state(past).unwrap();
            match a.catch_up(*clock) {
                Some(d) => {
                    prop_assert!(d.start <= *clock);
                    peer.merge_delta(&d).unwrap();
                }
                None => { peer.merge_state(&a).unwrap(); }
            }
            prop_assert_eq!(dump(&peer), own(&a));
        }
    }
}
