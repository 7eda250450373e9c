//! The real thumb firmware, on QEMU's emulated mps2-an386 board
//! (`examples/qemu-mps2`), joins a cluster of `dispatch-std` servers over a
//! tap device in a network namespace this test makes: the servers list its
//! `sensor` with its node name, a server's call to it returns its reply,
//! its call to an `uploader` returns, and when QEMU is killed the sensor
//! leaves the servers within the down period. Beside it, the board's
//! UDP-echo firmware answers echoes from the host. Each prints its figures;
//! a step that does not happen within its deadline fails with QEMU's log.
//!
//! Build the firmware first (`cd ../qemu-mps2 && cargo build --release`).
//! Without `qemu-system-arm`, the firmware, or the privileges to make a
//! namespace the tests say so and pass, unless `DISPATCH_REQUIRE_QEMU=1`
//! (CI sets it), when they fail.

mod support;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_std::dispatch_core::presence::State;
use dispatch_std::{Registry, Routing};
use support::*;

const DEVICE_IP: &str = "192.168.69.1";
const DEVICE_PORT: u16 = 7000;

/// The firmware `bin`, built by `examples/qemu-mps2`, if QEMU and it are
/// here; otherwise why not.
fn firmware(bin: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../target/thumbv7em-none-eabihf/release")
        .join(bin);
    if !path.exists() {
        return Err(format!(
            "no firmware at {} (build it: cd dispatch-embassy/examples/qemu-mps2 && cargo build --release)",
            path.display()
        ));
    }
    match std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => Ok(path),
        _ => Err("no qemu-system-arm (apt-get install qemu-system-arm)".into()),
    }
}

/// Runs `body` with the firmware `bin` in a namespace, or skips (see the
/// module documentation).
fn with_firmware(tag: &str, test: &str, bin: &str, body: impl FnOnce(PathBuf)) {
    let path = match firmware(bin) {
        Ok(path) => path,
        Err(e) if std::env::var("DISPATCH_REQUIRE_QEMU").as_deref() != Ok("1") => {
            eprintln!("skipped: {e}; set DISPATCH_REQUIRE_QEMU=1 to fail instead");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    if std::env::var("DISPATCH_REQUIRE_QEMU").as_deref() == Ok("1") {
        std::env::set_var("DISPATCH_REQUIRE_NETNS", "1");
    }
    in_namespace(tag, test, || body(path));
}

/// QEMU running `elf` on the tap device, its semihosting output read as
/// lines; `append` is the firmware's command line.
fn qemu(elf: &PathBuf, append: &str) -> Process {
    let mut command = tokio::process::Command::new("qemu-system-arm");
    command
        .args(["-M", "mps2-an386", "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args([
            "-nic",
            "tap,ifname=tap0,script=no,downscript=no,model=lan9118",
        ])
        .arg("-kernel")
        .arg(elf)
        .args(["-append", append]);
    Process::spawn(command, "qemu")
}

/// Prints QEMU's log when the test fails.
struct LogOnFailure(Arc<std::sync::Mutex<Vec<String>>>);

impl LogOnFailure {
    fn of(qemu: &Process) -> LogOnFailure {
        LogOnFailure(Arc::clone(&qemu.log))
    }
}

impl Drop for LogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- QEMU's log ---");
            for line in self.0.lock().map(|l| l.clone()).unwrap_or_default() {
                eprintln!("{line}");
            }
            eprintln!("--- end of QEMU's log ---");
        }
    }
}

const ECHO_TEST: &str = "the_emulated_board_answers_udp_echoes";

