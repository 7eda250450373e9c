//! Local operations, changes, replica lifecycle and reads.

mod presence_support;

use dispatch_core::presence::{
    ChangeKind, Config, Meta, OpError, Presence, ReplicaError, ReplicaId, State,
};
use presence_support::*;

fn changes(p: &Presence) -> Vec<(ChangeKind, String, String, u64)> {
    p.changes()
        .map(|c| {
            (
                c.kind,
                c.entry.ty().to_string(),
                c.entry.id().to_string(),
                c.entry.reference().clock,
            )
        })
        .collect()
}

#[test]
fn add_update_remove_report_changes_and_refs() {
    let mut a = node("a", 7);
    let r1 = a.add("up", "x", Meta::online(3, b"one")).unwrap();
    assert_eq!((r1.incarnation, r1.clock), (7, 1));
    assert_eq!(
        changes(&a),
        vec![(ChangeKind::Join, "up".into(), "x".into(), 1)]
    );
    assert_eq!(
        a.add("up", "x", Meta::online(3, b"one")),
        Err(OpError::AlreadyExists)
    );

    // An update that changes nothing: no clock, no delta, no change.
    let _ = a.take_delta();
    assert_eq!(a.update("up", "x", Meta::online(3, b"one")), Ok(None));
    assert_eq!(a.clock(), 1);
    assert!(a.take_delta().is_none());
    assert_eq!(changes(&a).len(), 1, "the no-op is not a mutating call");

    let r2 = a
        .update(
            "up",
            "x",
            Meta {
                state: State::Offline,
                slot: 3,
                data: b"one",
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(r2.clock, 2);
    assert_eq!(
        changes(&a),
        vec![
            (ChangeKind::Leave, "up".into(), "x".into(), 1),
            (ChangeKind::Join, "up".into(), "x".into(), 2)
        ]
    );
    let e = a.get("a", "up", "x").unwrap();
    assert_eq!(e.prev().map(|p| p.clock), Some(1));
    assert_eq!(e.meta().state, State::Offline);
    let leave = a.changes().next().unwrap();
    assert_eq!(
        leave.entry.meta().data,
        b"one",
        "a removed entry stays viewable until the next call"
    );

    assert_eq!(a.remove("up", "x").unwrap().clock, 2);
    assert_eq!(a.clock(), 3);
    assert_eq!(
        changes(&a),
        vec![(ChangeKind::Leave, "up".into(), "x".into(), 2)]
    );
    assert_eq!(a.remove("up", "x"), Err(OpError::NotFound));
    assert!(a.get("a", "up", "x").is_none());
    assert_eq!(a.entries_of_type("up").count(), 0);
}

#[test]
fn local_limits_leave_state_unchanged() {
    let config = Config {
        max_entries_per_replica: 2,
        max_type_len: 4,
        max_id_len: 4,
        max_data_len: 2,
        ..cfg()
    };
    let mut a = Presence::new(ReplicaId::new("a", 1), config).unwrap();
    a.add("t", "1", Meta::online(0, b"")).unwrap();
    a.add("t", "2", Meta::online(0, b"")).unwrap();
    let before = (dump(&a), a.clock());
    assert_eq!(
        a.add("t", "3", Meta::online(0, b"")),
        Err(OpError::TooManyEntries { max: 2 })
    );
    assert_eq!(
        a.add("ttttt", "3", Meta::online(0, b"")),
        Err(OpError::TypeTooLong { len: 5, max: 4 })
    );
    assert_eq!(
        a.add("t", "33333", Meta::online(0, b"")),
        Err(OpError::IdTooLong { len: 5, max: 4 })
    );
    assert_eq!(
        a.update("t", "1", Meta::online(0, b"abc")),
        Err(OpError::DataTooLong { len: 3, max: 2 })
    );
    assert_eq!((dump(&a), a.clock()), before);
}

#[test]
fn config_errors_say_what_to_change() {
    let bad = Config {
        generations: vec![10, 10],
        ..Config::default()
    };
    let e = bad.validate().unwrap_err();
    assert!(e.to_string().contains("generations[1]"), "{e}");
    let bad = Config {
        max_replicas: 0,
        ..Config::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("max_replicas"));
    let bad = Config {
        generations: vec![],
        ..Config::default()
    };
    assert!(Presence::new(ReplicaId::new("a", 1), bad).is_err());
    assert!(Config::default().validate().is_ok());
}

#[test]
fn restart_with_new_incarnation_leaves_no_zombie() {
    let mut a = node("a", 1);
    let mut b = node("b", 1);
    a.add("t", "x", Meta::online(0, b"")).unwrap();
    a.add("t", "y", Meta::online(0, b"")).unwrap();
    b.merge_state(&a).unwrap();
    assert_eq!(b.entries_of_type("t").count(), 2);

    let mut a2 = node("a", 2);
    a2.add("t", "z", Meta::online(0, b"")).unwrap();
    let bytes = encode_delta(&mut a2).unwrap();
    deliver(&mut b, &bytes, Some(&a2));
    let seen: Vec<_> = b
        .entries_of_type("t")
        .map(|e| (e.id().to_string(), e.replica().incarnation))
        .collect();
    assert_eq!(seen, vec![("z".to_string(), 2)]);
    let kinds: Vec<_> = b
        .changes()
        .map(|c| {
            (
                c.kind,
                c.entry.id().to_string(),
                c.entry.replica().incarnation,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::Leave, "x".into(), 1),
            (ChangeKind::Leave, "y".into(), 1),
            (ChangeKind::Join, "z".into(), 2)
        ]
    );
    // The old incarnation's data is now stale.
    let mut old = a.clone();
    old.add("t", "w", Meta::online(0, b"")).unwrap();
    let d = old.catch_up(0).unwrap();
    assert_eq!(
        b.merge_delta(&d),
        Err(dispatch_core::presence::MergeError::StaleIncarnation { have: 2, got: 1 })
    );
    let s = b.merge_state(&old).unwrap();
    assert_eq!(
        (s.joins, s.leaves, s.stale),
        (0, 0, 0),
        "old does not offer what b has newer"
    );
    let s = b.merge_extract(&old.extract(&Default::default())).unwrap();
    assert_eq!((s.joins, s.leaves, s.stale), (0, 0, 1));
    assert_eq!(dump(&b), own(&a2));
}

#[test]
fn down_then_up_restores_exactly_the_hidden_entries() {
    let mut a = node("a", 1);
    let mut b = node("b", 1);
    for i in 0..5 {
        a.add("t", &format!("{i}"), Meta::online(i, b"")).unwrap();
    }
    b.add("t", "mine", Meta::online(0, b"")).unwrap();
    b.merge_state(&a).unwrap();
    let full = dump(&b);
    let s = b.replica_down(&id(&a)).unwrap();
    assert_eq!((s.joins, s.leaves), (0, 5));
    assert!(b
        .changes()
        .all(|c| c.kind == ChangeKind::Leave && c.entry.replica().name.as_ref() == "a"));
    assert_eq!(dump(&b), own(&b));
    assert_eq!(b.entries_of_id("3").count(), 0);
    assert!(b.get("a", "t", "3").is_none());
    // Merges into a down replica apply silently.
    a.remove("t", "0").unwrap();
    a.add("t", "5", Meta::online(5, b"")).unwrap();
    let bytes = encode_delta(&mut a).unwrap();
    deliver(&mut b, &bytes, Some(&a));
    assert_eq!(b.changes().count(), 0);
    assert_eq!(dump(&b), own(&b));
    let s = b.replica_down(&id(&a)).unwrap();
    assert_eq!((s.joins, s.leaves), (0, 0), "already down");

    let s = b.replica_up(&id(&a)).unwrap();
    assert_eq!((s.joins, s.leaves), (5, 0));
    let mut expect = own(&a);
    expect.extend(own(&b));
    expect.sort();
    assert_eq!(dump(&b), expect);
    assert_ne!(dump(&b), full);

    assert_eq!(b.remove_down_replica(&id(&a)), Err(ReplicaError::NotDown));
    assert_eq!(b.replica_down(&id(&b)), Err(ReplicaError::OwnReplica));
    assert_eq!(
        b.replica_down(&ReplicaId::new("a", 9)),
        Err(ReplicaError::Unknown)
    );
    b.replica_down(&id(&a)).unwrap();
    let s = b.remove_down_replica(&id(&a)).unwrap();
    assert_eq!((s.joins, s.leaves), (0, 0));
    assert_eq!(b.replicas().count(), 1);
    assert_eq!(b.stats().entries, 1);
}

#[test]
fn reads_are_deterministic_whatever_the_history() {
    let mut a = node("a", 1);
    let mut b = node("b", 1);
    for id in ["m", "c", "x", "a"] {
        a.add("svc", id, Meta::online(0, b"")).unwrap();
    }
    for id in ["c", "z", "a"] {
        b.add("svc", id, Meta::online(1, b"")).unwrap();
    }
    b.add("other", "c", Meta::online(1, b"")).unwrap();
    let mut ab = a.clone();
    ab.merge_state(&b).unwrap();
    let mut ba = b.clone();
    ba.merge_state(&a).unwrap();
    let order = |p: &Presence| -> Vec<(String, String)> {
        p.entries_of_type("svc")
            .map(|e| (e.id().to_string(), e.replica().name.to_string()))
            .collect()
    };
    let expect: Vec<(String, String)> = [
        ("a", "a"),
        ("a", "b"),
        ("c", "a"),
        ("c", "b"),
        ("m", "a"),
        ("x", "a"),
        ("z", "b"),
    ]
    .iter()
    .map(|(i, r)| (i.to_string(), r.to_string()))
    .collect();
    assert_eq!(order(&ab), expect);
    assert_eq!(order(&ba), expect);
    assert_eq!(ab.entries_of_id("c").count(), 3);
    assert_eq!(ab.get("b", "other", "c").unwrap().meta().slot, 1);
    assert!(ab.get("c", "other", "c").is_none());
}

#[test]
fn catch_up_uses_the_smallest_generation_or_none() {
    let mut a = node("a", 1); // generations 4, 16, 64
    for i in 0..40 {
        a.add("t", &format!("{i}"), Meta::online(0, b"")).unwrap();
    }
    assert_eq!(a.catch_up(40).unwrap().adds.len(), 0);
    let small = a.catch_up(39).unwrap();
    assert!(small.start >= 36 && small.start <= 39, "{}", small.start);
    // The 16-op generation restarted at 32; 30 needs the 64-op one.
    assert_eq!(a.catch_up(33).unwrap().start, 32);
    assert_eq!(a.catch_up(30).unwrap().start, 0);
    assert!(a.catch_up(0).is_some(), "64 ops cover all");
    for i in 40..120 {
        a.add("t", &format!("{i}"), Meta::online(0, b"")).unwrap();
    }
    assert!(a.catch_up(10).is_none(), "no generation reaches back to 10");
}

#[test]
fn large_replicas_are_removed_in_bulk_consistently() {
    let mut a = node("a", 1);
    let mut b = node("b", 1);
    for i in 0..6000 {
        a.add(
            &format!("t{}", i % 7),
            &format!("{i}"),
            Meta::online(i, b"d"),
        )
        .unwrap();
    }
    for i in 0..50 {
        b.add(
            &format!("t{}", i % 7),
            &format!("{i}"),
            Meta::online(i, b""),
        )
        .unwrap();
    }
    b.merge_state(&a).unwrap();
    // A new incarnation retires the old one in bulk, reporting every leave.
    let mut a2 = node("a", 2);
    a2.add("t1", "1", Meta::online(1, b"")).unwrap();
    let s = b.merge_state(&a2).unwrap();
    assert_eq!((s.joins, s.leaves), (1, 6000));
    assert!(b
        .changes()
        .filter(|c| c.kind == ChangeKind::Leave)
        .all(|c| c.entry.meta().data == b"d"));
    let mut expect = own(&b);
    expect.extend(own(&a2));
    expect.sort();
    assert_eq!(dump(&b), expect);
    assert_eq!(b.entries_of_id("1").count(), 2);
    assert_eq!(b.entries_of_type("t1").count(), 8);

    // Purging a large down replica in bulk, then reusing the same keys.
    let mut c = node("c", 1);
    c.merge_state(&a).unwrap();
    c.add("t0", "0", Meta::online(0, b"")).unwrap();
    c.replica_down(&id(&a)).unwrap();
    let s = c.remove_down_replica(&id(&a)).unwrap();
    assert_eq!((s.joins, s.leaves), (0, 0));
    assert_eq!(c.stats().entries, 1);
    assert_eq!(c.stats().types, 1);
    c.merge_state(&a).unwrap();
    assert_eq!(c.entries_of_id("3").count(), 1);
    assert_eq!(c.get("a", "t3", "3").unwrap().meta().slot, 3);
    let mut expect = own(&a);
    expect.extend(own(&c));
    expect.sort();
    assert_eq!(dump(&c), expect);
}

#[test]
fn bulk_calls_list_every_change_and_count_it() {
    let mut a = node("a", 1);
    let mut b = node("b", 1);
    for i in 0..50u32 {
        b.add("t", &format!("u{i:02}"), Meta::online(i, b""))
            .unwrap();
    }
    b.remove("t", "u07").unwrap();
    b.update("t", "u09", Meta::online(99, b"")).unwrap();
    a.add("t", "mine", Meta::online(0, b"")).unwrap();
    let ids = |p: &Presence, kind: ChangeKind| {
        let mut v: Vec<String> = changes(p)
            .into_iter()
            .map(|(k, _, id, _)| {
                assert_eq!(k, kind);
                id
            })
            .collect();
        v.sort();
        v
    };
    let mut want: Vec<String> = (0..50)
        .filter(|&i| i != 7)
        .map(|i| format!("u{i:02}"))
        .collect();
    want.sort();

    let s = a.merge_state(&b).unwrap();
    assert_eq!((s.joins, s.leaves), (49, 0));
    assert_eq!(ids(&a, ChangeKind::Join), want);

    let s = a.replica_down(b.me()).unwrap();
    assert_eq!((s.joins, s.leaves), (0, 49));
    assert_eq!(ids(&a, ChangeKind::Leave), want);

    let s = a.replica_up(b.me()).unwrap();
    assert_eq!((s.joins, s.leaves), (49, 0));
    assert_eq!(ids(&a, ChangeKind::Join), want);

    // A delta that removes some and adds some: leaves then joins, counted.
    b.take_delta();
    b.remove("t", "u10").unwrap();
    b.remove("t", "u11").unwrap();
    b.add("t", "v1", Meta::online(1, b"")).unwrap();
    b.add("t", "v2", Meta::online(2, b"")).unwrap();
    let d = b.take_delta().unwrap();
    let s = a.merge_delta(&d).unwrap();
    assert_eq!((s.joins, s.leaves), (2, 2));
    let got: Vec<(ChangeKind, String)> = changes(&a)
        .into_iter()
        .map(|(k, _, id, _)| (k, id))
        .collect();
    assert_eq!(got.len(), 4);
    assert_eq!(
        got.iter().filter(|(k, _)| *k == ChangeKind::Join).count(),
        2
    );
}

/// What the reads of `p` say of these types and ids: each type's entries in
/// read order, and the entries of each id.
type Reads = (Vec<Vec<(String, String, u32)>>, Vec<Vec<(String, String)>>);

fn reads(p: &Presence, types: &[String], ids: &[String]) -> Reads {
    let by_type = types
        .iter()
        .map(|ty| {
            p.entries_of_type(ty)
                .map(|e| {
                    (
                        e.id().to_string(),
                        e.replica().name.to_string(),
                        e.meta().slot,
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let by_id = ids
        .iter()
        .map(|id| {
            let mut v: Vec<(String, String)> = p
                .entries_of_id(id)
                .map(|e| (e.replica().name.to_string(), e.ty().to_string()))
                .collect();
            v.sort();
            v
        })
        .collect();
    (by_type, by_id)
}

#[test]
fn large_merges_read_as_small_ones() {
    // Types new to the receiver (with one member or many), types it has
    // members in (getting one more or many), ids sharing their first eight
    // bytes, ids too long to be stored inline.
    let ty = |i: u32| match i % 4 {
        _ if i % 60 == 59 => format!("one{}", i / 60 % 50),
        0 => format!("shared{}", i % 5),
        1 => format!("solo{i}"),
        2 => "big".to_string(),
        _ => format!("few{}", i % 40),
    };
    let key = |i: u32| match i % 3 {
        0 => format!("prefix00{}", i % 1000),
        1 => format!("{i}"),
        _ => format!("an-id-too-long-to-be-stored-inline-{i}"),
    };
    let mut a = node("a", 1);
    // `small` gets a's operations in deltas of a few hundred; `bulk` and
    // `wire` get them in one extract, borrowed or decoded.
    let mut small = node("b", 1);
    for i in 0..40u32 {
        let (t, k) = (ty(i * 7), key(i * 11));
        if small.get("b", &t, &k).is_none() {
            small.add(&t, &k, Meta::online(i, b"b")).unwrap();
        }
    }
    for k in 0..50 {
        small
            .add(
                &format!("one{k}"),
                &format!("prefix00{k}"),
                Meta::online(k, b""),
            )
            .unwrap();
    }
    let mut bulk = small.clone();
    let mut wire = small.clone();
    let (mut types, mut ids) = (Vec::new(), Vec::new());
    let mut n = 0u32;
    for round in 0..2 {
        // The second merge brings more entries than the index by id takes
        // in one round (`Index::insert_batch`).
        let adds = if round == 0 { 3000 } else { 24_000 };
        for _ in 0..adds {
            let (t, k) = (ty(n), key(n));
            if a.get("a", &t, &k).is_none() {
                a.add(&t, &k, Meta::online(n, &n.to_le_bytes())).unwrap();
                types.push(t);
                ids.push(k);
            }
            n += 1;
            if n % 400 == 0 {
                let d = a.take_delta().unwrap();
                small.merge_delta(&d).unwrap();
            }
        }
        if round == 1 {
            // The second merge also removes some of the first one's entries.
            for i in (0..3000).step_by(7) {
                let _ = a.remove(&ty(i), &key(i));
            }
        }
        if let Some(d) = a.take_delta() {
            small.merge_delta(&d).unwrap();
        }
        let x = a.extract(&bulk.context());
        let want_len = if round == 0 { 1024 } else { 16_385 };
        assert!(x.replicas[0].entries.len() >= want_len, "a large merge");
        let s = bulk.merge_extract(&x).unwrap();
        transfer(&mut wire, &a);
        let listed = |p: &Presence| {
            let mut v: Vec<(bool, String, String)> = p
                .changes()
                .map(|c| {
                    let join = c.kind == ChangeKind::Join;
                    (join, c.entry.ty().to_string(), c.entry.id().to_string())
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(listed(&bulk), listed(&wire));
        assert_eq!(listed(&bulk).len(), (s.joins + s.leaves) as usize);
        types.sort();
        types.dedup();
        ids.sort();
        ids.dedup();
        let want = reads(&small, &types, &ids);
        assert_eq!(reads(&bulk, &types, &ids), want);
        assert_eq!(reads(&wire, &types, &ids), want);
        assert_eq!(dump(&bulk), dump(&small));
        assert_eq!(bulk.stats(), small.stats());
        for list in &want.0 {
            assert!(list
                .windows(2)
                .all(|w| (&w[0].0, &w[0].1) < (&w[1].0, &w[1].1)));
        }
    }
}

#[test]
fn updates_keep_previous_refs_and_bytes_of_every_length_through_merges() {
    // Ids, data and type names short enough to sit inside the records and
    // long enough to be allocated, with and without a previous ref.
    let long_type = "a-service-type-name-past-the-inline-limit";
    let long_id = "an-instance-id-of-some-length-0123456789";
    let long_data = [7u8; 40];
    let cases: [(&str, &str, &[u8]); 6] = [
        ("up", "x", b""),
        ("up", "y", b"0123456789"),
        ("up", long_id, b"d"),
        (long_type, "x", &long_data),
        (long_type, long_id, &long_data),
        ("fifteen-bytes-t", "fifteen-bytes-i", b"15"),
    ];
    let mut a = node("a", 1);
    // By borrowed deltas, by deltas through the wire format, and by a
    // state transfer.
    let (mut b, mut c, mut d) = (node("b", 1), node("c", 1), node("d", 1));
    for &(ty, id, data) in &cases {
        a.add(ty, id, Meta::online(1, data)).unwrap();
    }
    b.merge_delta(&a.take_delta().unwrap()).unwrap();
    let bytes = postcard::to_allocvec(&a.catch_up(0).unwrap()).unwrap();
    deliver(&mut d, &bytes, None);
    let mut added = Vec::new();
    for &(ty, id, data) in &cases {
        added.push(a.get("a", ty, id).unwrap().reference());
        let offline = Meta {
            state: State::Offline,
            slot: 2,
            data,
        };
        a.update(ty, id, offline).unwrap().unwrap();
    }
    let bytes = postcard::to_allocvec(&a.catch_up(a.clock() - 6).unwrap()).unwrap();
    b.merge_delta(&a.take_delta().unwrap()).unwrap();
    deliver(&mut d, &bytes, None);
    c.merge_state(&a).unwrap();
    for p in [&a, &b, &c, &d] {
        for (&(ty, id, data), &was) in cases.iter().zip(&added) {
            let e = p.get("a", ty, id).unwrap();
            assert_eq!((e.ty(), e.id()), (ty, id));
            assert_eq!(e.meta().data, data, "{ty}/{id}");
            assert_eq!((e.meta().state, e.meta().slot), (State::Offline, 2));
            assert_eq!(e.prev(), Some(was), "{ty}/{id} keeps the ref it replaced");
            assert!(e.reference().clock > was.clock);
        }
        assert_eq!(p.entries_of_type(long_type).count(), 2);
        assert_eq!(p.entries_of_id(long_id).count(), 2);
    }
    // A removed updated entry stays viewable, previous ref and all, until
    // the next call.
    let (ty, id, data) = cases[4];
    a.remove(ty, id).unwrap();
    let gone = a.changes().next().unwrap();
    assert_eq!(gone.kind, ChangeKind::Leave);
    assert_eq!((gone.entry.ty(), gone.entry.id()), (ty, id));
    assert_eq!(gone.entry.meta().data, data);
    assert_eq!(gone.entry.prev(), Some(added[4]));
    // Only the bytes the user chose count as strings: the ids and data
    // left, the three type names and the replica name.
    let kept: usize = [0, 1, 2, 3, 5]
        .iter()
        .map(|&k| cases[k].1.len() + cases[k].2.len())
        .sum();
    let names = "up".len() + long_type.len() + "fifteen-bytes-t".len() + "a".len();
    assert_eq!(a.stats().string_bytes, kept + names);
}

#[test]
fn a_large_merge_from_a_set_keeps_every_entrys_bytes_and_previous_ref() {
    // Enough entries for a bulk merge, their ids and data short enough to
    // sit inside the records or long enough to be allocated, a third of
    // them updated so that they carry a previous ref.
    let mut a = node("a", 1);
    let long = "an-instance-id-of-some-length-0123456789";
    let id = |k: u32| match k % 3 {
        0 => format!("{long}-{k}"),
        1 => format!("i{k}"),
        _ => format!("fifteen-byte{k:03}"),
    };
    let data = |k: u32| vec![k as u8; (k % 41) as usize];
    let ty = |k: u32| format!("t{}", k % 300);
    for k in 0..1500u32 {
        a.add(&ty(k), &id(k), Meta::online(k, &data(k))).unwrap();
    }
    for k in (0..1500u32).step_by(3) {
        let m = Meta {
            state: State::Offline,
            slot: k + 7,
            data: &data(k + 1),
        };
        a.update(&ty(k), &id(k), m).unwrap().unwrap();
    }
    let (mut local, mut wire) = (node("b", 1), node("b", 1));
    let x = a.extract(&local.context());
    assert!(x.replicas[0].entries.len() >= 1024, "a large merge");
    assert_eq!(local.merge_extract(&x).unwrap().joins, 1500);
    transfer(&mut wire, &a);
    assert_eq!(dump(&local), dump(&a));
    assert_eq!(dump(&wire), dump(&a));
    assert_eq!(local.stats(), wire.stats());
    let e = local.get("a", &ty(3), &id(3)).unwrap();
    let was = a.get("a", &ty(3), &id(3)).unwrap().prev();
    assert!(was.is_some());
    assert_eq!(e.prev(), was);
    assert_eq!(e.meta().data, data(4));
    assert_eq!(local.entries_of_id(&id(3)).count(), 1);
    // Later operations on the copied entries arrive as they would on any.
    a.take_delta();
    a.remove(&ty(3), &id(3)).unwrap();
    a.update(&ty(4), &id(4), Meta::online(9, long.as_bytes()))
        .unwrap()
        .unwrap();
    local.merge_delta(&a.take_delta().unwrap()).unwrap();
    assert!(local.get("a", &ty(3), &id(3)).is_none());
    assert_eq!(
        local.get("a", &ty(4), &id(4)).unwrap().meta().data,
        long.as_bytes()
    );
    assert_eq!(dump(&local), dump(&a));
}

#[test]
fn a_large_merge_giving_each_known_type_one_member_reads_as_small_ones() {
    // Every entry of the merge goes to a different type the receiver
    // already has members in, at the front, the back or in between.
    let mut b = node("b", 1);
    let types: Vec<String> = (0..1500).map(|k| format!("t{k}")).collect();
    for (k, t) in types.iter().enumerate() {
        for id in ["m10", "m30", "m50"] {
            b.add(t, id, Meta::online(k as u32, b"b")).unwrap();
        }
    }
    let mut a = node("a", 1);
    let mut ids = Vec::new();
    // `small` gets a's operations in deltas of a hundred.
    let mut small = b.clone();
    let mut wire = b.clone();
    for (k, t) in types.iter().enumerate() {
        let id = format!("m{}", [0, 20, 40, 60, 30][k % 5]);
        a.add(t, &id, Meta::online(k as u32, b"a")).unwrap();
        ids.push(id);
        if k % 100 == 99 {
            small.merge_delta(&a.take_delta().unwrap()).unwrap();
        }
    }
    let x = a.extract(&b.context());
    assert!(x.replicas[0].entries.len() >= 1024, "a large merge");
    assert_eq!(b.merge_extract(&x).unwrap().joins, 1500);
    transfer(&mut wire, &a);
    let want = reads(&small, &types, &ids);
    assert_eq!(reads(&b, &types, &ids), want);
    assert_eq!(reads(&wire, &types, &ids), want);
    let first = b.entries_of_type("t0").map(|e| e.id().to_string());
    assert_eq!(first.collect::<Vec<_>>(), ["m0", "m10", "m30", "m50"]);
    let fifth = b
        .entries_of_type("t4")
        .map(|e| (e.id().to_string(), e.replica().name.to_string()));
    assert_eq!(
        fifth.collect::<Vec<_>>(),
        [("m10", "b"), ("m30", "a"), ("m30", "b"), ("m50", "b")]
            .map(|(i, r)| (i.to_string(), r.to_string()))
    );
}

#[test]
fn type_names_of_every_length_read_back_and_free_their_room() {
    // Names short enough for their type record and too long for it, around
    // the limit; each long name takes a slot that is freed with its type.
    let names: Vec<String> = (0..=24).map(|n| "t".repeat(n)).collect();
    let mut a = node("a", 1);
    for (k, ty) in names.iter().enumerate() {
        a.add(ty, &format!("i{k}"), Meta::online(k as u32, b""))
            .unwrap();
    }
    let mut b = node("b", 1);
    b.merge_state(&a).unwrap();
    for p in [&a, &b] {
        for (k, ty) in names.iter().enumerate() {
            let listed: Vec<_> = p.entries_of_type(ty).map(|e| e.id().to_string()).collect();
            assert_eq!(listed, [format!("i{k}")], "type of {} bytes", ty.len());
            assert_eq!(p.get("a", ty, &format!("i{k}")).unwrap().ty(), ty);
        }
    }
    // Emptied types go at the next call; new long names take their room
    // and never answer for the old ones.
    let before = a.stats().string_bytes;
    for ty in &names[12..] {
        let k = ty.len();
        a.remove(ty, &format!("i{k}")).unwrap();
    }
    let fresh: Vec<String> = (12..=24).map(|n| "u".repeat(n)).collect();
    for ty in &fresh {
        a.add(ty, "j", Meta::online(0, b"")).unwrap();
    }
    for ty in &names[12..] {
        assert_eq!(a.entries_of_type(ty).count(), 0, "{ty} was emptied");
    }
    for ty in &fresh {
        let e = a.entries_of_type(ty).next().unwrap();
        assert_eq!((e.ty(), e.id()), (ty.as_str(), "j"));
    }
    b.merge_delta(&a.take_delta().unwrap()).unwrap();
    for ty in names[..12].iter().chain(&fresh) {
        assert_eq!(b.entries_of_type(ty).count(), 1, "{ty}");
    }
    for ty in &names[12..] {
        assert_eq!(b.entries_of_type(ty).count(), 0, "{ty}");
    }
    // The ids removed, each "u" name and "j" added (names 12..=24 bytes of
    // "t" replaced by as many of "u").
    let removed_ids: usize = (12..=24).map(|k| format!("i{k}").len()).sum();
    assert_eq!(a.stats().string_bytes, before - removed_ids + 13);
}
