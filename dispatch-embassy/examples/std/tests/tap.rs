//! A device on a tap device joins a cluster of `dispatch-std` servers, in a
//! network namespace this test makes (`ip netns`, so it runs as root):
//! its `sensor` instance is listed on the servers with its node and state,
//! they route keys to it and call it, it calls their `uploader`; killed, it
//! leaves them within the down period; restarted, it is back with no zombie.
//!
//! Without the privileges to make a namespace the test says so and passes,
//! unless `DISPATCH_REQUIRE_NETNS=1` (CI sets it), when it fails.

mod support;

use std::time::Duration;

use dispatch_std::dispatch_core::presence::State;
use dispatch_std::{Registry, Routing, ServiceEvent};
use support::*;

const TEST: &str = "a_device_on_a_tap_joins_dispatch_std_servers_and_restarts_without_zombies";

#[test]
fn a_device_on_a_tap_joins_dispatch_std_servers_and_restarts_without_zombies() {
    in_namespace("tap", TEST, inside);
}

/// A running `dispatch-device`.
fn start_device(seed: &str, key: &str) -> Process {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dispatch-device"));
    command
        .args(["--tap", "tap0", "--address", DEVICE_CIDR, "--port", "7000"])
        .args([
            "--seed", seed, "--name", "board-1", "--sensor", "s1", "--key", key,
        ])
        .args(["--heartbeat-ms", &HEARTBEAT.as_millis().to_string()])
        .args(["--down-ms", &DOWN_AFTER.as_millis().to_string()]);
    Process::spawn(command, "device")
}

/// The highest heap peak the device printed.
fn heap_peak(device: &Process) -> u64 {
    device
        .lines()
        .iter()
        .filter_map(|line| {
            line.strip_prefix("heap peak ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

fn inside() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let (key, hex) = cluster_key();
        let Cluster { a, b, a_addr, uploads } = cluster_with_uploader(key).await;
        let mut events = a.subscribe("sensor");

        // The device joins: both servers list its sensor, online, on its node.
        let mut device = start_device(&a_addr, &hex);
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
        let peak = heap_peak(&device);
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
        let mut device = start_device(&a_addr, &hex);
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
