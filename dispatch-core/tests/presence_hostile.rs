//! Hostile deltas and extracts: each gives its error and changes nothing.

mod presence_support;

use dispatch_core::presence::{
    Config, Delta, Extract, MergeError, Meta, OpError, Presence, ReplicaId, WireEntry, MAX_CLOCK,
};
use presence_support::*;

fn entry<'a>(ty: &'a str, id: &'a str, clock: u64) -> WireEntry<'a> {
    WireEntry {
        ty,
        id,
        clock,
        prev: 0,
        meta: Meta::online(0, b""),
    }
}

fn delta<'a>(
    name: &str,
    inc: u64,
    start: u64,
    end: u64,
    adds: Vec<WireEntry<'a>>,
    removes: Vec<u64>,
) -> Delta<'a> {
    Delta {
        replica: ReplicaId::new(name, inc),
        start,
        end,
        adds,
        removes,
    }
}

/// A receiver that knows `p` at clock 2 with entries at clocks 1 and 2.
fn receiver() -> Presence {
    let mut r = node("r", 1);
    r.add("own", "o", Meta::online(0, b"")).unwrap();
    r.merge_delta(&delta(
        "p",
        5,
        0,
        2,
        vec![entry("t", "x", 1), entry("t", "y", 2)],
        vec![],
    ))
    .unwrap();
    r
}

fn refused(d: &Delta<'_>, expect: MergeError) {
    let mut r = receiver();
    let before = (dump(&r), r.context());
    assert_eq!(r.merge_delta(d), Err(expect));
    assert_eq!(
        (dump(&r), r.context()),
        before,
        "state changed after {expect}"
    );
    assert!(!expect.to_string().is_empty());
}

#[test]
fn hostile_deltas_are_refused_without_change() {
    refused(
        &delta("p", 5, 3, 4, vec![entry("t", "z", 4)], vec![]),
        MergeError::Gap { have: 2, need: 3 },
    );
    refused(
        &delta("r", 1, 0, 1, vec![entry("t", "z", 1)], vec![]),
        MergeError::OwnReplica,
    );
    refused(
        &delta("r", 2, 0, 1, vec![entry("t", "z", 1)], vec![]),
        MergeError::OwnReplica,
    );
    refused(
        &delta("p", 4, 0, 1, vec![], vec![]),
        MergeError::StaleIncarnation { have: 5, got: 4 },
    );
    refused(
        &delta("p", 5, 2, 1, vec![], vec![]),
        MergeError::BadRange { start: 2, end: 1 },
    );
    refused(
        &delta("p", 5, 2, 4, vec![entry("t", "z", 5)], vec![]),
        MergeError::ClockOutOfRange { clock: 5 },
    );
    refused(
        &delta("p", 5, 2, 4, vec![entry("t", "z", 2)], vec![]),
        MergeError::ClockOutOfRange { clock: 2 },
    );
    refused(
        &delta("p", 5, 2, 4, vec![], vec![3]),
        MergeError::ClockOutOfRange { clock: 3 },
    );
    refused(
        &delta("p", 5, 2, 4, vec![], vec![2, 1]),
        MergeError::ClocksNotIncreasing { clock: 1 },
    );
    refused(
        &delta(
            "p",
            5,
            2,
            5,
            vec![entry("t", "z", 4), entry("t", "w", 3)],
            vec![],
        ),
        MergeError::ClocksNotIncreasing { clock: 3 },
    );
    refused(
        &delta(
            "p",
            5,
            2,
            5,
            vec![entry("t", "z", 3), entry("t", "z", 4)],
            vec![],
        ),
        MergeError::DuplicateKey { clock: 4 },
    );
    // Collides with a kept entry (x at clock 1 is not removed).
    refused(
        &delta("p", 5, 2, 3, vec![entry("t", "x", 3)], vec![]),
        MergeError::DuplicateKey { clock: 3 },
    );
    let mut bad_prev = entry("t", "z", 3);
    bad_prev.prev = 3;
    refused(
        &delta("p", 5, 2, 3, vec![bad_prev], vec![]),
        MergeError::BadPrev { clock: 3 },
    );
    let long = "x".repeat(300);
    refused(
        &delta(&long, 1, 0, 0, vec![], vec![]),
        MergeError::NameTooLong { len: 300, max: 255 },
    );
    refused(
        &delta("p", 5, 2, 3, vec![entry(&long, "z", 3)], vec![]),
        MergeError::TypeTooLong { len: 300, max: 255 },
    );
    refused(
        &delta("p", 5, 2, 3, vec![entry("t", &long, 3)], vec![]),
        MergeError::IdTooLong { len: 300, max: 255 },
    );
    let data = vec![0u8; 2000];
    let mut big = entry("t", "z", 3);
    big.meta.data = &data;
    refused(
        &delta("p", 5, 2, 3, vec![big], vec![]),
        MergeError::DataTooLong {
            len: 2000,
            max: 1024,
        },
    );
    // No replica reaches a clock past MAX_CLOCK: data claiming one is
    // refused, whether an entry or only the range end lies there.
    let past = MAX_CLOCK + 1;
    refused(
        &delta("q", 1, 0, past, vec![entry("t", "z", past)], vec![]),
        MergeError::ClockTooLarge {
            clock: past,
            max: MAX_CLOCK,
        },
    );
    refused(
        &delta("p", 5, 2, u64::MAX, vec![entry("t", "z", 3)], vec![]),
        MergeError::ClockTooLarge {
            clock: u64::MAX,
            max: MAX_CLOCK,
        },
    );
}

