//! Three swarms in one process, on loopback TCP, each with Dispatch's
//! behaviour: they find each other from one seed each, list each other's
//! services, route keys alike, answer calls, and a graceful leave removes a
//! node's services everywhere. Their swarms close idle connections after
//! 300 ms, and the members' connections stay open regardless.

use std::time::{Duration, Instant};

use dispatch_libp2p::{Behaviour, Config, Libp2p};
use dispatch_std::{Builder, Registry, Request, Routing, ServiceEvent, State};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, SwarmBuilder};
use tokio::sync::mpsc;

/// How long the test swarms keep a connection no handler wants.
const IDLE_TIMEOUT: Duration = Duration::from_millis(300);

/// A node: its registry, the full address others seed with, and the peers
/// of the connections its swarm closed.
struct Node {
    registry: Registry<Libp2p>,
    addr: Multiaddr,
    peer: PeerId,
    closed: mpsc::UnboundedReceiver<PeerId>,
}

async fn node(name: &str, seeds: &[&Multiaddr]) -> Node {
    let mut transport = None;
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let (behaviour, t) = Behaviour::new(key, Config::default()).unwrap();
            transport = Some(t);
            behaviour
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    let peer = *swarm.local_peer_id();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with_p2p(peer).unwrap();
        }
    };
    let transport = transport.unwrap();
    let seeds = transport.seeds(seeds.iter().copied()).unwrap();
    let registry = Builder::new()
        .name(name)
        .down_after(Duration::from_secs(3))
        .start_with(transport, seeds)
        .unwrap();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::ConnectionClosed { peer_id, .. } = swarm.select_next_some().await {
                let _ = closed_tx.send(peer_id);
            }
        }
    });
    Node {
        registry,
        addr,
        peer,
        closed,
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn whoami(me: &'static str) -> impl dispatch_std::Handler {
    move |_: Request| async move { me.as_bytes().to_vec() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_swarms_list_each_others_services_and_answer_calls() {
    let a = node("a", &[]).await;
    let b = node("b", &[&a.addr]).await;
    // c knows only b, and must find a through it.
    let c = node("c", &[&b.addr]).await;
    let nodes = [&a, &b, &c];
    until("every node to know the two others", || {
        nodes.iter().all(|n| n.registry.peers().len() == 2)
    })
    .await;
    for n in nodes {
        let mut addrs: Vec<PeerId> = n.registry.peers().iter().map(|p| p.addr).collect();
        addrs.sort();
        let mut others: Vec<PeerId> = nodes
            .iter()
            .filter(|o| o.peer != n.peer)
            .map(|o| o.peer)
            .collect();
        others.sort();
        assert_eq!(addrs, others, "peers are known by their PeerId");
    }

    let mut on_c = c.registry.subscribe("uploader");
    a.registry
        .add_service("uploader", "ua", whoami("a/ua"))
        .await
        .unwrap();
    b.registry
        .add_service("uploader", "ub", whoami("b/ub"))
        .await
        .unwrap();
    let mut joined = Vec::new();
    while joined.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(20), on_c.next())
            .await
            .expect("c hears both joins")
        {
            Some(ServiceEvent::Joined(s)) => {
                assert_eq!(s.state, State::Online);
                joined.push(format!("{}/{}", s.node.name, s.id));
            }
            other => panic!("expected a join, got {other:?}"),
        }
    }
    joined.sort();
    assert_eq!(joined, ["a/ua", "b/ub"]);
    until("every node to list both uploaders", || {
        nodes
            .iter()
            .all(|n| n.registry.get_services("uploader").len() == 2)
    })
    .await;

    // Every node routes every key to the same instance, and a call from
    // c reaches that instance's node and comes back.
    for key in ["file.png", "a.txt", "b.bin", "c.tar", "d.zip"] {
        let owner = a
            .registry
            .find_service("uploader", key, Routing::OnlineOnly)
            .unwrap();
        for n in [&b, &c] {
            let o = n
                .registry
                .find_service("uploader", key, Routing::OnlineOnly)
                .unwrap();
            assert_eq!((&o.id, &o.node.name), (&owner.id, &owner.node.name));
        }
        let reply = c
            .registry
            .client()
            .call_raw("uploader", key, key.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            reply,
            format!("{}/{}", owner.node.name, owner.id).as_bytes()
        );
    }
    assert_eq!(
        c.registry.stats().node.requests_resent,
        0,
        "over request-response nothing is sent twice"
    );

    // A graceful leave takes a's instance off the others at once (well
    // before the 3 s down period).
    let left_at = Instant::now();
    a.registry.shutdown().await;
    until("b and c to drop a's uploader", || {
        [&b, &c]
            .iter()
            .all(|n| n.registry.get_services("uploader").len() == 1)
    })
    .await;
    assert!(
        left_at.elapsed() < Duration::from_secs(2),
        "a leave is heard at once, not after the down period: {:?}",
        left_at.elapsed()
    );
    b.registry.shutdown().await;
    c.registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_made_nodes_join_and_call_over_quic() {
    let quic: Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap();
    let a = dispatch_libp2p::NodeBuilder::new(Builder::new().name("a"))
        .listen(quic.clone())
        .start()
        .await
        .unwrap();
    let seed = a.listen_addrs()[0].clone();
    assert!(
        seed.iter()
            .any(|p| p == libp2p::multiaddr::Protocol::QuicV1),
        "{seed}"
    );
    let b = dispatch_libp2p::NodeBuilder::new(Builder::new().name("b"))
        .listen(quic)
        .seed(seed)
        .start()
        .await
        .unwrap();
    a.registry()
        .add_service("uploader", "ua", whoami("a/ua"))
        .await
        .unwrap();
    until("b to route to a's uploader", || {
        b.registry()
            .find_service("uploader", "k", Routing::OnlineOnly)
            .is_ok()
    })
    .await;
    let reply = b
        .registry()
        .client()
        .call_raw("uploader", "k", b"x")
        .await
        .unwrap();
    assert_eq!(reply, b"a/ua");
    assert_eq!(a.registry().peers()[0].addr, b.peer_id());
    b.shutdown().await;
    until("a to hear b leave", || {
        a.registry()
            .peers()
            .iter()
            .all(|p| p.status != dispatch_std::PeerStatus::Up)
    })
    .await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_without_a_peer_id_is_refused_with_what_to_write() {
    let e = dispatch_libp2p::NodeBuilder::new(Builder::new().name("a"))
        .seed("/ip4/127.0.0.1/tcp/4001".parse().unwrap())
        .start()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/ip4/127.0.0.1/tcp/4001") && msg.contains("/p2p/<peer id>"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_stay_connected_while_idle_and_other_connections_close() {
    let a = node("a", &[]).await;
    let mut b = node("b", &[&a.addr]).await;
    until("a and b to know each other", || {
        a.registry.peers().len() == 1 && b.registry.peers().len() == 1
    })
    .await;
    a.registry
        .add_service("uploader", "ua", whoami("a/ua"))
        .await
        .unwrap();

    // A peer that speaks no Dispatch (nor anything else) connects to b:
    // its idle connection closes as it would without Dispatch.
    let mut other = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let other_id = *other.local_peer_id();
    other.dial(b.addr.clone()).unwrap();
    tokio::spawn(async move {
        loop {
            other.select_next_some().await;
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if b.closed.recv().await == Some(other_id) {
                return;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "b kept an idle connection to a peer outside the cluster"
    );

    // Meanwhile, and for ten more idle timeouts with nothing to send but
    // heartbeats, the members' connection stays open. (A span of time is
    // the only way to show that something does not happen. Gossipsub's
    // open streams hold it today as well as Dispatch's keep-alive, so this
    // shows what a user relies on, not which of the two provides it.)
    tokio::time::sleep(IDLE_TIMEOUT * 10).await;
    let mut closed_members = Vec::new();
    while let Ok(p) = b.closed.try_recv() {
        closed_members.push(p);
    }
    assert!(
        !closed_members.contains(&a.peer),
        "b closed its connection to the member a"
    );
    let reply = b
        .registry
        .client()
        .call_raw("uploader", "k", b"x")
        .await
        .unwrap();
    assert_eq!(reply, b"a/ua");
    assert_eq!(b.registry.peers()[0].status, dispatch_std::PeerStatus::Up);
    a.registry.shutdown().await;
    b.registry.shutdown().await;
}
