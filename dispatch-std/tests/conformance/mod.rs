//! The behaviours of the Elixir Dispatch library, written once for any
//! [`Transport`]: `dispatch-std` runs them over UDP (`tests/behaviours.rs`)
//! and `dispatch-libp2p` over libp2p (its `tests/behaviours.rs`), each with
//! its own [`Cluster`]. Include this module with `#[path]` and invoke
//! [`behaviours!`] with a cluster; it writes one test per behaviour.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_std::{handler, Error, Registry, Request, Routing, ServiceEvent, State, Transport};
use tokio::sync::mpsc;

use crate::support::{next_event, stop, until, PATIENCE};

/// Starts the clusters the behaviours run on.
pub(crate) trait Cluster {
    /// The transport under test.
    type T: Transport;
    /// `n` nodes named `n1`.., with the short periods of
    /// [`quick`](crate::support::quick), each knowing every other.
    fn start(&self, n: usize) -> impl Future<Output = Vec<Registry<Self::T>>>;
}

/// One `#[tokio::test]` per behaviour, each on a cluster from `$cluster`.
macro_rules! behaviours {
    ($cluster:expr) => {
        conformance::behaviours!(@each $cluster; an_empty_registry_lists_nothing_and_routes_nowhere, add_gives_a_join_event_with_node_and_online_state_and_remove_a_leave, disable_makes_an_instance_offline_and_routing_skips_it_unless_allowed, every_node_gives_the_same_owner_for_a_key, call_and_cast_reach_the_owner_of_the_key, multi_call_reaches_n_distinct_instances_and_multi_cast_n, a_call_past_its_timeout_errors_and_a_bad_typed_request_is_refused_clearly, a_graceful_shutdown_removes_the_nodes_services_everywhere_at_once, a_panicking_handler_fails_only_its_own_call);
    };
    (@each $cluster:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                conformance::$name(&$cluster).await;
            }
        )*
    };
}
pub(crate) use behaviours;

/// A handler that answers with "NODE/ID".
fn whoami(node: &str, id: &str) -> impl dispatch_std::Handler {
    let me = format!("{node}/{id}");
    move |_: Request| {
        let me = me.clone();
        async move { me.into_bytes() }
    }
}

pub(crate) async fn an_empty_registry_lists_nothing_and_routes_nowhere<C: Cluster>(cluster: &C) {
    let nodes = cluster.start(2).await;
    let a = &nodes[0];
    assert!(a.get_services("uploader").is_empty());
    assert!(a.get_online_services("uploader").is_empty());
    let e = a
        .find_service("uploader", "file.png", Routing::AllowOffline)
        .unwrap_err();
    assert!(
        matches!(&e, Error::NoService { ty } if ty == "uploader"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "no available instance of service type `uploader`"
    );
    assert!(a
        .find_multi_service(2, "uploader", "k", Routing::OnlineOnly)
        .is_err());
    let e = a
        .client()
        .call_raw("uploader", "file.png", b"hi")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoService { .. }), "{e}");
    let e = a
        .client()
        .cast_raw("uploader", "file.png", b"hi")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoService { .. }), "{e}");
    stop(&nodes).await;
}

pub(crate) async fn add_gives_a_join_event_with_node_and_online_state_and_remove_a_leave<
    C: Cluster,