#[test]
fn clocks_up_to_the_limit_are_stored_exactly() {
    // The record packs the clock with the replica slot: the largest clock
    // must read back whole, and stay apart from the replica's other entries.
    let mut r = receiver();
    let top = MAX_CLOCK;
    let d = delta(
        "q",
        1,
        0,
        top - 1,
        vec![entry("t", "a", top - 2), entry("u", "b", top - 1)],
        vec![],
    );
    assert_eq!(r.merge_delta(&d).unwrap().joins, 2);
    let clocks = |r: &Presence, ty: &str| -> Vec<(String, u64)> {
        r.entries_of_type(ty)
            .map(|e| (e.replica().name.to_string(), e.reference().clock))
            .collect()
    };
    let (p, q) = (String::from("p"), String::from("q"));
    // Listed by id: q's "a" before p's "x" and "y".
    let t = [(q.clone(), top - 2), (p.clone(), 1), (p, 2)];
    assert_eq!(clocks(&r, "t"), t);
    assert_eq!(clocks(&r, "u"), [(q.clone(), top - 1)]);
    // The last operation a replica can make: a remove found by its packed
    // clock, and an add at the largest clock.
    let last = delta(
        "q",
        1,
        top - 1,
        top,
        vec![entry("u", "c", top)],
        vec![top - 2],
    );
    let s = r.merge_delta(&last).unwrap();
    assert_eq!((s.joins, s.leaves), (1, 1));
    assert_eq!(clocks(&r, "t"), t[1..]);
    assert_eq!(clocks(&r, "u"), [(q.clone(), top - 1), (q, top)]);
    assert_eq!(r.context().clock_of(&ReplicaId::new("q", 1)), Some(top));
}

#[test]
fn a_remove_in_the_same_delta_frees_the_key() {
    let mut r = receiver();
    // x (clock 1) is removed and re-added at clock 3: no collision.
    let s = r
        .merge_delta(&delta("p", 5, 2, 3, vec![entry("t", "x", 3)], vec![1]))
        .unwrap();
    assert_eq!((s.joins, s.leaves), (1, 1));
    assert_eq!(r.get("p", "t", "x").unwrap().reference().clock, 3);
    // Replay and overlap change nothing.
    let s = r
        .merge_delta(&delta("p", 5, 2, 3, vec![entry("t", "x", 3)], vec![1]))
        .unwrap();
    assert_eq!((s.joins, s.leaves), (0, 0));
    let s = r
        .merge_delta(&delta(
            "p",
            5,
            0,
            3,
            vec![entry("t", "y", 2), entry("t", "x", 3)],
            vec![],
        ))
        .unwrap();
    assert_eq!((s.joins, s.leaves), (0, 0));
}

#[test]
fn limits_refuse_merges_without_change() {
    let config = Config {
        max_entries_per_replica: 2,
        max_replicas: 2,
        ..cfg()
    };
    let mut r = Presence::new(ReplicaId::new("r", 1), config).unwrap();
    let before = dump(&r);
    let d = delta(
        "p",
        1,
        0,
        3,
        vec![entry("t", "a", 1), entry("t", "b", 2), entry("t", "c", 3)],
        vec![],
    );
    assert_eq!(
        r.merge_delta(&d),
        Err(MergeError::TooManyEntries { max: 2 })
    );
    assert_eq!(dump(&r), before);
    r.merge_delta(&delta("p", 1, 0, 1, vec![entry("t", "a", 1)], vec![]))
        .unwrap();
    assert_eq!(
        r.merge_delta(&delta("q", 1, 0, 1, vec![entry("t", "a", 1)], vec![])),
        Err(MergeError::TooManyReplicas { max: 2 })
    );
    let mut q = node("q", 1);
    q.add("t", "z", Meta::online(0, b"")).unwrap();
    let before = (dump(&r), r.context());
    assert_eq!(
        r.merge_state(&q),
        Err(MergeError::TooManyReplicas { max: 2 })
    );
    assert_eq!((dump(&r), r.context()), before);
}

