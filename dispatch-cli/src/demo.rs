//! `dispatch demo`: four nodes on loopback in one process. Uploader
//! instances register on three of them; every node routes file names to
//! the same owner; calls and casts reach it; one node stops, its keys move
//! to the others and the events arrive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_std::{handler, Builder, Error, Registry, Routing, ServiceEvent, Subscription};
use serde::{Deserialize, Serialize};

type AnyError = Box<dyn std::error::Error>;

const FILES: [&str; 8] = [
    "cat.png",
    "report.pdf",
    "song.mp3",
    "notes.txt",
    "video.mp4",
    "slides.key",
    "photo.jpg",
    "data.csv",
];

/// What the uploaders are sent.
#[derive(Debug, Serialize, Deserialize)]
struct Upload {
    name: String,
    bytes: Vec<u8>,
}

pub(crate) async fn run() -> Result<(), AnyError> {
    let started = Instant::now();
    println!("Dispatch demo: 4 nodes on loopback, in this process.\n");
    let mut nodes: Vec<Registry> = Vec::new();
    for i in 1..=4 {
        let mut b = quick(Builder::new().name(format!("n{i}")));
        if let Some(first) = nodes.first() {
            b = b.seed(first.local_addr().to_string());
        }
        let node = b.start().await?;
        println!("  started {} on udp {}", node.id().name, node.local_addr());
        nodes.push(node);
    }
    until("every node to know the 3 others", || {
        nodes.iter().all(|n| n.peers().len() == 3)
    })
    .await?;
    println!("  every node knows the 3 others\n");

    let watcher = &nodes[3];
    let mut events = watcher.subscribe("uploader");
    println!("n4 subscribes to `uploader`; uploader instances register on n1, n2, n3:");
    let casts = Arc::new(AtomicUsize::new(0));
    for (i, node) in nodes.iter().take(3).enumerate() {
        let id = format!("up-{}", i + 1);
        let (me, casts) = (format!("{id}@{}", node.id().name), Arc::clone(&casts));
        let store = move |upload: Upload| {
            casts.fetch_add(1, Ordering::Relaxed);
            let me = me.clone();
            async move { format!("{me} stored {} ({} bytes)", upload.name, upload.bytes.len()) }
        };
        node.add_service("uploader", &id, handler::typed(store))
            .await?;
    }
    for _ in 0..3 {
        print_event("n4 heard", next_event(&mut events).await?);
    }
    until("every node to see 3 uploaders", || {
        nodes.iter().all(|n| n.get_services("uploader").len() == 3)
    })
    .await?;

    // Instances registered at the same moment on different nodes may claim
    // the same ring slot; the losers move to free slots a few ms later.
    until("every node to route to all 3 uploaders", || {
        nodes.iter().all(|n| {
            n.find_multi_service(3, "uploader", "any key", Routing::OnlineOnly)
                .is_ok_and(|found| found.len() == 3)
        })
    })
    .await?;
    println!("\nWho owns each file, asked of every node:");
    let before = owners_table(&nodes)?;

    println!("\nCalls from n4 (each goes to the owner of its key):");
    for file in ["cat.png", "report.pdf", "song.mp3"] {
        let t = Instant::now();
        let reply: String = watcher
            .call(
                "uploader",
                file,
                &Upload {
                    name: file.into(),
                    bytes: vec![0; 64],
                },
            )
            .await?;
        println!(
            "  call {file:<11} -> {reply}  ({} us)",
            t.elapsed().as_micros()
        );
    }
    let handled = casts.load(Ordering::Relaxed);
    watcher
        .cast(
            "uploader",
            "notes.txt",
            &Upload {
                name: "notes.txt".into(),
                bytes: vec![1; 16],
            },
        )
        .await?;
    until("the cast to arrive", || {
        casts.load(Ordering::Relaxed) > handled
    })
    .await?;
    println!(
        "  cast notes.txt    -> delivered to {}",
        owner_name(watcher, "notes.txt")?
    );
    let replies: Vec<(_, Result<String, Error>)> = watcher
        .multi_call(
            2,
            "uploader",
            "video.mp4",
            &Upload {
                name: "video.mp4".into(),
                bytes: vec![2; 8],
            },
        )
        .await?;
    for (service, reply) in replies {
        println!(
            "  multi_call(2) video.mp4 -> {}@{}: {}",
            service.id, service.node.name, reply?
        );
    }

    let first = &nodes[0];
    first.disable_service("uploader", "up-1").await?;
    until("every node to see up-1 offline", || {
        nodes
            .iter()
            .all(|n| n.get_online_services("uploader").len() == 2)
    })
    .await?;
    let key = FILES
        .iter()
        .find(|f| before.get(**f).is_some_and(|o| o.starts_with("up-1")))
        .copied()
        .unwrap_or("cat.png");
    println!(
        "\nn1 disables up-1: {key} now routes to {}, or with offline allowed to {}",
        owner_name(watcher, key)?,
        name_of(&watcher.find_service("uploader", key, Routing::AllowOffline)?),
    );
    first.enable_service("uploader", "up-1").await?;
    until("every node to see up-1 online", || {
        nodes
            .iter()
            .all(|n| n.get_online_services("uploader").len() == 3)
    })
    .await?;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {}
    println!("n1 enables up-1 again.\n");

    println!("Stopping n2 gracefully:");
    let stopped = nodes.remove(1);
    let t = Instant::now();
    stopped.shutdown().await;
    print_event("n4 heard", next_event(&mut events).await?);
    until("every node to see 2 uploaders", || {
        nodes.iter().all(|n| n.get_services("uploader").len() == 2)
    })
    .await?;
    println!(
        "  every remaining node dropped up-2 within {} ms\n",
        t.elapsed().as_millis()
    );

    println!("Who owns each file now:");
    let after = owners_table(&nodes)?;
    let moved: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| before[*f] != after[*f])
        .collect();
    let all_from_up2 = moved.iter().all(|f| before[*f].starts_with("up-2"));
    println!(
        "  {} of {} files moved: {}; {}",
        moved.len(),
        FILES.len(),
        if moved.is_empty() {
            "none".to_string()
        } else {
            moved.join(", ")
        },
        if all_from_up2 {
            "each was up-2's, no other key moved"
        } else {
            "UNEXPECTED: other keys moved too"
        },
    );
    if let Some(file) = moved.first() {
        let reply: String = nodes[2]
            .call(
                "uploader",
                *file,
                &Upload {
                    name: (*file).into(),
                    bytes: vec![3; 4],
                },
            )
            .await?;
        println!("  call {file} from n4 -> {reply}");
    }

    for node in &nodes {
        node.shutdown().await;
    }
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    if !all_from_up2 {
        return Err("keys of instances that did not leave moved".into());
    }
    Ok(())
}