>(
    cluster: &C,
) {
    let nodes = cluster.start(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut on_b = b.subscribe("uploader");
    let mut on_a = a.subscribe("uploader");
    let reference = a
        .add_service("uploader", "u1", whoami("n1", "u1"))
        .await
        .unwrap();

    for events in [&mut on_b, &mut on_a] {
        let ServiceEvent::Joined(s) = next_event(events).await else {
            panic!("expected a join");
        };
        assert_eq!((&*s.ty, &*s.id, &*s.node.name), ("uploader", "u1", "n1"));
        assert_eq!(s.state, State::Online);
        assert_eq!(s.reference, reference);
        assert_eq!(s.previous, None);
    }
    let listed = b.get_services("uploader");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].node, *a.id());
    // Another type's subscribers hear nothing of it.
    let mut other = b.subscribe("downloader");

    a.remove_service("uploader", "u1").await.unwrap();
    let ServiceEvent::Left(s) = next_event(&mut on_b).await else {
        panic!("expected a leave");
    };
    assert_eq!((&*s.id, &*s.node.name), ("u1", "n1"));
    until("b to list nothing", || {
        b.get_services("uploader").is_empty()
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(50), other.next()).await;
    assert!(quiet.is_err(), "a downloader subscriber heard {quiet:?}");

    // Removing it twice, or an instance never added, is refused.
    let e = a.remove_service("uploader", "u1").await.unwrap_err();
    assert!(matches!(e, Error::Command(_)), "{e}");
    stop(&nodes).await;
}

pub(crate) async fn disable_makes_an_instance_offline_and_routing_skips_it_unless_allowed<
    C: Cluster,
>(
    cluster: &C,
) {
    let nodes = cluster.start(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.add_service("uploader", "u1", whoami("n1", "u1"))
        .await
        .unwrap();
    until("b to route to u1", || {
        b.find_service("uploader", "file.png", Routing::OnlineOnly)
            .is_ok()
    })
    .await;
    let mut events = b.subscribe("uploader");

    a.disable_service("uploader", "u1").await.unwrap();
    until("b to see u1 offline", || {
        b.get_online_services("uploader").is_empty()
    })
    .await;
    let listed = b.get_services("uploader");
    assert_eq!(listed.len(), 1, "an offline instance is still listed");
    assert_eq!(listed[0].state, State::Offline);
    assert!(
        listed[0].previous.is_some(),
        "an update keeps the previous ref"
    );
    // The update is heard as the old version leaving and the new joining.
    assert!(matches!(
        next_event(&mut events).await,
        ServiceEvent::Left(_)
    ));
    match next_event(&mut events).await {
        ServiceEvent::Joined(s) => assert_eq!(s.state, State::Offline),
        other => panic!("expected a join, got {other:?}"),
    }
    for node in [a, b] {
        assert!(matches!(
            node.find_service("uploader", "file.png", Routing::OnlineOnly),
            Err(Error::NoService { .. })
        ));
        let found = node
            .find_service("uploader", "file.png", Routing::AllowOffline)
            .unwrap();
        assert_eq!(&*found.id, "u1");
    }
    let e = b
        .client()
        .call_raw("uploader", "file.png", b"x")
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::NoService { .. }),
        "calls skip offline instances: {e}"
    );

    a.enable_service("uploader", "u1").await.unwrap();
    until("b to route to u1 again", || {
        b.find_service("uploader", "file.png", Routing::OnlineOnly)
            .is_ok()
    })
    .await;
    let reply = b
        .client()
        .call_raw("uploader", "file.png", b"x")
        .await
        .unwrap();
    assert_eq!(reply, b"n1/u1");
    stop(&nodes).await;
}

pub(crate) async fn every_node_gives_the_same_owner_for_a_key<C: Cluster>(cluster: &C) {
    let nodes = cluster.start(3).await;
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..2 {
            let id = format!("u{i}{j}");
            node.add_service("uploader", &id, whoami(&node.id().name, &id))
                .await
                .unwrap();
        }
    }
    until("every node to route to all 6 instances", || {
        nodes.iter().all(|n| {
            n.find_multi_service(6, "uploader", "k", Routing::OnlineOnly)
                .is_ok_and(|f| f.len() == 6)
        })
    })
    .await;
    let mut owners = BTreeSet::new();
    for k in 0..300 {
        let key = format!("file-{k}.png");
        let answers: Vec<_> = nodes
            .iter()
            .map(|n| {
                n.find_service("uploader", &key, Routing::OnlineOnly)
                    .unwrap()
            })
            .collect();
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "nodes disagree on {key}: {answers:?}"
        );
        let replicas: Vec<_> = nodes
            .iter()
            .map(|n| {
                n.find_multi_service(3, "uploader", &key, Routing::OnlineOnly)
                    .unwrap()
            })
            .collect();
        assert!(
            replicas.windows(2).all(|w| w[0] == w[1]),
            "nodes disagree on replicas of {key}"
        );
        assert_eq!(replicas[0][0], answers[0], "the owner comes first");
        owners.insert(answers[0].id.clone());
    }
    assert_eq!(owners.len(), 6, "300 keys spread over every instance");
    stop(&nodes).await;
}

