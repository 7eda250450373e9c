//! Three `dispatch node` processes on loopback: a node killed with SIGKILL
//! leaves the others within the down period; restarted under its name it
//! leaves no zombie entry; a node stopped gracefully, by `dispatch leave` or
//! by SIGTERM as a service manager stops it, leaves at once.

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
    udp: SocketAddr,
    control: SocketAddr,
}

impl NodeProcess {
    fn start(name: &str, seed: Option<SocketAddr>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatch"));
        cmd.args([
            "node",
            "--name",
            name,
            "--bind",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--heartbeat-period", "200ms", "--down-after", "2s"])
        .args(["--service", &format!("uploader:{name}-u")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(seed) = seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        let mut child = cmd.spawn().expect("the dispatch binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the node prints its addresses");
        // "node NAME udp ADDR control ADDR"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() == 6 && words[0] == "node",
            "unexpected first line: {line:?}"
        );
        NodeProcess {
            name: name.into(),
            child,
            udp: words[3].parse().unwrap(),
            control: words[5].parse().unwrap(),
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
async fn killed_restarted_and_stopped_node_processes() {
    let n1 = NodeProcess::start("n1", None);
    let n2 = NodeProcess::start("n2", Some(n1.udp));
    let mut n3 = NodeProcess::start("n3", Some(n1.udp));
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
    n3 = NodeProcess::start("n3", Some(n1.udp));
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
