//! Two nodes on loopback: `a` runs an uploader, `b` finds it and calls it.
//! README.md shows this file; `tests/readme.rs` keeps the two the same.

use std::time::Duration;

use dispatch_std::{handler, Registry, Routing, ServiceEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Registry::builder().name("a").start().await?;
    let b = Registry::builder()
        .name("b")
        .seed(a.local_addr().to_string())
        .start()
        .await?;
    let mut events = b.subscribe("uploader");

    let store = |name: String| async move { format!("stored {name}") };
    a.add_service("uploader", "u1", handler::typed(store))
        .await?;

    // b hears of the new instance, then routes keys to it.
    if let Some(ServiceEvent::Joined(s)) = events.next().await {
        println!("{} joined on {} ({:?})", s.id, s.node.name, s.state);
    }
    let owner = b.find_service("uploader", "file.png", Routing::OnlineOnly)?;
    println!("file.png belongs to {} on {}", owner.id, owner.node.name);

    let reply: String = b
        .client()
        .timeout(Duration::from_secs(1))
        .call("uploader", "file.png", &"file.png".to_string())
        .await?;
    println!("{reply}");

    a.shutdown().await; // b hears u1 leave at once
    b.shutdown().await;
    Ok(())
}