pub(crate) async fn call_and_cast_reach_the_owner_of_the_key<C: Cluster>(cluster: &C) {
    let nodes = cluster.start(3).await;
    let (casts_tx, mut casts) = mpsc::unbounded_channel::<(String, String)>();
    for node in &nodes {
        let id = format!("{}-u", node.id().name);
        let (me, tx) = (format!("{}/{id}", node.id().name), casts_tx.clone());
        let h = move |name: String| {
            let me = me.clone();
            // A cast's reply is dropped; the channel shows who got it.
            let _ = tx.send((me.clone(), name.clone()));
            async move { format!("{me} got {name}") }
        };
        node.add_service("uploader", &id, handler::typed(h))
            .await
            .unwrap();
    }
    until("every node to route to all 3 instances", || {
        nodes.iter().all(|n| {
            n.find_multi_service(3, "uploader", "k", Routing::OnlineOnly)
                .is_ok_and(|f| f.len() == 3)
        })
    })
    .await;
    for (k, caller) in (0..12).zip(nodes.iter().cycle()) {
        let key = format!("file-{k}.png");
        let owner = caller
            .find_service("uploader", &key, Routing::OnlineOnly)
            .unwrap();
        let owner = format!("{}/{}", owner.node.name, owner.id);
        let reply: String = caller.call("uploader", &key, &key).await.unwrap();
        assert_eq!(reply, format!("{owner} got {key}"));
        assert_eq!(casts.recv().await.unwrap(), (owner.clone(), key.clone()));

        caller
            .cast("uploader", &key, &format!("cast {key}"))
            .await
            .unwrap();
        let got = tokio::time::timeout(PATIENCE, casts.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, (owner, format!("cast {key}")));
    }
    stop(&nodes).await;
}

pub(crate) async fn multi_call_reaches_n_distinct_instances_and_multi_cast_n<C: Cluster>(
    cluster: &C,
) {
    let nodes = cluster.start(3).await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    for node in &nodes {
        let id = format!("{}-u", node.id().name);
        let (me, seen) = (format!("{}/{id}", node.id().name), Arc::clone(&seen));
        let h = move |_: Request| {
            seen.lock().unwrap().push(me.clone());
            std::future::ready(me.clone().into_bytes())
        };
        node.add_service("uploader", &id, h).await.unwrap();
    }
    until("every node to route to all 3 instances", || {
        nodes.iter().all(|n| {
            n.find_multi_service(3, "uploader", "k", Routing::OnlineOnly)
                .is_ok_and(|f| f.len() == 3)
        })
    })
    .await;
    let caller = &nodes[1];
    let expected = caller
        .find_multi_service(2, "uploader", "report.pdf", Routing::OnlineOnly)
        .unwrap();
    let replies = caller
        .client()
        .multi_call_raw(2, "uploader", "report.pdf", b"q")
        .await
        .unwrap();
    assert_eq!(replies.len(), 2);
    let mut distinct = BTreeSet::new();
    for ((service, reply), want) in replies.iter().zip(&expected) {
        assert_eq!(service, want, "replies come in find_multi_service order");
        let reply = reply.as_ref().unwrap();
        assert_eq!(
            *reply,
            format!("{}/{}", service.node.name, service.id).into_bytes()
        );
        distinct.insert(reply.clone());
    }
    assert_eq!(distinct.len(), 2);
    // Asking for more than exist reaches each once.
    let all = caller
        .client()
        .multi_call_raw(5, "uploader", "report.pdf", b"q")
        .await
        .unwrap();
    assert_eq!(all.len(), 3);

    seen.lock().unwrap().clear();
    let sent = caller
        .client()
        .multi_cast_raw(2, "uploader", "video.mp4", b"c")
        .await
        .unwrap();
    assert_eq!(sent, 2);
    until("both casts to arrive", || seen.lock().unwrap().len() == 2).await;
    let got: BTreeSet<String> = seen.lock().unwrap().iter().cloned().collect();
    let want: BTreeSet<String> = caller
        .find_multi_service(2, "uploader", "video.mp4", Routing::OnlineOnly)
        .unwrap()
        .iter()
        .map(|s| format!("{}/{}", s.node.name, s.id))
        .collect();
    assert_eq!(got, want);
    stop(&nodes).await;
}

