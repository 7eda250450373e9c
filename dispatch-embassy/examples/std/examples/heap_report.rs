//! How much heap a device's node needs for N peers and M entries: starts N
//! `dispatch-std` servers on loopback holding M `uploader` instances between
//! them, runs `dispatch-device` beside them on the host's UDP stack
//! (`--udp`, so no tap device or root is needed) with `Config::small()`,
//! waits until the device has heard every instance and a few heartbeats
//! more, and reads the peak heap it printed (its own process: the servers'
//! memory is not in it).
//!
//!     cd dispatch-embassy/examples/std && cargo run --release --example heap_report [-- --quick]

use std::process::Stdio;
use std::time::Duration;

use dispatch_std::Registry;
use tokio::io::{AsyncBufReadExt, BufReader};

const HEARTBEAT: Duration = Duration::from_millis(200);

/// Runs one device against `peers` servers holding `entries` instances;
/// returns its peak heap in bytes.
async fn measure(peers: usize, entries: usize) -> Result<u64, String> {
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = match settled_at {
            Some(t) => t,
            None => deadline,
        };
        match tokio::time::timeout_at(wait, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if let Some(n) = line.strip_prefix("known uploader ") {
                    joined = n.parse().unwrap_or(joined);
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
            Err(_) => {
                return Err(format!(
                    "the device heard {joined} of {entries} instances in 30 s"
                ))
            }
        }
    }
    child.kill().await.map_err(|e| e.to_string())?;
    for s in servers {
        s.shutdown().await;
    }
    Ok(peak)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let grid: &[(usize, usize)] = if quick {
        &[(1, 16), (4, 64)]
    } else {
        &[
            (1, 16),
            (1, 64),
            (4, 16),
            (4, 64),
            (4, 256),
            (16, 64),
            (16, 256),
            (31, 256),
            (31, 1024),
        ]
    };
    println!(
        "peak heap of a device's node, Config::small() (64 entries per peer, 32 peers at most)"
    );
    println!(
        "{:>6} {:>8} {:>12} {:>16}",
        "peers", "entries", "peak heap B", "B per entry"
    );
    for &(peers, entries) in grid {
        match measure(peers, entries).await {
            Ok(peak) => println!(
                "{peers:>6} {entries:>8} {peak:>12} {:>16.0}",
                peak as f64 / entries as f64
            ),
            Err(e) => println!("{peers:>6} {entries:>8}  failed: {e}"),
        }
    }
}
