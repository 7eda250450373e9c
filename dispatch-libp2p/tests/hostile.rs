//! A libp2p peer that is not a Dispatch node joins the cluster's topic and
//! publishes junk, another cluster's datagrams and an oversized message,
//! and sends junk requests. Each is refused and counted, none is forwarded
//! to the other subscribers (while the node, set to relay, forwards real
//! Dispatch messages), and the Dispatch nodes keep serving.

#[path = "../../dispatch-std/tests/support/mod.rs"]
mod support;

use std::io;
use std::time::{Duration, Instant};

use dispatch_libp2p::{Node, NodeBuilder};
use dispatch_std::dispatch_core::node::{self, DropReason};
use dispatch_std::dispatch_core::presence::ReplicaId;
use dispatch_std::dispatch_core::time::Instant as CoreInstant;
use dispatch_std::{Request, Routing};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, Swarm, SwarmEvent};
use libp2p::{noise, tcp, yamux, PeerId, StreamProtocol, SwarmBuilder};
use support::{quick, until, PATIENCE};
use tokio::sync::mpsc;

/// Writes whatever bytes it is given as a request under Dispatch's
/// protocol name.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        io.take(1 << 20).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        self.read_request(p, io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        self.write_request(&StreamProtocol::new("/dispatch/1"), io, res)
            .await
    }
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Outsider {
    gossipsub: gossipsub::Behaviour,
    raw: request_response::Behaviour<RawCodec>,
}

fn outsider() -> Swarm<Outsider> {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .protocol_id_prefix("/dispatch/meshsub")
                .heartbeat_interval(Duration::from_millis(100))
                // Large enough to publish what Dispatch must refuse.
                .max_transmit_size(1 << 20)
                .build()
                .unwrap();
            Outsider {
                gossipsub: gossipsub::Behaviour::new(
                    MessageAuthenticity::Signed(key.clone()),
                    config,
                )
                .unwrap(),
                raw: request_response::Behaviour::new(
                    [(StreamProtocol::new("/dispatch/1"), ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
            }
        })
        .unwrap()
        .build();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new("dispatch/0"))
        .unwrap();
    swarm
}

/// A datagram of cluster 7, written by a real core node.
fn foreign_datagram() -> Vec<u8> {
    let config = node::Config {
        cluster_id: 7,
        transport_broadcasts: true,
        ..node::Config::default()
    };
    let now = CoreInstant::from_millis(1);
    let mut n: node::Node<PeerId> =
        node::Node::new(ReplicaId::new("elsewhere", 1), config, now).unwrap();
    n.add_service(now, "uploader", "forged", b"").unwrap();
    let mut buf = vec![0; 1500];
    let t = n
        .poll_transmit(now, &mut buf)
        .expect("a delta to broadcast");
    buf.truncate(t.len);
    buf
}

/// What a gossip peer hears: the author of each message.
type Heard = mpsc::UnboundedReceiver<Option<PeerId>>;

/// Runs an outsider swarm, connected to `to`, in a task; reports the
/// author of every gossip message it receives, and publishes or sends
/// what arrives on the returned channel.
fn run_outsider(
    mut swarm: Swarm<Outsider>,
    to: &Node,
) -> (Heard, mpsc::UnboundedSender<Junk>, PeerId) {
    let peer = *swarm.local_peer_id();
    swarm.dial(to.listen_addrs()[0].clone()).unwrap();
    let target = to.peer_id();
    let (heard_tx, heard) = mpsc::unbounded_channel();
    let (junk, mut junk_rx) = mpsc::unbounded_channel::<Junk>();
    tokio::spawn(async move {
        let topic = IdentTopic::new("dispatch/0");
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(OutsiderEvent::Gossipsub(gossipsub::Event::Message { message, .. })) = event {
                        let _ = heard_tx.send(message.source);
                    }
                }
                Some(j) = junk_rx.recv() => match j {
                    Junk::Publish(bytes) => {
                        let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes);
                    }
                    Junk::Request(bytes) => {
                        swarm.behaviour_mut().raw.send_request(&target, bytes);
                    }
                }
            }
        }
    });
    (heard, junk, peer)
}