#[test]
fn the_total_entry_limit_bounds_the_whole_set() {
    let config_of = |max_entries| Config {
        max_entries_per_replica: 10,
        max_entries,
        ..cfg()
    };
    let mut r = Presence::new(ReplicaId::new("r", 1), config_of(3)).unwrap();
    r.add("own", "o", Meta::online(0, b"")).unwrap();
    let two = vec![entry("t", "a", 1), entry("t", "b", 2)];
    r.merge_delta(&delta("p", 1, 0, 2, two, vec![])).unwrap();
    assert_eq!(
        r.add("own", "o2", Meta::online(0, b"")),
        Err(OpError::SetFull { max: 3 })
    );
    let before = (dump(&r), r.context());
    assert_eq!(
        r.merge_delta(&delta("q", 1, 0, 1, vec![entry("t", "c", 1)], vec![])),
        Err(MergeError::SetFull { max: 3 })
    );
    let mut q = node("q", 1);
    q.add("t", "c", Meta::online(0, b"")).unwrap();
    assert_eq!(
        r.merge_extract(&q.extract(&r.context())),
        Err(MergeError::SetFull { max: 3 })
    );
    // Two sections that each fit, but not together.
    let mut fresh = Presence::new(ReplicaId::new("r", 1), config_of(3)).unwrap();
    fresh.add("own", "o", Meta::online(0, b"")).unwrap();
    let mut s2 = node("s", 1);
    s2.add("t", "d", Meta::online(0, b"")).unwrap();
    s2.add("t", "e", Meta::online(0, b"")).unwrap();
    let mut m = node("m", 1);
    m.merge_state(&q).unwrap();
    m.merge_state(&s2).unwrap();
    let both = m.extract(&fresh.context());
    assert!(both.replicas.len() >= 2);
    let before_fresh = (dump(&fresh), fresh.context());
    assert_eq!(
        fresh.merge_extract(&both),
        Err(MergeError::SetFull { max: 3 })
    );
    assert_eq!((dump(&fresh), fresh.context()), before_fresh);
    assert_eq!((dump(&r), r.context()), before);
    // A restart of p with one entry frees the two of its old incarnation.
    r.merge_delta(&delta("p", 2, 0, 1, vec![entry("t", "a", 1)], vec![]))
        .unwrap();
    r.merge_extract(&q.extract(&r.context())).unwrap();
    assert_eq!(dump(&r).len(), 3);
}

#[test]
fn hostile_extracts_are_refused_without_change() {
    let mut p = node("p", 6);
    p.add("t", "x", Meta::online(0, b"")).unwrap();
    let mut r = receiver();
    let good = p.extract(&r.context());
    let check = |r: &mut Presence, x: &Extract<'_>, expect: MergeError| {
        let before = (dump(r), r.context());
        assert_eq!(r.merge_extract(x), Err(expect));
        assert_eq!((dump(r), r.context()), before);
    };
    let mut own = good.clone();
    own.replicas[0].replica = ReplicaId::new("r", 1);
    check(&mut r, &own, MergeError::OwnReplica);
    let mut twice = good.clone();
    twice.replicas.push(good.replicas[0].clone());
    check(&mut r, &twice, MergeError::DuplicateReplica);
    let mut range = good.clone();
    range.replicas[0].since = 9;
    check(&mut r, &range, MergeError::BadRange { start: 9, end: 1 });
    let mut before_bad = Extract::default();
    let mut sec = good.replicas[0].clone();
    sec.replica = ReplicaId::new("n", 1);
    sec.clock = 5;
    sec.since = 0;
    sec.alive_before = vec![1];
    before_bad.replicas.push(sec);
    check(
        &mut r,
        &before_bad,
        MergeError::ClockOutOfRange { clock: 1 },
    );
    let mut past = good.clone();
    past.replicas[0].clock = MAX_CLOCK + 1;
    check(
        &mut r,
        &past,
        MergeError::ClockTooLarge {
            clock: MAX_CLOCK + 1,
            max: MAX_CLOCK,
        },
    );

    // A gap section (made for a state we no longer have) is skipped, counted.
    let mut gap = good.clone();
    gap.replicas[0].since = 1;
    gap.replicas[0].entries = Vec::new().into();
    gap.replicas[0].alive_before = vec![1];
    let s = r.merge_extract(&gap).unwrap();
    assert_eq!(s.gaps, 1);
    // p was at clock 2 with a different incarnation here: the good one retires it.
    let s = r.merge_extract(&good).unwrap();
    assert_eq!((s.joins, s.leaves), (1, 2));
    assert_eq!(r.entries_of_type("t").count(), 1);
}

