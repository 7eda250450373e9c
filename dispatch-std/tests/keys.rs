//! Keyed clusters on real UDP sockets on loopback: a node without the key,
//! or with another key, is refused and counted while the cluster keeps
//! serving; keys rotate with the nodes running; a node reachable beyond
//! loopback refuses to start without a key unless told it is insecure.

mod support;

use std::time::Duration;

use dispatch_std::dispatch_core::keyring::{Key, Keyring};
use dispatch_std::dispatch_core::node::DropReason;
use dispatch_std::{Builder, PeerStatus, Registry, Request, Routing};
use support::{quick, stop, until};

fn key(id: u8, byte: u8) -> Key {
    Key::new(id, [byte; 32]).unwrap()
}

fn echo(r: Request) -> std::future::Ready<Vec<u8>> {
    std::future::ready(r.payload)
}

/// `names` on loopback, all holding `keyring`, seeded with the first; waits
/// until each knows every other.
async fn keyed_cluster(names: &[&str], keyring: &Keyring) -> Vec<Registry> {
    let mut nodes: Vec<Registry> = Vec::new();
    for name in names {
        let mut b = quick(name).keyring(keyring.clone());
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr().to_string());
        }
        nodes.push(b.start().await.expect("a keyed node starts on loopback"));
    }
    let n = names.len();
    until("every keyed node to know every other", || {
        nodes.iter().all(|node| node.peers().len() == n - 1)
    })
    .await;
    nodes
}

/// A call from `node` through the cluster comes back.
async fn ping(node: &Registry) {
    let reply = node
        .client()
        .call_raw("uploader", "k", b"ping")
        .await
        .unwrap();
    assert_eq!(reply, b"ping");
}

fn refused(node: &Registry, reason: DropReason) -> u64 {
    node.stats().node.dropped(reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_cluster_ignores_plaintext_and_other_key_senders_and_keeps_serving() {
    let ring = Keyring::new(key(1, 0x11));
    let nodes = keyed_cluster(&["a", "b"], &ring).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.add_service("uploader", "u1", echo).await.unwrap();
    let target = a.local_addr().to_string();

    // A node speaking in the clear, one sealing with another key under the
    // same id, and one with a key id the cluster does not hold, each
    // seeded with a and registering a service of its own.
    let plain = quick("plain").seed(target.clone()).start().await.unwrap();
    let forger = quick("forger")
        .keyring(Keyring::new(key(1, 0xEE)))
        .seed(target.clone())
        .start()
        .await
        .unwrap();
    let stranger = quick("stranger")
        .keyring(Keyring::new(key(9, 0x11)))
        .seed(target)
        .start()
        .await
        .unwrap();
    let intruders = [&plain, &forger, &stranger];
    for (i, node) in intruders.iter().enumerate() {
        node.add_service("uploader", &format!("evil{i}"), echo)
            .await
            .unwrap();
    }

    until("a to count each intruder's datagrams", || {
        refused(a, DropReason::Unsealed) >= 2
            && refused(a, DropReason::BadTag) >= 2
            && refused(a, DropReason::UnknownKey) >= 2
    })
    .await;
    // The cluster still serves: b routes to a's instance and calls it.
    until("b to see u1", || b.get_services("uploader").len() == 1).await;
    for k in 0..20 {
        let key = format!("file-{k}");
        let owner = b
            .find_service("uploader", &key, Routing::OnlineOnly)
            .unwrap();
        assert_eq!((&*owner.node.name, &*owner.id), ("a", "u1"));
        let reply = b
            .client()
            .timeout(Duration::from_secs(5))
            .call_raw("uploader", &key, key.as_bytes())
            .await
            .unwrap();
        assert_eq!(reply, key.as_bytes());
    }
    for node in [a, b] {
        let ids: Vec<String> = node
            .get_services("uploader")
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        assert_eq!(
            ids,
            ["u1"],
            "{} lists only the cluster's instance",
            node.id().name
        );
        let peers: Vec<String> = node.peers().iter().map(|p| p.id.name.to_string()).collect();
        assert_eq!(
            peers.len(),
            1,
            "{} knows only its real peer: {peers:?}",
            node.id().name
        );
    }
    for node in intruders {
        assert!(node.peers().is_empty(), "{} got in", node.id().name);
        assert_eq!(
            node.get_services("uploader").len(),
            1,
            "it sees only its own"
        );
    }
    stop(&nodes).await;
    for node in intruders {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_the_nodes_running() {
    let old = key(1, 0x11);
    let new = key(2, 0x22);
    let nodes = keyed_cluster(&["a", "b", "c"], &Keyring::new(old.clone())).await;
    nodes[0].add_service("uploader", "u1", echo).await.unwrap();
    until("every node to see u1", || {
        nodes.iter().all(|n| n.get_services("uploader").len() == 1)
    })
    .await;
    let steps = [
        Keyring::new(old.clone())
            .with_secondary(new.clone())
            .unwrap(),
        Keyring::new(new.clone())
            .with_secondary(old.clone())
            .unwrap(),
        Keyring::new(new.clone()),
    ];
    for (s, ring) in steps.iter().enumerate() {
        // One node at a time, as an operator would, with a call through
        // the cluster after each; then a new service must reach every node.
        for node in &nodes {
            node.set_keyring(Some(ring.clone()));
            ping(&nodes[2]).await;
        }
        let id = format!("r{s}");
        nodes[s].add_service("uploader", &id, echo).await.unwrap();
        let registered = s + 2;
        until("every node to see the new instance", || {
            nodes
                .iter()
                .all(|n| n.get_services("uploader").len() == registered)
        })
        .await;
        ping(&nodes[2]).await;
    }
    for node in &nodes {
        assert!(
            node.peers().iter().all(|p| p.status == PeerStatus::Up),
            "{} saw a peer go down during the rotation",
            node.id().name
        );
    }
    // A node that kept only the old key is refused once it is removed.
    let late = quick("late")
        .keyring(Keyring::new(old))
        .seed(nodes[0].local_addr().to_string())
        .start()
        .await
        .unwrap();
    until("a to refuse the retired key", || {
        refused(&nodes[0], DropReason::UnknownKey) >= 1
    })
    .await;
    assert!(late.peers().is_empty());
    late.shutdown().await;
    stop(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reachable_beyond_loopback_needs_a_key_or_insecure() {
    let e = Builder::new()
        .bind("0.0.0.0:0")
        .start()
        .await
        .map(|_| ())
        .expect_err("refused without a key");
    let text = e.to_string();
    assert!(
        text.contains("0.0.0.0") && text.contains("dispatch keygen") && text.contains("--insecure"),
        "{text}"
    );
    let keyed = Builder::new()
        .bind("0.0.0.0:0")
        .keyring(Keyring::new(key(1, 1)))
        .start()
        .await
        .unwrap();
    keyed.shutdown().await;
    let open = Builder::new()
        .bind("0.0.0.0:0")
        .insecure(true)
        .start()
        .await
        .unwrap();
    open.shutdown().await;
    // A key file that is not there is named with where it came from.
    let e = Builder::new()
        .env_vars([(
            "DISPATCH_KEY_FILE".to_string(),
            "/nonexistent/cluster.key".to_string(),
        )])
        .unwrap()
        .start()
        .await
        .map(|_| ())
        .expect_err("a missing key file is refused");
    let text = e.to_string();
    assert!(
        text.starts_with("DISPATCH_KEY_FILE /nonexistent/cluster.key: cannot read it"),
        "{text}"
    );
}
