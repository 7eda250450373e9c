//! Dispatch inside a Swarm of your own: one user-defined behaviour holds
//! identify, ping and Dispatch side by side, and its events are mapped into
//! the application's own enum.
//!
//! Two nodes on loopback: `a` runs an `uploader` instance, `b` joins
//! through `a`, identifies it (and sees Dispatch's protocols among its
//! own), pings it, and calls the uploader that owns `file.png`.
//!
//! ```text
//! cargo run -p dispatch-libp2p --example composed
//! ```

use std::error::Error;
use std::time::Duration;

use dispatch_libp2p::{Behaviour as Dispatch, Config, Libp2p};
use dispatch_std::{Builder, Registry, Request, Routing};
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use tokio::sync::mpsc;

/// The application's behaviour: its own protocols and Dispatch.
#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "AppEvent")]
pub(crate) struct App {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    dispatch: Dispatch,
}

/// Every protocol's events, in the application's own enum.
#[derive(Debug)]
pub(crate) enum AppEvent {
    Identify(Box<identify::Event>),
    Ping(ping::Event),
    Dispatch(dispatch_libp2p::Event),
}

impl From<identify::Event> for AppEvent {
    fn from(e: identify::Event) -> Self {
        AppEvent::Identify(Box::new(e))
    }
}

impl From<ping::Event> for AppEvent {
    fn from(e: ping::Event) -> Self {
        AppEvent::Ping(e)
    }
}

impl From<dispatch_libp2p::Event> for AppEvent {
    fn from(e: dispatch_libp2p::Event) -> Self {
        AppEvent::Dispatch(e)
    }
}

/// What `b` saw of `a`.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The protocols identify reported for `a`.
    pub(crate) protocols: Vec<String>,
    /// A ping round trip to `a`.
    pub(crate) rtt: Duration,
    /// Whether Dispatch reported `a` as a cluster member.
    pub(crate) member: bool,
    /// `a`'s uploader's answer to `b`'s call.
    pub(crate) reply: String,
}

/// Builds the Swarm, listens on loopback, and starts a registry over it.
async fn start(
    name: &str,
    seed: Option<&Multiaddr>,
) -> Result<(Swarm<App>, Registry<Libp2p>, Multiaddr), Box<dyn Error>> {
    let mut transport = None;
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let (dispatch, t) = Dispatch::new(key, Config::default())?;
            transport = Some(t);
            Ok(App {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/app/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_millis(200)),
                ),
                dispatch,
            })
        })?
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let peer = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address
                .with_p2p(peer)
                .map_err(|_| "a listen address names no peer")?;
        }
    };
    let transport = transport.ok_or("with_behaviour did not run")?;
    let seeds = transport.seeds(seed)?;
    let registry = Builder::new().name(name).start_with(transport, seeds)?;
    Ok((swarm, registry, addr))
}

/// Polls `swarm` in a task, passing its behaviour's events to the returned
/// channel.
fn drive(mut swarm: Swarm<App>) -> mpsc::UnboundedReceiver<(Option<PeerId>, AppEvent)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(e) = swarm.select_next_some().await {
                let peer = match &e {
                    AppEvent::Identify(i) => match &**i {
                        identify::Event::Received { peer_id, .. } => Some(*peer_id),
                        _ => None,
                    },
                    AppEvent::Ping(p) => Some(p.peer),
                    AppEvent::Dispatch(dispatch_libp2p::Event::Member(p)) => Some(*p),
                    AppEvent::Dispatch(_) => None,
                };
                if tx.send((peer, e)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Runs the two nodes and returns what `b` saw.
pub(crate) async fn run() -> Result<Outcome, Box<dyn Error>> {
    let (swarm_a, a, addr_a) = start("a", None).await?;
    let peer_a = *swarm_a.local_peer_id();
    let _events_a = drive(swarm_a);
    a.add_service("uploader", "u1", |r: Request| async move {
        [b"a/u1 stored ".as_slice(), &r.payload].concat()
    })
    .await?;

    let (swarm_b, b, _) = start("b", Some(&addr_a)).await?;
    let mut events = drive(swarm_b);
    let (mut protocols, mut rtt, mut member) = (None, None, false);
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while protocols.is_none() || rtt.is_none() || !member {
        let (peer, event) = tokio::select! {
            e = events.recv() => e.ok_or("b's swarm stopped")?,
            () = &mut deadline => return Err("b did not identify, ping and join a within 20 s".into()),
        };
        if peer != Some(peer_a) {
            continue;
        }
        match event {
            AppEvent::Identify(i) => {
                if let identify::Event::Received { info, .. } = *i {
                    protocols = Some(info.protocols.iter().map(|p| p.to_string()).collect());
                }
            }
            AppEvent::Ping(ping::Event { result: Ok(d), .. }) => rtt = Some(d),
            AppEvent::Dispatch(dispatch_libp2p::Event::Member(_)) => member = true,
            _ => {}
        }
    }
    while b
        .find_service("uploader", "file.png", Routing::OnlineOnly)
        .is_err()
    {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
            () = &mut deadline => return Err("b did not hear of a's uploader within 20 s".into()),
        }
    }
    let reply = b
        .client()
        .call_raw("uploader", "file.png", b"file.png")
        .await?;
    b.shutdown().await;
    a.shutdown().await;
    Ok(Outcome {
        protocols: protocols.unwrap_or_default(),
        rtt: rtt.unwrap_or_default(),
        member,
        reply: String::from_utf8_lossy(&reply).into_owned(),
    })
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let outcome = run().await?;
    println!("b identified a, speaking: {}", outcome.protocols.join(" "));
    println!("b pinged a: {:?}", outcome.rtt);
    println!("dispatch: a is a cluster member: {}", outcome.member);
    println!("b called a's uploader: {}", outcome.reply);
    Ok(())
}