#[test]
fn garbage_bytes_never_panic() {
    let mut r = receiver();
    let mut seed = 0x1234_5678_u64;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 7) as u8
            })
            .collect();
        if let Ok(d) = postcard::from_bytes::<Delta<'_>>(&bytes) {
            let _ = r.merge_delta(&d);
        }
        if let Ok(x) = postcard::from_bytes::<Extract<'_>>(&bytes) {
            let _ = r.merge_extract(&x);
        }
    }
}

#[test]
fn an_extract_survives_the_wire_unchanged() {
    let mut p = node("p", 1);
    for i in 0..20 {
        p.add("t", &format!("{i}"), Meta::online(i, &[i as u8; 3]))
            .unwrap();
    }
    p.remove("t", "4").unwrap();
    let mut r = node("r", 1);
    r.merge_state(&p).unwrap();
    p.remove("t", "5").unwrap();
    p.add("u", "x", Meta::online(0, b"")).unwrap();
    let x = p.extract(&r.context());
    assert_eq!(x.replicas.len(), 1);
    assert_eq!(x.replicas[0].entries.len(), 1);
    assert_eq!(x.replicas[0].alive_before.len(), 18);
    let bytes = postcard::to_allocvec(&x).unwrap();
    let y: Extract<'_> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(x, y);
    assert_eq!(x.replicas[0].entries.get(0).unwrap().id, "x");
}

#[test]
fn borrowed_and_decoded_extracts_are_refused_alike() {
    let mut p = node("p", 1);
    let mut r = node("r", 1);
    for i in 0..5 {
        p.add("t", &format!("id-{i}"), Meta::online(i, b"data"))
            .unwrap();
        if i == 1 {
            r.merge_state(&p).unwrap();
        }
    }
    let refusals = |r: &mut Presence, x: &Extract<'_>| {
        let before = (dump(r), r.context());
        let borrowed = r.merge_extract(x);
        assert_eq!((dump(r), r.context()), before);
        let bytes = postcard::to_allocvec(x).unwrap();
        let decoded: Extract<'_> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(r.merge_extract(&decoded), borrowed);
        assert_eq!((dump(r), r.context()), before);
        borrowed
    };
    // For a peer that knows nothing of p; r has it at clock 2.
    let good = p.extract(&node("x", 1).context());
    // Entries after the section's clock, or not after its `since`.
    let mut short = good.clone();
    short.replicas[0].clock = 3;
    assert_eq!(
        refusals(&mut r, &short),
        Err(MergeError::ClockOutOfRange { clock: 4 })
    );
    let mut late = good.clone();
    late.replicas[0].since = 2;
    late.replicas[0].alive_before = vec![1, 2];
    assert_eq!(
        refusals(&mut r, &late),
        Err(MergeError::ClockOutOfRange { clock: 1 })
    );
    // A receiver with tighter limits than the sender checks every entry.
    let tight = Config {
        max_data_len: 3,
        ..cfg()
    };
    let mut small = Presence::new(ReplicaId::new("s", 1), tight).unwrap();
    assert_eq!(
        refusals(&mut small, &good),
        Err(MergeError::DataTooLong { len: 4, max: 3 })
    );
    assert!(r.merge_extract(&good).is_ok());
}

#[test]
fn a_large_delta_with_one_repeated_key_is_refused() {
    // Ids repeat across types and types across ids, which are distinct
    // keys; then one key comes back far into a large delta.
    let names: Vec<(String, String)> = (0..3000)
        .map(|k| (format!("t{}", k % 7), format!("id{}", k / 7)))
        .collect();
    let adds = |repeat: Option<usize>| -> Vec<WireEntry<'_>> {
        names
            .iter()
            .enumerate()
            .map(|(k, (ty, id))| {
                let (ty, id) = match repeat {
                    Some(at) if k == 2900 => (&names[at].0, &names[at].1),
                    _ => (ty, id),
                };
                entry(ty, id, 3 + k as u64)
            })
            .collect()
    };
    let end = 2 + names.len() as u64;
    let mut r = receiver();
    let ok = r.merge_delta(&delta("p", 5, 2, end, adds(None), vec![]));
    assert_eq!(ok.map(|s| s.joins), Ok(3000));
    for at in [17, 2899] {
        refused(
            &delta("p", 5, 2, end, adds(Some(at)), vec![]),
            MergeError::DuplicateKey { clock: 2903 },
        );
    }
}