#[test]
fn the_emulated_board_answers_udp_echoes() {
    with_firmware("qemu-echo", ECHO_TEST, "udp_echo", |elf| {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        rt.block_on(async {
            let started = Instant::now();
            let mut board = qemu(&elf, "");
            let _log = LogOnFailure::of(&board);
            board
                .expect_line("ready 192.168.69.1:7000", Duration::from_secs(20))
                .await;
            let socket = UdpSocket::bind(format!("{SERVER_IP}:0")).expect("a socket");
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("a timeout");
            let mut buf = [0u8; 2048];
            // The first answers also wait for ARP.
            let first = Instant::now();
            loop {
                socket
                    .send_to(b"ping", (DEVICE_IP, DEVICE_PORT))
                    .expect("sent");
                if let Ok((n, _)) = socket.recv_from(&mut buf) {
                    assert_eq!(&buf[..n], b"ping");
                    break;
                }
                assert!(
                    first.elapsed() < Duration::from_secs(10),
                    "no echo within 10 s of the board's ready line"
                );
            }
            println!(
                "echo: first answer {:.2} s after QEMU started",
                started.elapsed().as_secs_f64()
            );
            let (count, t) = (500usize, Instant::now());
            for i in 0..count {
                let msg = format!("echo {i} {}", "x".repeat(i % 1000));
                socket
                    .send_to(msg.as_bytes(), (DEVICE_IP, DEVICE_PORT))
                    .expect("sent");
                let (n, _) = socket
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("echo {i} of {count}: {e}"));
                assert_eq!(&buf[..n], msg.as_bytes(), "echo {i} comes back whole");
            }
            let rate = count as f64 / t.elapsed().as_secs_f64();
            println!("echo: {rate:.0} round trips/s from the host to the emulated board");
        });
    });
}

const CLUSTER_TEST: &str = "the_emulated_board_joins_dispatch_std_servers";

#[test]
fn the_emulated_board_joins_dispatch_std_servers() {
    with_firmware("qemu-cluster", CLUSTER_TEST, "dispatch", |elf| {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        rt.block_on(cluster(elf));
    });
}

async fn cluster(elf: PathBuf) {
    let (key, hex) = cluster_key();
    let Cluster {
        a,
        b,
        a_addr,
        uploads,
    } = cluster_with_uploader(key).await;

    // The board boots and joins: both servers list its sensor, online.
    let started = Instant::now();
    let append = format!(
        "name=qemu-1 address={DEVICE_CIDR} seed={a_addr} key={hex} heartbeat-ms={} down-ms={}",
        HEARTBEAT.as_millis(),
        DOWN_AFTER.as_millis()
    );
    let mut board = qemu(&elf, &append);
    let _log = LogOnFailure::of(&board);
    let listed = |r: &Registry| {
        let s = sensors(r);
        s.len() == 1 && &*s[0].node.name == "qemu-1" && s[0].state == State::Online
    };
    until(
        "both servers list sensor/s1 on qemu-1",
        Duration::from_secs(30),
        || listed(&a) && listed(&b),
    )
    .await;
    let visible = started.elapsed();
    println!(
        "qemu: sensor/s1 visible on both servers {:.2} s after QEMU started",
        visible.as_secs_f64()
    );

    // A server routes a key to it and calls it.
    let owner = b
        .find_service("sensor", "file.png", Routing::OnlineOnly)
        .expect("an owner");
    assert_eq!((&*owner.id, &*owner.node.name), ("s1", "qemu-1"));
    let client = b.client();
    let reply = client
        .call_raw("sensor", "file.png", b"server-b")
        .await
        .expect("the board answers");
    assert_eq!(reply, b"s1 read for server-b");

    // The board hears of the uploader and calls it.
    let called = board
        .expect_line("called uploader/u1", Duration::from_secs(20))
        .await;
    assert_eq!(
        called,
        "called uploader/u1 on server-a: stored file.png from qemu-1"
    );
    assert_eq!(
        uploads.lock().await.as_slice(),
        [b"file.png from qemu-1".to_vec()]
    );

    // Calls per second from a server to the board, one at a time.
    let (count, t) = (200u32, Instant::now());
    for i in 0..count {
        let payload = format!("call {i}");
        let reply = client
            .call_raw("sensor", "file.png", payload.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("call {i} of {count}: {e}"));
        assert_eq!(reply, format!("s1 read for call {i}").as_bytes());
    }
    let rate = f64::from(count) / t.elapsed().as_secs_f64();
    println!("qemu: {rate:.0} calls/s from a server to the emulated board, one at a time");

    // Killed, it leaves both servers within the down period.
    board.child.kill().await.expect("QEMU is killed");
    let gone = until("sensor/s1 leaves both servers", DOWN_AFTER * 3, || {
        sensors(&a).is_empty() && sensors(&b).is_empty()
    })
    .await;
    println!(
        "qemu: killed, sensor/s1 left both servers {:.2} s later (down period {:?})",
        gone.as_secs_f64(),
        DOWN_AFTER
    );
    assert!(
        gone <= DOWN_AFTER + HEARTBEAT * 3,
        "left {gone:?} after the kill"
    );
    a.shutdown().await;
    b.shutdown().await;
}