/// Short periods, so that the demo runs in a few seconds.
fn quick(b: Builder) -> Builder {
    b.bind("127.0.0.1:0")
        .heartbeat_period(Duration::from_millis(200))
        .down_after(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
}

/// Prints the owner of every file as each node sees it; returns it by file.
fn owners_table(nodes: &[Registry]) -> Result<BTreeMap<&'static str, String>, AnyError> {
    print!("  {:<12}", "file");
    for n in nodes {
        print!("{:<10}", n.id().name);
    }
    println!();
    let mut owners = BTreeMap::new();
    for file in FILES {
        print!("  {file:<12}");
        let mut seen = Vec::new();
        for n in nodes {
            let owner = owner_name(n, file)?;
            print!("{owner:<10}");
            seen.push(owner);
        }
        let agree = seen.windows(2).all(|w| w[0] == w[1]);
        println!(
            "{}",
            if agree {
                "same on every node"
            } else {
                "NODES DISAGREE"
            }
        );
        if !agree {
            return Err(format!("nodes disagree on the owner of {file}").into());
        }
        owners.insert(file, seen.swap_remove(0));
    }
    Ok(owners)
}

fn owner_name(node: &Registry, key: &str) -> Result<String, Error> {
    Ok(name_of(&node.find_service(
        "uploader",
        key,
        Routing::OnlineOnly,
    )?))
}

fn name_of(s: &dispatch_std::Service) -> String {
    format!("{}@{}", s.id, s.node.name)
}

fn print_event(who: &str, event: ServiceEvent) {
    match event {
        ServiceEvent::Joined(s) => println!("  {who}: + {} joined ({:?})", name_of(&s), s.state),
        ServiceEvent::Left(s) => println!("  {who}: - {} left", name_of(&s)),
        other => println!("  {who}: {other:?}"),
    }
}

async fn next_event(events: &mut Subscription) -> Result<ServiceEvent, AnyError> {
    match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err("the subscription ended".into()),
        Err(_) => Err("no event within 5 s".into()),
    }
}

/// Waits until `done` holds, for at most 10 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), AnyError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
