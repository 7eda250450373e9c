//! Three `dispatch node` processes on loopback, over UDP and over libp2p
//! (`--transport libp2p`): a node killed with SIGKILL
//! leaves the others within the down period; restarted under its name it
//! leaves no zombie entry; a node stopped gracefully, by `dispatch leave` or
//! by SIGTERM as a service manager stops it, leaves at once. Keyed nodes
//! rotate their key files with SIGHUP while running, and then refuse a node
//! that kept only the retired key.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dispatch_std::control::{self, Command as Ctl};
use serde_json::Value;

const DOWN_AFTER: Duration = Duration::from_secs(2);
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `dispatch node` process, killed when dropped.
struct NodeProcess {
    name: String,
    child: Child,
    /// Where others seed from: a UDP address, or a libp2p multiaddr.
    addr: String,
    control: SocketAddr,
}

/// The transports the program runs nodes over.
#[derive(Debug, Clone, Copy)]
enum Over {
    Udp,
    Libp2p,
}

impl NodeProcess {
    fn start_with(name: &str, seed: Option<&str>, extra: &[&str]) -> Self {
        Self::start_over(Over::Udp, name, seed, extra)
    }

    fn start_over(over: Over, name: &str, seed: Option<&str>, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatch"));
        cmd.args(["node", "--name", name, "--control", "127.0.0.1:0"]);
        match over {
            Over::Udp => cmd.args(["--bind", "127.0.0.1:0"]),
            Over::Libp2p => cmd.args(["--transport", "libp2p", "--listen", "/ip4/127.0.0.1/tcp/0"]),
        };
        cmd.args(["--heartbeat-period", "200ms", "--down-after", "2s"])
            .args(["--service", &format!("uploader:{name}-u")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(seed) = seed {
            cmd.args(["--seed", seed]);
        }
        let mut child = cmd.spawn().expect("the dispatch binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the node prints its addresses");
        // "node NAME udp ADDR control ADDR", or "node NAME libp2p
        // MULTIADDR... control ADDR"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() >= 6 && words[0] == "node" && words[words.len() - 2] == "control",
            "unexpected first line: {line:?}"
        );
        NodeProcess {
            name: name.into(),
            child,
            addr: words[3].to_string(),
            control: words[words.len() - 1].parse().unwrap(),
        }
    }

    /// The instances of `uploader` this node lists, as (id, incarnation).
    async fn uploaders(&self) -> Vec<(String, u64)> {
        let answer = control::request(
            self.control,
            &Ctl::Services {
                ty: "uploader".into(),
            },
        )
        .await
        .expect("the control endpoint answers");
        let Value::Array(list) = answer else {
            panic!("not a list: {answer}")
        };
        list.iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["incarnation"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

impl NodeProcess {
    async fn stats(&self) -> Value {
        control::request(self.control, &Ctl::Stats)
            .await
            .expect("the control endpoint answers")
    }

    /// Sends SIGHUP: the node reads its key file again.
    fn hang_up(&self) {
        let sent = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -HUP failed");
    }
}

/// Runs `dispatch` with `args` and returns its stdout; fails on an error.
fn dispatch(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dispatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until `done` holds for the stats of every node in `nodes`.
async fn until_stats(nodes: &[&NodeProcess], what: &str, done: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        let mut all = true;
        for n in nodes {
            all &= done(&n.stats().await);
        }
        if all {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every node in `nodes` lists exactly the ids `want`; returns
/// how long it took.
async fn until_listed(nodes: &[&NodeProcess], want: &[&str]) -> Duration {
    let started = Instant::now();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    loop {
        let mut all = true;
        for n in nodes {
            let mut ids: Vec<String> = n.uploaders().await.into_iter().map(|(id, _)| id).collect();
            ids.sort();
            all &= ids == want;
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for every node to list {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_restarted_and_stopped_node_processes_over_udp() {
    killed_restarted_and_stopped(Over::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_restarted_and_stopped_node_processes_over_libp2p() {
    killed_restarted_and_stopped(Over::Libp2p).await;
}

async fn killed_restarted_and_stopped(over: Over) {
    let n1 = NodeProcess::start_over(over, "n1", None, &[]);
    let n2 = NodeProcess::start_over(over, "n2", Some(&n1.addr), &[]);
    let mut n3 = NodeProcess::start_over(over, "n3", Some(&n1.addr), &[]);
    until_listed(&[&n1, &n2, &n3], &["n1-u", "n2-u", "n3-u"]).await;
    let old = n3
        .uploaders()
        .await
        .into_iter()
        .find(|(id, _)| id == "n3-u")
        .unwrap()
        .1;

    // The query commands of the program read the same endpoint.
    let out = Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args([
            "find",
            "uploader",
            "file.png",
            "--control",
            &n2.control.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("uploader  n"), "{text}");

    // kill -9: its services leave the others within the down period (plus
    // a heartbeat and scheduling slack on a busy machine).
    n3.child.kill().unwrap();
    n3.child.wait().unwrap();
    let took = until_listed(&[&n1, &n2], &["n1-u", "n2-u"]).await;
    assert!(took < DOWN_AFTER + Duration::from_secs(3), "took {took:?}");

    // Restarted under its name: listed once, as the new incarnation.
    n3 = NodeProcess::start_over(over, "n3", Some(&n1.addr), &[]);
    until_listed(&[&n1, &n2, &n3], &["n1-u", "n2-u", "n3-u"]).await;
    for n in [&n1, &n2, &n3] {
        let entries: Vec<(String, u64)> = n
            .uploaders()
            .await
            .into_iter()
            .filter(|(id, _)| id == "n3-u")
            .collect();
        assert_eq!(entries.len(), 1, "{} lists {entries:?}", n.name);
        assert!(
            entries[0].1 > old,
            "{} still lists the old incarnation",
            n.name
        );
    }

    // Stopped gracefully: its services leave at once, far under the down
    // period, and the process exits cleanly.
    let started = Instant::now();
    let answer = control::request(n2.control, &Ctl::Leave).await.unwrap();
    assert_eq!(answer, "left");
    let took = until_listed(&[&n1, &n3], &["n1-u", "n3-u"]).await;
    let took = took.max(started.elapsed());
    assert!(took < DOWN_AFTER / 2, "a graceful stop took {took:?}");
    let mut n2 = n2;
    let status = n2.child.wait().unwrap();
    assert!(status.success(), "n2 exited with {status}");

    // SIGTERM, as a service manager stops a node: the same graceful leave.
    let started = Instant::now();
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", n3.child.id())])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM failed");
    let took = until_listed(&[&n1], &["n1-u"]).await;
    let took = took.max(started.elapsed());
    assert!(took < DOWN_AFTER / 2, "a stop by SIGTERM took {took:?}");
    let status = n3.child.wait().unwrap();
    assert!(status.success(), "n3 exited with {status} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_rotate_on_sighup_with_the_nodes_running() {
    let dir = std::env::temp_dir().join(format!("dispatch-rotation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let (f1, f2, old) = (path("k1.key"), path("k2.key"), path("old.key"));
    dispatch(&["keygen", "--out", &f1]);
    std::fs::copy(&f1, &f2).unwrap();
    std::fs::copy(&f1, &old).unwrap();
    let k1 = NodeProcess::start_with("k1", None, &["--key-file", &f1]);
    let k2 = NodeProcess::start_with("k2", Some(&k1.addr), &["--key-file", &f2]);
    until_listed(&[&k1, &k2], &["k1-u", "k2-u"]).await;
    let keys = |primary: u64, accepted: &'static [u64]| {
        move |s: &Value| {
            s["keys"]["primary"] == primary
                && s["keys"]["accepted"].as_array().is_some_and(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .eq(accepted.iter().copied())
                })
        }
    };
    until_stats(&[&k1, &k2], "both nodes to seal with key 1", keys(1, &[1])).await;

    // 1: a new key, accepted everywhere, not yet sealing.
    dispatch(&["keygen", "--add", &f1]);
    std::fs::copy(&f1, &f2).unwrap();
    k1.hang_up();
    k2.hang_up();
    until_stats(&[&k1, &k2], "key 2 to be accepted", keys(1, &[1, 2])).await;
    // 2: the new key seals.
    for f in [&f1, &f2] {
        let text = std::fs::read_to_string(f).unwrap();
        std::fs::write(f, text.replace("primary = 1", "primary = 2")).unwrap();
    }
    k1.hang_up();
    k2.hang_up();
    until_stats(&[&k1, &k2], "key 2 to seal", keys(2, &[2, 1])).await;
    // 3: the old key goes.
    for f in [&f1, &f2] {
        let text = std::fs::read_to_string(f).unwrap();
        let kept: Vec<&str> = text
            .split("\n[[keys]]\n")
            .filter(|block| !block.starts_with("id = 1\n"))
            .collect();
        std::fs::write(f, kept.join("\n[[keys]]\n")).unwrap();
    }
    k1.hang_up();
    k2.hang_up();
    until_stats(&[&k1, &k2], "key 1 to be retired", keys(2, &[2])).await;

    // The cluster kept serving throughout: a call crosses it, and nobody
    // went down.
    let reply = dispatch(&[
        "call",
        "uploader",
        "file.png",
        "hi",
        "--control",
        &k2.control.to_string(),
    ]);
    assert!(reply.contains("got hi"), "{reply}");
    for n in [&k1, &k2] {
        let peers = control::request(n.control, &Ctl::Peers).await.unwrap();
        let peers = peers.as_array().unwrap().clone();
        assert_eq!(peers.len(), 1, "{} lists {peers:?}", n.name);
        assert_eq!(peers[0]["up"], true, "{} saw its peer go down", n.name);
    }

    // A node that kept only the retired key is refused.
    let k3 = NodeProcess::start_with("k3", Some(&k1.addr), &["--key-file", &old]);
    until_stats(&[&k1], "k1 to refuse the retired key", |s| {
        s["dropped_by_reason"]["UnknownKey"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    until_listed(&[&k1, &k2], &["k1-u", "k2-u"]).await;
    assert_eq!(
        k3.uploaders().await.len(),
        1,
        "k3 sees only its own instance"
    );
    drop(k3);
    let _ = std::fs::remove_dir_all(&dir);
}
