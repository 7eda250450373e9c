//! Garbage and other clusters' datagrams sent at a node's port: the node
//! counts and drops them, and keeps serving.

mod support;

use std::time::Duration;

use dispatch_std::dispatch_core::node::DropReason;
use dispatch_std::{Request, Routing};
use support::{quick, stop, until};
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_foreign_cluster_datagrams_are_counted_and_the_node_keeps_serving() {
    let a = quick("a").start().await.unwrap();
    let echo = |r: Request| std::future::ready(r.payload);
    a.add_service("uploader", "u1", echo).await.unwrap();
    let target = *a.local_addr();

    // Garbage: empty, short, random-looking, a valid-looking header byte
    // followed by junk, and one as large as a datagram gets.
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 3],
        vec![1, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9],
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [16, 100, 1199, 1500, 9000, 60_000] {
        junk.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
        );
    }
    for datagram in &junk {
        attacker.send_to(datagram, target).await.unwrap();
    }

    // Another cluster's node, seeded with a's address: its greetings are
    // real Dispatch datagrams with the wrong cluster id.
    let foreign = quick("intruder")
        .cluster_id(99)
        .seed(target.to_string())
        .start()
        .await
        .unwrap();
    foreign.add_service("uploader", "evil", echo).await.unwrap();

    until("a to count the garbage and the foreign datagrams", || {
        let s = a.stats().node;
        s.dropped(DropReason::Malformed) + s.dropped(DropReason::Version) >= junk.len() as u64
            && s.dropped(DropReason::ForeignCluster) >= 2
    })
    .await;
    let s = a.stats().node;
    assert!(s.datagrams_in >= junk.len() as u64 + 2);
    assert!(a.peers().is_empty(), "a foreign node is not a peer");
    assert_eq!(
        a.get_services("uploader").len(),
        1,
        "nothing of the other cluster leaks in"
    );

    // Still serving: a node of the right cluster joins, sees a's service and
    // calls it.
    let b = quick("b").seed(target.to_string()).start().await.unwrap();
    until("b to route to a's instance", || {
        b.find_service("uploader", "k", Routing::OnlineOnly).is_ok()
    })
    .await;
    let reply = b
        .client()
        .timeout(Duration::from_secs(5))
        .call_raw("uploader", "k", b"still here")
        .await
        .unwrap();
    assert_eq!(reply, b"still here");
    assert_eq!(b.get_services("uploader").len(), 1);
    stop(&[a, b, foreign]).await;
}
