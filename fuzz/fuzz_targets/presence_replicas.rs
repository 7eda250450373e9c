//! Several presence replicas doing arbitrary operations and deliveries
//! (loss, duplication, reordering, down/up, purge, restart), plus arbitrary
//! bytes fed to a bystander. Checks: no panic; a refused merge changes
//! nothing; after full anti-entropy every replica holds the same visible
//! set, the union of each live replica's own entries, and the reads
//! through the indexes (by type, by id, by key) agree with it.
#![no_main]

use arbitrary::Arbitrary;
use dispatch_core::presence::{
    Config, Delta, Extract, MergeError, Meta, Presence, ReplicaId, State,
};
use libfuzzer_sys::fuzz_target;

#[path = "../../dispatch-core/tests/presence_support/reads.rs"]
mod reads;

const N: usize = 3;

#[derive(Debug, Arbitrary)]
enum Step {
    Put {
        at: u8,
        ty: u8,
        id: u8,
        data: u8,
        offline: bool,
    },
    Del {
        at: u8,
        ty: u8,
        id: u8,
    },
    Push {
        at: u8,
        copies: u8,
    },
    Deliver {
        pick: u16,
    },
    Transfer {
        from: u8,
        to: u8,
    },
    Down {
        at: u8,
        k: u8,
    },
    Up {
        at: u8,
        k: u8,
    },
    Purge {
        at: u8,
        k: u8,
    },
    Restart {
        at: u8,
    },
    Garbage {
        bytes: Vec<u8>,
        extract: bool,
    },
}

type Row = (String, u64, String, String, u64, State, u32, Vec<u8>);

fn dump(p: &Presence) -> Vec<Row> {
    let mut v: Vec<Row> = p
        .entries()
        .map(|e| {
            let m = e.meta();
            (
                e.replica().name.to_string(),
                e.replica().incarnation,
                e.ty().to_string(),
                e.id().to_string(),
                e.reference().clock,
                m.state,
                m.slot,
                m.data.to_vec(),
            )
        })
        .collect();
    v.sort();
    reads::check_indexes(
        p,
        v.iter()
            .map(|r| (r.0.clone(), r.2.clone(), r.3.clone(), r.4)),
    );
    v
}

fn config() -> Config {
    Config {
        max_entries_per_replica: 64,
        // Never binding (8 replicas of 64): the replicas must converge, which a
        // total cap reached in one order and not another would prevent.
        max_entries: 8 * 64,
        max_replicas: 8,
        max_data_len: 8,
        max_type_len: 8,
        max_id_len: 8,
        max_name_len: 8,
        generations: vec![2, 8, 32],
        hash_seed: 3,
    }
}

fn node(name: &str, inc: u64) -> Presence {
    Presence::new(ReplicaId::new(name, inc), config()).expect("valid config")
}

fn transfer(dst: &mut Presence, src: &Presence) {
    let x = src.extract(&dst.context());
    let bytes = postcard::to_allocvec(&x).expect("encodes");
    let x: Extract<'_> = postcard::from_bytes(&bytes).expect("decodes");
    dst.merge_extract(&x)
        .expect("a transfer between honest replicas applies");
}

fn peer(p: &Presence, k: u8) -> Option<ReplicaId> {
    let others: Vec<_> = p
        .replicas()
        .filter(|r| *r.id != *p.me())
        .map(|r| r.id.clone())
        .collect();
    (!others.is_empty()).then(|| others[k as usize % others.len()].clone())
}

