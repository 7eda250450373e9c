//! How much heap a device's node needs for N peers and M entries: starts N
//! `dispatch-std` servers on loopback holding M `uploader` instances between
//! them, runs `dispatch-device` beside them on the host's UDP stack
//! (`--udp`, so no tap device or root is needed) with `Config::small()`,
//! waits until the device has heard every instance it can hold (all of
//! them, or as many as `presence.max_entries` admits, when the count stops
//! changing) and a few heartbeats more, and reads the peak heap it printed
//! (its own process: the servers' memory is not in it). Rows past the limit
//! show that the peak stays bounded however large the cluster is.
//!
//!     cd dispatch-embassy/examples/std && cargo run --release --example heap_report [-- --quick]

use std::process::Stdio;
use std::time::Duration;

use dispatch_std::Registry;
use tokio::io::{AsyncBufReadExt, BufReader};

const HEARTBEAT: Duration = Duration::from_millis(200);

/// Runs one device against `peers` servers holding `entries` instances;
/// returns how many of them it held and its peak heap in bytes.
async fn measure(peers: usize, entries: usize) -> Result<(usize, u64), String> {
    let mut servers = Vec::new();
    for i in 0..peers {
        let mut b = Registry::builder()
            .bind("127.0.0.1:0")
            .name(format!("server-{i}"))
            .heartbeat_period(HEARTBEAT);
        if let Some(first) = servers.first() {
            let first: &Registry = first;
            b = b.seed(first.local_addr().to_string());
        }
        servers.push(b.start().await.map_err(|e| e.to_string())?);
    }
    for e in 0..entries {
        let server = &servers[e % peers];
        server
            .add_service("uploader", &format!("u{e}"), |_req| async { Vec::new() })
            .await
            .map_err(|e| e.to_string())?;
    }
    let seed = servers[0].local_addr().to_string();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let device = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("dispatch-device"))
        .ok_or("no target folder")?;
    let mut child = tokio::process::Command::new(&device)
        .args([
            "--udp",
            "127.0.0.1:0",
            "--seed",
            &seed,
            "--call",
            "uploader",
            "--no-calls",
        ])
        .args(["--heartbeat-ms", &HEARTBEAT.as_millis().to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it first: cargo build --release)",
                device.display()
            )
        })?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut joined: usize = 0;
    let mut peak = 0u64;
    let mut settled_at = None;
    // Past the device's entry limit it never hears them all: then it has
    // settled when its count has not changed for this long.
    let still = HEARTBEAT * 25;
    let mut quiet_until = tokio::time::Instant::now() + Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = match settled_at {
            Some(t) => t,
            None => deadline.min(quiet_until),
        };
        match tokio::time::timeout_at(wait, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if let Some(n) = line.strip_prefix("known uploader ") {
                    joined = n.parse().unwrap_or(joined);
                    quiet_until = tokio::time::Instant::now() + still;
                    if joined == entries && settled_at.is_none() {
                        // A few heartbeats and anti-entropy rounds more.
                        settled_at = Some(tokio::time::Instant::now() + HEARTBEAT * 10);
                    }
                }
                if let Some(n) = line
                    .strip_prefix("heap peak ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    peak = peak.max(n);
                }
            }
            Ok(_) => return Err("the device exited".into()),
            Err(_) if settled_at.is_some() => break,
            Err(_) if joined > 0 && tokio::time::Instant::now() >= quiet_until => break,
            // Servers holding more than the device's limits are refused
            // whole: it may hold none of their instances, in bounded memory.
            Err(_) if peak > 0 => break,
            Err(_) => return Err("the device printed no heap figure in 30 s".into()),
        }
    }
    child.kill().await.map_err(|e| e.to_string())?;
    for s in servers {
        s.shutdown().await;
    }
    Ok((joined, peak))
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let grid: &[(usize, usize)] = if quick {
        &[(1, 16), (4, 64)]
    } else {
        &[
            (1, 16),
            (1, 31),
            (4, 16),
            (4, 31),
            (8, 31),
            (4, 64),
            (8, 256),
            (16, 256),
            (16, 1024),
        ]
    };
    println!(
        "peak heap of a device's node, Config::small() (32 entries in the set, its own included; 8 peers)"
    );
    println!(
        "{:>6} {:>8} {:>6} {:>12} {:>16}",
        "peers", "entries", "held", "peak heap B", "B per held entry"
    );
    for &(peers, entries) in grid {
        match measure(peers, entries).await {
            Ok((held, peak)) => {
                let per = match held {
                    0 => "-".to_string(),
                    n => format!("{:.0}", peak as f64 / n as f64),
                };
                println!("{peers:>6} {entries:>8} {held:>6} {peak:>12} {per:>16}")
            }
            Err(e) => println!("{peers:>6} {entries:>8}  failed: {e}"),
        }
    }
}
