//! Convergence: replicas doing random operations, exchanging deltas and
//! extracts over a lossy, duplicating, reordering network, with down/up,
//! purges and restarts, end with the same visible set after anti-entropy.

mod presence_support;

use dispatch_core::presence::Presence;
use presence_support::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Op(usize, LocalOp),
    /// The node pushes its pending delta to every peer; each copy is lost,
    /// kept once or duplicated according to the seed.
    Push(usize, u8),
    /// Deliver the queued message at this (wrapped) position.
    Deliver(usize),
    /// A transfer: `to` asks `from` for what it lacks.
    Transfer(usize, usize),
    /// `at` marks its k-th known peer down, or up again.
    Down(usize, usize),
    Up(usize, usize),
    /// `at` purges its k-th peer if that peer is down.
    Purge(usize, usize),
    /// The node restarts with a new incarnation and an empty state.
    Restart(usize),
}

fn step(n: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..n, local_op()).prop_map(|(r, op)| Step::Op(r, op)),
        3 => (0..n, any::<u8>()).prop_map(|(r, s)| Step::Push(r, s)),
        6 => any::<usize>().prop_map(Step::Deliver),
        1 => (0..n, 0..n).prop_map(|(a, b)| Step::Transfer(a, b)),
        1 => (0..n, 0usize..5).prop_map(|(a, k)| Step::Down(a, k)),
        1 => (0..n, 0usize..5).prop_map(|(a, k)| Step::Up(a, k)),
        1 => (0..n, 0usize..5).prop_map(|(a, k)| Step::Purge(a, k)),
        1 => (0..n).prop_map(Step::Restart),
    ]
}

struct Msg {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

fn peer(p: &Presence, k: usize) -> Option<dispatch_core::presence::ReplicaId> {
    let others: Vec<_> = p
        .replicas()
        .filter(|r| *r.id != *p.me())
        .map(|r| r.id.clone())
        .collect();
    (!others.is_empty()).then(|| others[k % others.len()].clone())
}

fn simulate(n: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    let names = ["a", "b", "c", "d", "e"];
    let mut nodes: Vec<Presence> = (0..n).map(|i| node(names[i], 1)).collect();
    let mut queue: Vec<Msg> = Vec::new();
    for s in steps {
        match *s {
            Step::Op(r, ref op) => apply(&mut nodes[r], op),
            Step::Push(r, seed) => {
                if let Some(bytes) = encode_delta(&mut nodes[r]) {
                    for to in (0..n).filter(|&t| t != r) {
                        let copies = (seed >> (to % 4 * 2)) & 3; // 0: lost, 3: duplicated
                        for _ in 0..copies.min(2) {
                            queue.push(Msg {
                                from: r,
                                to,
                                bytes: bytes.clone(),
                            });
                        }
                    }
                }
            }
            Step::Deliver(k) if !queue.is_empty() => {
                let m = queue.swap_remove(k % queue.len());
                let src = nodes[m.from].clone();
                deliver(&mut nodes[m.to], &m.bytes, Some(&src));
            }
            Step::Transfer(from, to) if from != to => {
                let src = nodes[from].clone();
                transfer(&mut nodes[to], &src);
            }
            Step::Down(at, k) => {
                if let Some(r) = peer(&nodes[at], k) {
                    let hidden = nodes[at]
                        .replicas()
                        .find(|i| *i.id == r)
                        .map(|i| (i.up, i.entries))
                        .unwrap();
                    let s = nodes[at].replica_down(&r).unwrap();
                    let expect = if hidden.0 { hidden.1 as u32 } else { 0 };
                    prop_assert_eq!((s.joins, s.leaves), (0, expect));
                }
            }
            Step::Up(at, k) => {
                if let Some(r) = peer(&nodes[at], k) {
                    nodes[at].replica_up(&r).unwrap();
                }
            }
            Step::Purge(at, k) => {
                if let Some(r) = peer(&nodes[at], k) {
                    let _ = nodes[at].remove_down_replica(&r);
                }
            }
            Step::Restart(r) => {
                let me = nodes[r].me().clone();
                nodes[r] = node(&me.name, me.incarnation + 1);
            }
            _ => {}
        }
    }
    // Anti-entropy: everyone marks everyone up, then transfers all pairs twice.
    for p in nodes.iter_mut() {
        let down: Vec<_> = p
            .replicas()
            .filter(|r| !r.up)
            .map(|r| r.id.clone())
            .collect();
        for r in down {
            p.replica_up(&r).unwrap();
        }
    }
    for _ in 0..2 {
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let src = nodes[b].clone();
                    transfer(&mut nodes[a], &src);
                }
            }
        }
    }
    let mut model: Vec<Row> = nodes.iter().flat_map(own).collect();
    model.sort();
    for p in &nodes {
        prop_assert_eq!(
            dump(p),
            model.clone(),
            "replica {} differs from the model",
            p.me()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn replicas_converge(n in 3usize..=5, steps in prop::collection::vec(step(5), 0..150)) {
        let steps: Vec<Step> = steps.into_iter().filter(|s| match s {
            Step::Op(r, _) | Step::Push(r, _) | Step::Restart(r) => *r < n,
            Step::Transfer(a, b) => *a < n && *b < n,
            Step::Down(a, _) | Step::Up(a, _) | Step::Purge(a, _) => *a < n,
            Step::Deliver(_) => true,
        }).collect();
        simulate(n, &steps)?;
    }
}