fuzz_target!(|steps: Vec<Step>| {
    let names = ["a", "b", "c"];
    let mut nodes: Vec<Presence> = names.iter().map(|n| node(n, 1)).collect();
    let mut bystander = node("z", 1);
    let mut queue: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for s in steps.iter().take(400) {
        match *s {
            Step::Put {
                at,
                ty,
                id,
                data,
                offline,
            } => {
                let p = &mut nodes[at as usize % N];
                let (ty, id) = (format!("t{}", ty % 4), format!("i{}", id % 8));
                let data = [data; 4];
                let state = if offline {
                    State::Offline
                } else {
                    State::Online
                };
                let meta = Meta {
                    state,
                    slot: u32::from(data[0]),
                    data: &data[..usize::from(data[0] % 5)],
                };
                let name = p.me().name.clone();
                if p.get(&name, &ty, &id).is_some() {
                    p.update(&ty, &id, meta).expect("within limits");
                } else {
                    let _ = p.add(&ty, &id, meta);
                }
            }
            Step::Del { at, ty, id } => {
                let _ =
                    nodes[at as usize % N].remove(&format!("t{}", ty % 4), &format!("i{}", id % 8));
            }
            Step::Push { at, copies } => {
                let from = at as usize % N;
                if let Some(d) = nodes[from].take_delta() {
                    let bytes = postcard::to_allocvec(&d).expect("encodes");
                    for to in (0..N).filter(|&t| t != from) {
                        for _ in 0..(copies >> (to * 2)) & 3 {
                            queue.push((from, to, bytes.clone()));
                        }
                    }
                }
            }
            Step::Deliver { pick } if !queue.is_empty() => {
                let (from, to, bytes) = queue.swap_remove(pick as usize % queue.len());
                let d: Delta<'_> = postcard::from_bytes(&bytes).expect("decodes");
                match nodes[to].merge_delta(&d) {
                    Ok(_) | Err(MergeError::StaleIncarnation { .. }) => {}
                    Err(MergeError::Gap { have, .. }) => {
                        if *nodes[from].me() == d.replica {
                            let src = nodes[from].clone();
                            match src.catch_up(have) {
                                Some(c) => {
                                    nodes[to]
                                        .merge_delta(&c)
                                        .expect("a catch-up covers the gap");
                                }
                                None => transfer(&mut nodes[to], &src),
                            }
                        }
                    }
                    Err(e) => panic!("honest delta refused: {e}"),
                }
            }
            Step::Transfer { from, to } => {
                let (from, to) = (from as usize % N, to as usize % N);
                if from != to {
                    let src = nodes[from].clone();
                    transfer(&mut nodes[to], &src);
                }
            }
            Step::Down { at, k } => {
                let p = &mut nodes[at as usize % N];
                if let Some(r) = peer(p, k) {
                    p.replica_down(&r).expect("known peer");
                }
            }
            Step::Up { at, k } => {
                let p = &mut nodes[at as usize % N];
                if let Some(r) = peer(p, k) {
                    p.replica_up(&r).expect("known peer");
                }
            }
            Step::Purge { at, k } => {
                let p = &mut nodes[at as usize % N];
                if let Some(r) = peer(p, k) {
                    let _ = p.remove_down_replica(&r);
                }
            }
            Step::Restart { at } => {
                let at = at as usize % N;
                let inc = nodes[at].me().incarnation + 1;
                nodes[at] = node(names[at], inc);
            }
            Step::Garbage { ref bytes, extract } => {
                let before = (dump(&bystander), bystander.context());
                let refused = if extract {
                    postcard::from_bytes::<Extract<'_>>(bytes)
                        .ok()
                        .map(|x| bystander.merge_extract(&x).is_err())
                } else {
                    postcard::from_bytes::<Delta<'_>>(bytes)
                        .ok()
                        .map(|d| bystander.merge_delta(&d).is_err())
                };
                if refused == Some(true) {
                    assert!(
                        (dump(&bystander), bystander.context()) == before,
                        "a refused merge changed the set"
                    );
                }
            }
            Step::Deliver { .. } => {}
        }
    }
    for a in 0..N {
        let down: Vec<_> = nodes[a]
            .replicas()
            .filter(|r| !r.up)
            .map(|r| r.id.clone())
            .collect();
        for r in down {
            nodes[a].replica_up(&r).expect("known");
        }
    }
    for _ in 0..2 {
        for a in 0..N {
            for b in 0..N {
                if a != b {
                    let src = nodes[b].clone();
                    transfer(&mut nodes[a], &src);
                }
            }
        }
    }
    let mut model: Vec<Row> = nodes
        .iter()
        .flat_map(|p| {
            let me = p.me().clone();
            dump(p)
                .into_iter()
                .filter(move |r| *r.0 == *me.name && r.1 == me.incarnation)
        })
        .collect();
    model.sort();
    for p in &nodes {
        assert!(dump(p) == model, "replica {} did not converge", p.me());
    }
});
