//! What the tests that put a device on a tap device share: the network
//! namespace, re-running a test inside it, a child process and its lines,
//! waiting on conditions with deadlines, and `dispatch-std` servers.
#![allow(dead_code)] // Each test uses its own part.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_std::dispatch_core::keyring::{Key, Keyring};
use dispatch_std::dispatch_core::node::{Request, Service};
use dispatch_std::Registry;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Set in the copy of a test that runs inside the namespace.
pub const INSIDE: &str = "DISPATCH_TEST_NETNS";
/// The host's end of the tap device, where the servers bind.
pub const SERVER_IP: &str = "192.168.69.100";
/// The device's address.
pub const DEVICE_CIDR: &str = "192.168.69.1/24";
pub const HEARTBEAT: Duration = Duration::from_millis(200);
pub const DOWN_AFTER: Duration = Duration::from_secs(2);

/// A network namespace with a tap device `tap0` at `SERVER_IP`/24, removed
/// when dropped.
pub struct Namespace(pub String);

impl Namespace {
    pub fn create(tag: &str) -> Result<Namespace, String> {
        let name = format!("dispatch-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Namespace(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns.0, "tuntap", "add", "name", "tap0", "mode", "tap"])?;
        ip(&[
            "-n",
            &ns.0,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            "tap0",
        ])?;
        ip(&["-n", &ns.0, "link", "set", "tap0", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Runs `body` in a fresh namespace: this test binary runs again inside it,
/// `test` alone, and there `body` runs. Without the privileges to make a
/// namespace the test says so and passes, unless `DISPATCH_REQUIRE_NETNS=1`
/// (CI sets it), when it fails.
pub fn in_namespace(tag: &str, test: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        return body();
    }
    let ns = match Namespace::create(tag) {
        Ok(ns) => ns,
        Err(e) if std::env::var("DISPATCH_REQUIRE_NETNS").as_deref() != Ok("1") => {
            eprintln!("skipped: cannot make a network namespace ({e}); run as root, or set DISPATCH_REQUIRE_NETNS=1 to fail instead");
            return;
        }
        Err(e) => panic!("cannot make a network namespace: {e}"),
    };
    let exe = std::env::current_exe().expect("the test binary");
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, &ns.0)
        .status()
        .expect("ip netns exec");
    assert!(
        status.success(),
        "the test inside the namespace failed: {status}"
    );
}

/// A running child and the lines it prints on standard output, each also
/// echoed to the test's stderr with `tag` and kept in `log`.
pub struct Process {
    pub child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    pub log: Arc<Mutex<Vec<String>>>,
    tag: &'static str,
}

impl Process {
    pub fn spawn(mut command: tokio::process::Command, tag: &'static str) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{tag} does not start: {e}"));
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("{tag}: {line}");
                kept.lock().expect("the log").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Process {
            child,
            lines,
            log,
            tag,
        }
    }

    /// Waits for a line starting with `prefix`.
    pub async fn expect_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{} exited before printing {prefix:?}", self.tag),
                Err(_) => panic!("{} printed no {prefix:?} within {within:?}", self.tag),
            }
        }
    }

    /// Every line it printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().expect("the log").clone()
    }
}

/// Waits until `f` holds, or fails naming `what`; returns how long it took.
pub async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

pub fn sensors(r: &Registry) -> Vec<Service> {
    r.get_services("sensor")
}

/// A sealed `dispatch-std` server at `SERVER_IP`, with the tests' periods.
pub async fn server(name: &str, seed: Option<String>, key: [u8; 32]) -> Registry {
    let mut b = Registry::builder()
        .bind(format!("{SERVER_IP}:0"))
        .name(name)
        .heartbeat_period(HEARTBEAT)
        .down_after(DOWN_AFTER)
        .keyring(Keyring::new(Key::new(1, key).expect("a key")));
    if let Some(seed) = seed {
        b = b.seed(seed);
    }
    b.start().await.expect("a server starts")
}

/// The tests' cluster key, and its hex form for the device.
pub fn cluster_key() -> ([u8; 32], String) {
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
    let hex = key.iter().map(|b| format!("{b:02x}")).collect();
    (key, hex)
}

/// Two sealed servers, `b` joined through `a`, and `uploader/u1` on `a`,
/// which answers `stored <payload>` and keeps every payload in `uploads`.
pub struct Cluster {
    pub a: Registry,
    pub b: Registry,
    /// Where `a` listens, the device's seed.
    pub a_addr: String,
    pub uploads: Arc<tokio::sync::Mutex<Vec<Vec<u8>>>>,
}

pub async fn cluster_with_uploader(key: [u8; 32]) -> Cluster {
    let a = server("server-a", None, key).await;
    let a_addr = a.local_addr().to_string();
    let b = server("server-b", Some(a_addr.clone()), key).await;
    let uploads = Arc::new(tokio::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let seen = Arc::clone(&uploads);
    a.add_service("uploader", "u1", move |req: Request| {
        let seen = Arc::clone(&seen);
        async move {
            let mut reply = b"stored ".to_vec();
            reply.extend_from_slice(&req.payload);
            seen.lock().await.push(req.payload);
            reply
        }
    })
    .await
    .expect("u1 added");
    Cluster {
        a,
        b,
        a_addr,
        uploads,
    }
}
