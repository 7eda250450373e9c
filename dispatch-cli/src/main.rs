//! `dispatch`: run a Dispatch node, query one, or watch a demo cluster.
//!
//! - `dispatch demo`: a small cluster on loopback in this process.
//! - `dispatch node`: one node (bind, seeds, name, config file), with a
//!   control endpoint the query commands talk to.
//! - `dispatch services TYPE`, `dispatch find TYPE KEY`, `dispatch call`,
//!   `dispatch peers`, `dispatch stats`, `dispatch leave`: ask a running node
//!   through its control endpoint.
//! - `dispatch keygen`: write a new cluster key file, or add a key to one.

mod demo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use dispatch_libp2p::libp2p::Multiaddr;
use dispatch_libp2p::NodeBuilder;
use dispatch_std::control::{self, Command};
use dispatch_std::{key_file, Builder, Registry, Request, Transport};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Dispatch: a distributed service registry with key routing.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The control endpoint a query command talks to.
#[derive(Debug, clap::Args)]
struct Control {
    /// The node's control endpoint (`dispatch node --control`).
    #[arg(long, default_value = "127.0.0.1:7401")]
    control: SocketAddr,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a small cluster on loopback in this process and show it work.
    Demo,
    /// Run a node until interrupted (SIGINT, SIGTERM) or told to leave.
    Node(NodeArgs),
    /// List the instances of a service type a running node sees.
    Services {
        /// The service type.
        #[arg(value_name = "TYPE")]
        ty: String,
        #[command(flatten)]
        control: Control,
    },
    /// Show which instance owns a key, as a running node routes it.
    Find {
        /// The service type.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// The key, e.g. a file name.
        key: String,
        /// How many instances (replicas) to show.
        #[arg(short, default_value_t = 1)]
        n: usize,
        /// Consider offline instances too.
        #[arg(long)]
        allow_offline: bool,
        #[command(flatten)]
        control: Control,
    },
    /// Call the instance that owns a key through a running node.
    Call {
        /// The service type.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// The key.
        key: String,
        /// The request, sent as UTF-8 bytes.
        payload: String,
        /// Milliseconds to wait for the reply (default: the node's).
        #[arg(long)]
        timeout_ms: Option<u64>,
        #[command(flatten)]
        control: Control,
    },
    /// List a running node's peers.
    Peers {
        #[command(flatten)]
        control: Control,
    },
    /// Show a running node's counters.
    Stats {
        #[command(flatten)]
        control: Control,
    },
    /// Make a running node leave the cluster gracefully and exit.
    Leave {
        #[command(flatten)]
        control: Control,
    },
    /// Write a new cluster key file (readable by its owner only), or add a
    /// key to one for rotation. Copy the file to every node and give it
    /// with `dispatch node --key-file`.
    Keygen(KeygenArgs),
}

/// What `dispatch keygen` writes.
#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Write a new key file here, with one key as primary. An existing
    /// file is never replaced.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "add",
        required_unless_present = "add"
    )]
    out: Option<PathBuf>,
    /// Add a new key to this key file, accepted but not yet primary (the
    /// first step of a rotation; then set `primary` to its id).
    #[arg(long, value_name = "FILE")]
    add: Option<PathBuf>,
    /// The new key's id, 1 to 127 (default: 1 for a new file, the lowest
    /// free id when adding).
    #[arg(long)]
    id: Option<u8>,
}

/// The transports `dispatch node` runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransportKind {
    /// UDP datagrams.
    Udp,
    /// libp2p: gossipsub and request-response.
    Libp2p,
}