pub(crate) async fn a_call_past_its_timeout_errors_and_a_bad_typed_request_is_refused_clearly<
    C: Cluster,
>(
    cluster: &C,
) {
    let nodes = cluster.start(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let slow = |_: Request| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        b"late".to_vec()
    };
    a.add_service("slow", "s1", slow).await.unwrap();
    a.add_service("typed", "t1", handler::typed(|n: u32| async move { n + 1 }))
        .await
        .unwrap();
    until("b to see both", || {
        b.find_service("slow", "k", Routing::OnlineOnly).is_ok()
            && b.find_service("typed", "k", Routing::OnlineOnly).is_ok()
    })
    .await;

    let started = Instant::now();
    let e = b
        .client()
        .timeout(Duration::from_millis(200))
        .call_raw("slow", "k", b"x")
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Timeout { ty } if ty == "slow"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout, not the handler, ended the call"
    );

    let n: u32 = b.call("typed", "k", &41u32).await.unwrap();
    assert_eq!(n, 42);
    // `()` encodes as no bytes at all, which no `u32` decodes from.
    let e = b.call::<_, u32>("typed", "k", &()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Remote(m) if m.contains("did not decode as u32")),
        "{e}"
    );
    stop(&nodes).await;
}

pub(crate) async fn a_graceful_shutdown_removes_the_nodes_services_everywhere_at_once<
    C: Cluster,
>(
    cluster: &C,
) {
    let nodes = cluster.start(3).await;
    nodes[2]
        .add_service("uploader", "u3", whoami("n3", "u3"))
        .await
        .unwrap();
    until("every node to see u3", || {
        nodes.iter().all(|n| n.get_services("uploader").len() == 1)
    })
    .await;
    let mut events = nodes[0].subscribe("uploader");
    let mut own = nodes[2].subscribe("uploader");
    let started = Instant::now();
    nodes[2].shutdown().await;
    assert!(matches!(next_event(&mut events).await, ServiceEvent::Left(s) if &*s.id == "u3"));
    until("n2 to drop u3", || {
        nodes[1].get_services("uploader").is_empty()
    })
    .await;
    // Well under the 2 s down period: the peers were told.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        own.next().await,
        None,
        "the stopped node's subscriptions end"
    );
    let e = nodes[2]
        .add_service("uploader", "again", whoami("n3", "x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Stopped), "{e}");
    stop(&nodes[..2]).await;
}

pub(crate) async fn a_panicking_handler_fails_only_its_own_call<C: Cluster>(cluster: &C) {
    let nodes = cluster.start(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let bad = |r: Request| {
        assert!(r.payload != b"boom", "the handler refuses boom");
        std::future::ready(r.payload)
    };
    a.add_service("fragile", "f1", bad).await.unwrap();
    until("b to route to f1", || {
        b.find_service("fragile", "k", Routing::OnlineOnly).is_ok()
    })
    .await;
    let client = b.client().timeout(Duration::from_millis(300));
    let e = client.call_raw("fragile", "k", b"boom").await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    // The node that ran it still answers, and still replicates.
    assert_eq!(
        client.call_raw("fragile", "k", b"fine").await.unwrap(),
        b"fine"
    );
    a.add_service("fragile", "f2", whoami("n1", "f2"))
        .await
        .unwrap();
    until("b to see f2", || b.get_services("fragile").len() == 2).await;
    stop(&nodes).await;
}