enum Junk {
    Publish(Vec<u8>),
    Request(Vec<u8>),
}

/// Waits for a message authored by `author` on `heard`, noting every other
/// author seen on the way.
async fn hear_from(heard: &mut Heard, author: PeerId, seen: &mut Vec<Option<PeerId>>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = tokio::time::timeout(left, heard.recv())
            .await
            .expect("a gossip message from the author within the deadline")
            .expect("the outsider runs");
        seen.push(got);
        if got == Some(author) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_from_a_non_dispatch_peer_is_refused_counted_and_not_forwarded() {
    // a relays gossip (it does not by default: every member is connected
    // to every other), so that what it forwards and what it holds back show.
    let relaying = dispatch_libp2p::Config {
        mesh_peers: 2,
        ..dispatch_libp2p::Config::default()
    };
    let a = NodeBuilder::new(quick("a"))
        .config(relaying)
        .start()
        .await
        .unwrap();
    let b = NodeBuilder::new(quick("b"))
        .seed(a.listen_addrs()[0].clone())
        .start()
        .await
        .unwrap();
    until("a and b to know each other", || {
        a.registry().peers().len() == 1 && b.registry().peers().len() == 1
    })
    .await;
    b.registry()
        .add_service("uploader", "u1", |r: Request| async move { r.payload })
        .await
        .unwrap();

    // The observer hangs off a only: it hears b's messages only as a
    // relays them.
    let (mut observer_heard, _observer, _) = run_outsider(outsider(), &a);
    let (mut attacker_heard, attacker, attacker_id) = run_outsider(outsider(), &a);
    let mut seen = Vec::new();
    hear_from(&mut observer_heard, b.peer_id(), &mut seen).await;
    // The attacker is connected and subscribed once it hears from a.
    hear_from(&mut attacker_heard, a.peer_id(), &mut Vec::new()).await;

    let before = a.registry().stats().node;
    let rejected_before = a.behaviour_stats().gossip_rejected;
    // Junk, another cluster's datagram, and one larger than any datagram.
    attacker
        .send(Junk::Publish(b"not a datagram".to_vec()))
        .unwrap();
    attacker.send(Junk::Publish(foreign_datagram())).unwrap();
    attacker.send(Junk::Publish(vec![0; 100_000])).unwrap();
    // An unknown frame tag, a datagram frame of junk, an oversized frame.
    attacker.send(Junk::Request(vec![9, 9, 9])).unwrap();
    attacker
        .send(Junk::Request([&[0u8][..], b"junk"].concat()))
        .unwrap();
    attacker.send(Junk::Request(vec![0; 200_000])).unwrap();

    until("a to refuse the junk gossip and requests", || {
        let now = a.registry().stats().node;
        let s = a.behaviour_stats();
        now.dropped(DropReason::Malformed) >= before.dropped(DropReason::Malformed) + 2
            && now.dropped(DropReason::ForeignCluster) > before.dropped(DropReason::ForeignCluster)
            && s.gossip_rejected >= rejected_before + 3
            && s.gossip_oversized == 1
            && s.requests_refused == 2
    })
    .await;
    // Two more of b's messages reach the observer through a after the
    // junk was refused; none of the attacker's ever did.
    hear_from(&mut observer_heard, b.peer_id(), &mut seen).await;
    hear_from(&mut observer_heard, b.peer_id(), &mut seen).await;
    assert!(
        !seen.contains(&Some(attacker_id)),
        "a forwarded the attacker's junk: {seen:?}"
    );
    assert!(
        a.registry().peers().iter().all(|p| p.addr != attacker_id),
        "the attacker is nobody's peer"
    );

    // Both nodes still serve: a routes to b's instance and calls it.
    let owner = a
        .registry()
        .find_service("uploader", "k", Routing::OnlineOnly)
        .unwrap();
    assert_eq!(&*owner.id, "u1");
    let reply = a
        .registry()
        .client()
        .call_raw("uploader", "k", b"still here")
        .await
        .unwrap();
    assert_eq!(reply, b"still here");
    assert_eq!(a.registry().get_services("uploader").len(), 1);
    b.shutdown().await;
    a.shutdown().await;
}
