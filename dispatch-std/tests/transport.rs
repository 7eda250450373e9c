//! The driver and the API are generic over the transport: an in-memory
//! network (what a libp2p crate would plug in instead of UDP) carries a
//! registry, its join events and its calls, and its `configure` hook sets
//! the node up for a transport that never loses a message.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_std::dispatch_core::node;
use dispatch_std::dispatch_core::transmit::Destination;
use dispatch_std::{Builder, Registry, Request, Routing, ServiceEvent, Transport};
use tokio::sync::mpsc;

type Inbox = mpsc::UnboundedSender<(u16, Vec<u8>)>;

/// Mailboxes by address.
#[derive(Clone, Default)]
struct Network {
    boxes: Arc<Mutex<HashMap<u16, Inbox>>>,
}

struct Memory {
    addr: u16,
    network: Network,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<(u16, Vec<u8>)>>,
}

impl Network {
    fn attach(&self, addr: u16) -> Memory {
        let (tx, rx) = mpsc::unbounded_channel();
        self.boxes.lock().unwrap().insert(addr, tx);
        Memory {
            addr,
            network: self.clone(),
            inbox: tokio::sync::Mutex::new(rx),
        }
    }
}

impl Transport for Memory {
    type Addr = u16;

    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, u16)> {
        // Both the lock and `recv` are cancel-safe.
        let mut inbox = self.inbox.lock().await;
        let (from, bytes) = inbox.recv().await.ok_or(io::ErrorKind::BrokenPipe)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok((bytes.len(), from))
    }

    async fn send(&self, to: &Destination<u16>, datagram: &[u8]) -> io::Result<()> {
        let boxes = self.network.boxes.lock().unwrap();
        let targets: Vec<&Inbox> = match to {
            Destination::Peer(a) => boxes.get(a).into_iter().collect(),
            Destination::Broadcast => boxes
                .iter()
                .filter(|(a, _)| **a != self.addr)
                .map(|(_, tx)| tx)
                .collect(),
        };
        for tx in targets {
            let _ = tx.send((self.addr, datagram.to_vec()));
        }
        Ok(())
    }

    fn local_addr(&self) -> io::Result<u16> {
        Ok(self.addr)
    }

    fn configure(&self, config: &mut node::Config) {
        config.reliable_transport = true;
        config.transport_broadcasts = true;
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_registry_runs_over_another_transport() {
    let network = Network::default();
    let a: Registry<Memory> = Builder::new()
        .name("a")
        .start_with(network.attach(1), vec![])
        .unwrap();
    let b: Registry<Memory> = Builder::new()
        .name("b")
        .start_with(network.attach(2), vec![1])
        .unwrap();
    until("a and b to know each other", || {
        a.peers().len() == 1 && b.peers().len() == 1
    })
    .await;

    let mut events = b.subscribe("uploader");
    let echo = |r: Request| std::future::ready(r.payload);
    a.add_service("uploader", "u1", echo).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .unwrap()
    {
        Some(ServiceEvent::Joined(s)) => assert_eq!((&*s.id, &*s.node.name), ("u1", "a")),
        other => panic!("expected a join, got {other:?}"),
    }
    assert_eq!(
        &*b.find_service("uploader", "k", Routing::OnlineOnly)
            .unwrap()
            .id,
        "u1"
    );
    let reply = b
        .client()
        .call_raw("uploader", "k", b"over memory")
        .await
        .unwrap();
    assert_eq!(reply, b"over memory");
    let n: u64 = b.stats().node.requests_resent;
    assert_eq!(n, 0, "a reliable transport's requests are never sent again");

    a.shutdown().await;
    until("b to drop a's instance", || {
        b.get_services("uploader").is_empty()
    })
    .await;
    b.shutdown().await;
}
