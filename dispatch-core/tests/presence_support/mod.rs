//! Helpers shared by the presence tests.
#![allow(dead_code, unreachable_pub)]

use dispatch_core::presence::{Config, Delta, Extract, Meta, Presence, ReplicaId, State};
use proptest::prelude::*;

mod reads;

/// One visible entry, owned, for comparisons.
pub type Row = (String, u64, String, String, u64, u64, State, u32, Vec<u8>);

pub fn cfg() -> Config {
    Config {
        hash_seed: 0x7e57,
        generations: vec![4, 16, 64],
        ..Config::default()
    }
}

pub fn node(name: &str, incarnation: u64) -> Presence {
    Presence::new(ReplicaId::new(name, incarnation), cfg()).unwrap()
}

/// Every visible entry, sorted.
pub fn dump(p: &Presence) -> Vec<Row> {
    let mut v: Vec<Row> = p
        .entries()
        .map(|e| {
            let r = e.replica();
            let m = e.meta();
            (
                r.name.to_string(),
                r.incarnation,
                e.ty().to_string(),
                e.id().to_string(),
                e.reference().clock,
                e.prev().map_or(0, |p| p.clock),
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

/// The visible entries of `p`'s own replica.
pub fn own(p: &Presence) -> Vec<Row> {
    let me = p.me().clone();
    dump(p)
        .into_iter()
        .filter(|r| *r.0 == *me.name && r.1 == me.incarnation)
        .collect()
}

/// A local operation on a small key space, so that removes and updates hit.
#[derive(Debug, Clone)]
pub enum LocalOp {
    /// Add, or update when it exists.
    Put {
        ty: u8,
        id: u8,
        data: u8,
        offline: bool,
    },
    /// Remove if it exists.
    Del { ty: u8, id: u8 },
}

pub fn local_op() -> impl Strategy<Value = LocalOp> {
    prop_oneof![
        3 => (0u8..3, 0u8..5, 0u8..3, any::<bool>()).prop_map(|(ty, id, data, offline)| LocalOp::Put { ty, id, data, offline }),
        2 => (0u8..3, 0u8..5).prop_map(|(ty, id)| LocalOp::Del { ty, id }),
    ]
}

pub fn apply(p: &mut Presence, op: &LocalOp) {
    match *op {
        LocalOp::Put {
            ty,
            id,
            data,
            offline,
        } => {
            let (ty, id, data) = (format!("t{ty}"), format!("i{id}"), [data; 3]);
            let state = if offline {
                State::Offline
            } else {
                State::Online
            };
            let meta = Meta {
                state,
                slot: u32::from(data[0]),
                data: &data[..usize::from(data[0])],
            };
            if p.get(&p.me().name.clone(), &ty, &id).is_some() {
                p.update(&ty, &id, meta).unwrap();
            } else {
                p.add(&ty, &id, meta).unwrap();
            }
        }
        LocalOp::Del { ty, id } => {
            let (ty, id) = (format!("t{ty}"), format!("i{id}"));
            if p.get(&p.me().name.clone(), &ty, &id).is_some() {
                p.remove(&ty, &id).unwrap();
            }
        }
    }
}

pub fn encode_delta(p: &mut Presence) -> Option<Vec<u8>> {
    p.take_delta().map(|d| postcard::to_allocvec(&d).unwrap())
}

/// Merges an encoded delta into `dst`; on a gap, catches up from `src`
/// (a generation if one covers the gap, else an extract).
pub fn deliver(dst: &mut Presence, bytes: &[u8], src: Option<&Presence>) {
    let d: Delta<'_> = postcard::from_bytes(bytes).unwrap();
    match dst.merge_delta(&d) {
        Ok(_) => {}
        Err(dispatch_core::presence::MergeError::Gap { have, .. }) => {
            if let Some(src) = src.filter(|s| *s.me() == d.replica) {
                catch_up(dst, src, have);
            }
        }
        Err(dispatch_core::presence::MergeError::StaleIncarnation { .. }) => {}
        Err(e) => panic!("unexpected merge error {e}"),
    }
}

pub fn catch_up(dst: &mut Presence, src: &Presence, have: u64) {
    if let Some(d) = src.catch_up(have) {
        let bytes = postcard::to_allocvec(&d).unwrap();
        let d: Delta<'_> = postcard::from_bytes(&bytes).unwrap();
        dst.merge_delta(&d).unwrap();
    } else {
        transfer(dst, src);
    }
}

/// A state transfer through the wire format.
pub fn transfer(dst: &mut Presence, src: &Presence) {
    let x = src.extract(&dst.context());
    let bytes = postcard::to_allocvec(&x).unwrap();
    let x: Extract<'_> = postcard::from_bytes(&bytes).unwrap();
    dst.merge_extract(&x).unwrap();
}

pub fn id(p: &Presence) -> ReplicaId {
    p.me().clone()
}