/// Settings of `dispatch node`, applied in this order: the config file,
/// then the `DISPATCH_*` variables, then these flags.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// A TOML file of settings (bind, seeds, name, cluster_id, periods).
    #[arg(long)]
    config: Option<PathBuf>,
    /// How the node reaches its peers: `udp` (datagrams on one socket,
    /// `--bind`), or `libp2p` (gossipsub and request-response over TCP
    /// with noise and yamux, or QUIC; `--listen`).
    #[arg(long, value_enum, default_value_t = TransportKind::Udp)]
    transport: TransportKind,
    /// UDP address to bind (`--transport udp`).
    #[arg(long)]
    bind: Option<String>,
    /// A multiaddr to listen on (`--transport libp2p`; repeat for several),
    /// e.g. /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1.
    /// Default /ip4/127.0.0.1/tcp/0.
    #[arg(long)]
    listen: Vec<String>,
    /// A member of the cluster to join through (repeat for several): a
    /// UDP `host:port`, or for libp2p a multiaddr ending in
    /// /p2p/<peer id>, as that node prints at start.
    #[arg(long = "seed")]
    seeds: Vec<String>,
    /// The node's name, kept across restarts.
    #[arg(long)]
    name: Option<String>,
    /// The cluster id; datagrams of other clusters are dropped.
    #[arg(long)]
    cluster_id: Option<u32>,
    /// How often to tell peers this node is alive, e.g. 1s or 200ms.
    #[arg(long)]
    heartbeat_period: Option<String>,
    /// Silence after which a peer is down, e.g. 10s.
    #[arg(long)]
    down_after: Option<String>,
    /// How long calls wait for a reply, e.g. 5s.
    #[arg(long)]
    request_timeout: Option<String>,
    /// The cluster key file (`dispatch keygen`): every datagram is sealed
    /// and only the cluster's are accepted. Read again on SIGHUP, to
    /// rotate keys with the node running.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Start without a key although the node is reachable beyond this
    /// host: traffic travels in the clear and anyone who reaches the node
    /// can join. Only on a network where every host is trusted.
    #[arg(long)]
    insecure: bool,
    /// TCP address of the control endpoint (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:7401")]
    control: SocketAddr,
    /// An instance to register, TYPE:ID (repeat for several). It answers
    /// calls with "NODE/ID got REQUEST".
    #[arg(long = "service")]
    services: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = if matches!(cli.command, Cmd::Node(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dispatch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Demo => demo::run().await,
            Cmd::Node(args) => node(args).await,
            Cmd::Services { ty, control } => query(control, Command::Services { ty }).await,
            Cmd::Find {
                ty,
                key,
                n,
                allow_offline,
                control,
            } => {
                query(
                    control,
                    Command::Find {
                        ty,
                        key,
                        n: Some(n),
                        allow_offline,
                    },
                )
                .await
            }
            Cmd::Call {
                ty,
                key,
                payload,
                timeout_ms,
                control,
            } => {
                query(
                    control,
                    Command::Call {
                        ty,
                        key,
                        payload,
                        timeout_ms,
                    },
                )
                .await
            }
            Cmd::Peers { control } => query(control, Command::Peers).await,
            Cmd::Stats { control } => query(control, Command::Stats).await,
            Cmd::Leave { control } => query(control, Command::Leave).await,
            Cmd::Keygen(args) => keygen(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dispatch: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

async fn node(args: NodeArgs) -> Result<(), AnyError> {
    let mut builder = Builder::new();
    if let Some(path) = &args.config {
        builder = builder.toml_file(path)?;
    }
    builder = builder.env()?;
    match (args.transport, &args.bind, args.listen.first()) {
        (TransportKind::Libp2p, Some(bind), _) => {
            return Err(format!("--bind {bind}: a libp2p node listens on multiaddrs; write --listen /ip4/0.0.0.0/tcp/4001 (or drop --transport libp2p for a UDP node)").into())
        }
        (TransportKind::Udp, _, Some(listen)) => {
            return Err(format!("--listen {listen}: a UDP node binds a socket address; write --bind 0.0.0.0:7400 (or add --transport libp2p)").into())
        }
        _ => {}
    }
    let mut listen = Vec::new();
    for addr in &args.listen {
        let parsed: Multiaddr = addr.parse().map_err(|e| {
            format!("--listen {addr}: not a multiaddr ({e}); write it like /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1")
        })?;
        listen.push(parsed);
    }
    if let Some(bind) = args.bind {
        builder = builder.bind(bind);
    }
    if !args.seeds.is_empty() {
        builder = builder.seeds(args.seeds);
    }
    if let Some(name) = args.name {
        builder = builder.name(name);
    }
    if let Some(id) = args.cluster_id {
        builder = builder.cluster_id(id);
    }
    if let Some(path) = args.key_file {
        builder = builder.key_file(path);
    }
    if args.insecure {
        builder = builder.insecure(true);
    }
    // The same parser as the file and the environment, so that a bad value
    // is refused with the same message.
    let mut flags = Vec::new();
    for (var, value) in [
        ("DISPATCH_HEARTBEAT_PERIOD", args.heartbeat_period),
        ("DISPATCH_DOWN_AFTER", args.down_after),
        ("DISPATCH_REQUEST_TIMEOUT", args.request_timeout),
    ] {
        if let Some(v) = value {
            flags.push((var.to_string(), v));
        }
    }
    builder = builder.env_vars(flags)?;
    let mut services = Vec::new();
    for spec in &args.services {
        let Some((ty, id)) = spec.split_once(':') else {
            return Err(format!("--service {spec}: write it as TYPE:ID").into());
        };
        services.push((ty.to_string(), id.to_string()));
    }

    let control = TcpListener::bind(args.control)
        .await
        .map_err(|e| format!("control endpoint {}: {e}", args.control))?;
    let key_path = builder.key_file_path().map(Path::to_path_buf);
    match args.transport {
        TransportKind::Udp => {
            let registry = builder.start().await?;
            let at = format!("udp {}", registry.local_addr());
            serve(&registry, services, control, &at, key_path.as_deref()).await?;
            registry.shutdown().await;
            say(&format!("node {} left the cluster", registry.id().name));
        }
        TransportKind::Libp2p => {
            let mut b = NodeBuilder::new(builder);
            for addr in listen {
                b = b.listen(addr);
            }
            let node = b.start().await?;
            let addrs: Vec<String> = node.listen_addrs().iter().map(|a| a.to_string()).collect();
            let at = format!("libp2p {}", addrs.join(" "));
            serve(node.registry(), services, control, &at, key_path.as_deref()).await?;
            let name = node.registry().id().name.to_string();
            node.shutdown().await;
            say(&format!("node {name} left the cluster"));
        }
    }
    Ok(())
}

/// Registers the node's services, serves its control endpoint, says where
/// it runs, and waits until it is told to stop (reading its key file again
/// on each SIGHUP). The caller then leaves the cluster.
async fn serve<T: Transport>(
    registry: &Registry<T>,
    services: Vec<(String, String)>,
    control: TcpListener,
    at: &str,
    key_path: Option<&Path>,
) -> Result<(), AnyError> {
    let name = registry.id().name.to_string();
    for (ty, id) in services {
        let handler = echo(name.clone(), id.clone());
        registry.add_service(&ty, &id, handler).await?;
    }
    let control_addr = control.local_addr()?;
    let left = Arc::new(Notify::new());
    control::serve(registry.clone(), control, Arc::clone(&left));
    say(&format!("node {name} {at} control {control_addr}"));
    wait_for_stop(&left, || reload_keys(registry, key_path)).await;
    Ok(())
}

/// Prints a line for whoever started the node; a reader that went away is
/// no reason to fail.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The handler of `dispatch node --service`: it says who answered.
fn echo(
    node: String,
    id: String,
) -> impl Fn(Request) -> std::future::Ready<Vec<u8>> + Send + Sync + 'static {
    move |request: Request| {
        let text = format!(
            "{node}/{id} got {}",
            String::from_utf8_lossy(&request.payload)
        );
        std::future::ready(text.into_bytes())
    }
}

/// `dispatch keygen`: a new key file, or a key added to one.
fn keygen(args: KeygenArgs) -> Result<(), AnyError> {
    if let Some(path) = args.out {
        let ring = key_file::create(&path, args.id.unwrap_or(1))
            .map_err(|e| format!("--out {}: {e}", path.display()))?;
        say(&format!(
            "wrote {} with key {} as primary; copy it to every node and start them with --key-file {}",
            path.display(),
            ring.primary().id(),
            path.display()
        ));
    } else if let Some(path) = args.add {
        let id =
            key_file::add(&path, args.id).map_err(|e| format!("--add {}: {e}", path.display()))?;
        say(&format!(
            "added key {id} to {} (accepted, not yet primary); copy the file to every node and send them SIGHUP, then set `primary = {id}` everywhere, then remove the old key",
            path.display()
        ));
    }
    Ok(())
}

/// Reads the key file again (on SIGHUP) and gives the node its keys; a
/// file that does not read leaves the keys as they were.
fn reload_keys<T: Transport>(registry: &Registry<T>, path: Option<&Path>) {
    let Some(path) = path else {
        tracing::warn!(
            "SIGHUP: this node has no key file to read again (start it with --key-file)"
        );
        return;
    };
    match key_file::read(path) {
        Ok(ring) => {
            tracing::info!(
                file = %path.display(),
                primary = ring.primary().id(),
                accepted = 1 + ring.secondary().len(),
                "key file read again"
            );
            registry.set_keyring(Some(ring));
        }
        Err(e) => {
            tracing::error!(file = %path.display(), "key file not read again, keys unchanged: {e}")
        }
    }
}

/// Until SIGINT, SIGTERM or a `leave` request; `on_hangup` runs on each
/// SIGHUP.
async fn wait_for_stop(left: &Notify, on_hangup: impl Fn()) {
    #[cfg(unix)]
    let hangups = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut s) => {
                while s.recv().await.is_some() {
                    on_hangup();
                }
                std::future::pending::<()>().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let hangups = {
        let _ = on_hangup;
        std::future::pending::<()>()
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = left.notified() => {}
        _ = hangups => {}
    }
}

async fn query(control: Control, cmd: Command) -> Result<(), AnyError> {
    let answer = control::request(control.control, &cmd)
        .await
        .map_err(|e| format!("{}: {e}", control.control))?;
    match (&cmd, &answer) {
        (Command::Services { .. } | Command::Find { .. }, Value::Array(list)) => {
            if list.is_empty() {
                println!("(none)");
            }
            for s in list {
                println!(
                    "{}  {}  on {}#{}  {}  slot {}  ref {}",
                    s["type"].as_str().unwrap_or("?"),
                    s["id"].as_str().unwrap_or("?"),
                    s["node"].as_str().unwrap_or("?"),
                    s["incarnation"],
                    s["state"].as_str().unwrap_or("?"),
                    s["slot"],
                    s["ref"].as_str().unwrap_or("?"),
                );
            }
        }
        (_, Value::String(text)) => println!("{text}"),
        (_, other) => println!("{}", serde_json::to_string_pretty(other)?),
    }
    Ok(())
}
