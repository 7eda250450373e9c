//! A device on a tap device joins a cluster of `dispatch-std` servers, in a
//! network namespace this test makes (`ip netns`, so it runs as root):
//! its `sensor` instance is listed on the servers with its node and state,
//! they route keys to it and call it, it calls their `uploader`; killed, it
//! leaves them within the down period; restarted, it is back with no zombie.
//!
//! Without the privileges to make a namespace the test says so and passes,
//! unless `DISPATCH_REQUIRE_NETNS=1` (CI sets it), when it fails.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_std::dispatch_core::keyring::{Key, Keyring};
use dispatch_std::dispatch_core::node::{Request, Service};
use dispatch_std::dispatch_core::presence::State;
use dispatch_std::{Registry, Routing, ServiceEvent};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Mutex};

/// Set in the copy of this test that runs inside the namespace.
const INSIDE: &str = "DISPATCH_TEST_NETNS";
const TEST: &str = "a_device_on_a_tap_joins_dispatch_std_servers_and_restarts_without_zombies";
const SERVER_IP: &str = "192.168.69.100";
const DEVICE_CIDR: &str = "192.168.69.1/24";
const HEARTBEAT: Duration = Duration::from_millis(200);
const DOWN_AFTER: Duration = Duration::from_secs(2);

/// A network namespace with a tap device `tap0` at `SERVER_IP`/24, removed
/// when dropped.
struct Namespace(String);

impl Namespace {
    fn create() -> Result<Namespace, String> {
        let name = format!("dispatch-tap-{}", std::process::id());
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

#[test]
fn a_device_on_a_tap_joins_dispatch_std_servers_and_restarts_without_zombies() {
    if std::env::var_os(INSIDE).is_some() {
        return inside();
    }
    let ns = match Namespace::create() {
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
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, &ns.0)
        .status()
        .expect("ip netns exec");
    assert!(
        status.success(),
        "the test inside the namespace failed: {status}"
    );
}

/// A running `dispatch-device` and the lines it prints.
struct Device {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// The highest heap peak it printed.
    heap_peak: Arc<std::sync::atomic::AtomicU64>,
}

impl Device {
    fn start(seed: &str, key: &str) -> Device {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dispatch-device"))
            .args(["--tap", "tap0", "--address", DEVICE_CIDR, "--port", "7000"])
            .args([
                "--seed", seed, "--name", "board-1", "--sensor", "s1", "--key", key,
            ])
            .args(["--heartbeat-ms", &HEARTBEAT.as_millis().to_string()])
            .args(["--down-ms", &DOWN_AFTER.as_millis().to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("dispatch-device starts");
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        let heap_peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let peak = Arc::clone(&heap_peak);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("device: {line}");
                if let Some(n) = line
                    .strip_prefix("heap peak ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                {
                    peak.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = tx.send(line);
            }
        });
        Device {
            child,
            lines,
            heap_peak,
        }
    }

    /// Waits for a line starting with `prefix`.
    async fn expect_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the device exited before printing {prefix:?}"),
                Err(_) => panic!("the device printed no {prefix:?} within {within:?}"),
            }
        }
    }
}

/// Waits until `f` holds, or fails naming `what`.
async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn sensors(r: &Registry) -> Vec<Service> {
    r.get_services("sensor")
}

async fn server(name: &str, seed: Option<String>, key: [u8; 32]) -> Registry {
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

fn inside() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let a = server("server-a", None, key).await;
        let a_addr = a.local_addr().to_string();
        let b = server("server-b", Some(a_addr.clone()), key).await;
        let uploads = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
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
        let mut events = a.subscribe("sensor");

        // The device joins: both servers list its sensor, online, on its node.
        let mut device = Device::start(&a_addr, &hex);
        device
            .expect_line("registered sensor/s1 on board-1", Duration::from_secs(10))
            .await;
        let listed = |r: &Registry| {
            let s = sensors(r);
            s.len() == 1 && &*s[0].node.name == "board-1" && s[0].state == State::Online
        };
        until(
            "both servers list sensor/s1 on board-1",
            Duration::from_secs(20),
            || listed(&a) && listed(&b),
        )
        .await;
        let first_incarnation = sensors(&a)[0].node.incarnation;

        // The servers route keys to it and call it.
        let owner = b
            .find_service("sensor", "file.png", Routing::OnlineOnly)
            .expect("an owner");
        assert_eq!((&*owner.id, &*owner.node.name), ("s1", "board-1"));
        let reply = b
            .client()
            .call_raw("sensor", "file.png", b"server-b")
            .await
            .expect("the device answers");
        assert_eq!(reply, b"s1 read for server-b");

        // The device sees the uploader and calls it.
        let called = device
            .expect_line("called uploader/u1", Duration::from_secs(20))
            .await;
        assert_eq!(
            called,
            "called uploader/u1 on server-a: stored file.png from board-1"
        );
        assert_eq!(
            uploads.lock().await.as_slice(),
            [b"file.png from board-1".to_vec()]
        );

        // What the footprint report reads.
        let peak = device.heap_peak.load(std::sync::atomic::Ordering::Relaxed);
        assert!(peak > 0, "the device printed its heap peak");
        println!("device heap peak: {peak} B (joined 2 servers, heard their uploader and its own sensor, answered a call, made one)");

        // Killed, it leaves both servers within the down period.
        device.child.kill().await.expect("the device is killed");
        let gone = until("sensor/s1 leaves both servers", DOWN_AFTER * 3, || {
            sensors(&a).is_empty() && sensors(&b).is_empty()
        })
        .await;
        eprintln!("the killed device's sensor left both servers {gone:?} after the kill");
        assert!(
            gone <= DOWN_AFTER + HEARTBEAT * 3,
            "left {gone:?} after the kill"
        );

        // Restarted, it is back once, in a newer incarnation.
        let mut device = Device::start(&a_addr, &hex);
        device
            .expect_line("registered sensor/s1 on board-1", Duration::from_secs(10))
            .await;
        until(
            "both servers list the restarted sensor",
            Duration::from_secs(20),
            || listed(&a) && listed(&b),
        )
        .await;
        tokio::time::sleep(HEARTBEAT * 5).await;
        for r in [&a, &b] {
            let s = sensors(r);
            assert_eq!(s.len(), 1, "one sensor, no zombie: {s:?}");
            assert!(s[0].node.incarnation > first_incarnation);
        }
        let mut kinds = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), events.next()).await
        {
            kinds.push(match event {
                ServiceEvent::Joined(s) => {
                    format!("joined {}", s.node.incarnation == first_incarnation)
                }
                ServiceEvent::Left(s) => {
                    format!("left {}", s.node.incarnation == first_incarnation)
                }
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            kinds,
            ["joined true", "left true", "joined false"],
            "one join per add, one leave per remove"
        );
        drop(device);
        a.shutdown().await;
        b.shutdown().await;
    });
}
