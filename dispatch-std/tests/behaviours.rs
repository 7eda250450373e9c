//! The Elixir Dispatch library's behaviours, on real UDP sockets on
//! loopback: several nodes in one process, each with its own socket and
//! driver. The behaviours themselves are in `conformance/`, shared with
//! the libp2p transport; what is UDP's own (a TOML file's bind address and
//! seeds) is here.

mod conformance;
mod support;

use dispatch_std::{Registry, Request, Udp};
use support::{cluster, quick, stop, until};

/// Clusters of UDP nodes on loopback.
struct UdpCluster;

impl conformance::Cluster for UdpCluster {
    type T = Udp;
    async fn start(&self, n: usize) -> Vec<Registry<Udp>> {
        cluster(n).await
    }
}

conformance::behaviours!(UdpCluster);

fn whoami(node: &str, id: &str) -> impl dispatch_std::Handler {
    let me = format!("{node}/{id}");
    move |_: Request| {
        let me = me.clone();
        async move { me.into_bytes() }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_from_a_toml_file_joins_with_its_settings() {
    let a = quick("a").start().await.unwrap();
    a.add_service("uploader", "u1", whoami("a", "u1"))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("dispatch-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"from-file\"\nbind = \"127.0.0.1:0\"\nseeds = [\"{}\"]\nheartbeat_period = \"100ms\"\ndown_after = \"2s\"\n",
            a.local_addr()
        ),
    )
    .unwrap();
    let b = dispatch_std::Builder::from_toml_file(&path)
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(&*b.id().name, "from-file");
    until("b to see a's service", || {
        b.get_services("uploader").len() == 1
    })
    .await;
    until("a to know b by its name", || {
        a.peers().iter().any(|p| &*p.id.name == "from-file")
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    stop(&[a, b]).await;
}
