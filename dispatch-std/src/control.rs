//! The control endpoint of the `dispatch` program: line-delimited JSON over
//! TCP, for the query commands (`dispatch services`, `dispatch find`, ...)
//! and for tests, to ask a running node what it sees.
//!
//! Each request is one JSON object on one line, `{"op": ...}`; each answer
//! is one line, `{"ok": ...}` or `{"error": "..."}`:
//!
//! ```text
//! {"op":"services","type":"uploader"}
//! {"ok":[{"type":"uploader","id":"u1","node":"a","incarnation":17..,"state":"online","slot":0,"ref":"17..:1","prev":null}]}
//! {"op":"find","type":"uploader","key":"file.png"}
//! {"op":"call","type":"uploader","key":"file.png","payload":"hello"}
//! {"op":"stats"}   {"op":"peers"}   {"op":"leave"}
//! ```
//!
//! Bind it to loopback: it answers anyone who connects.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{PeerStatus, Registry, Routing, Service, State, Transport};

/// A request to the control endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Every instance of a type ([`Registry::get_services`]).
    Services {
        /// The service type.
        #[serde(rename = "type")]
        ty: String,
    },
    /// The `n` instances (default 1) that own a key.
    Find {
        /// The service type.
        #[serde(rename = "type")]
        ty: String,
        /// The key.
        key: String,
        /// How many instances.
        #[serde(default)]
        n: Option<usize>,
        /// Consider offline instances too.
        #[serde(default)]
        allow_offline: bool,
    },
    /// A raw call with a UTF-8 payload; the reply is shown as text.
    Call {
        /// The service type.
        #[serde(rename = "type")]
        ty: String,
        /// The key.
        key: String,
        /// The request.
        payload: String,
        /// The call's timeout in milliseconds (default: the node's).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// The node's counters.
    Stats,
    /// The node's peers.
    Peers,
    /// Leave the cluster gracefully and stop the program.
    Leave,
}

/// Serves the control protocol on `listener` for `registry`; a `leave`
/// request shuts the registry down and then notifies `left`.
pub fn serve<T: Transport>(
    registry: Registry<T>,
    listener: TcpListener,
    left: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (registry, left) = (registry.clone(), Arc::clone(&left));
            tokio::spawn(async move {
                // A client that hangs up early is no concern of the node's.
                let _ = session(registry, stream, left).await;
            });
        }
    })
}

async fn session<T: Transport>(
    registry: Registry<T>,
    stream: TcpStream,
    left: Arc<Notify>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Command>(&line) {
            Ok(Command::Leave) => {
                registry.shutdown().await;
                write.write_all(b"{\"ok\":\"left\"}\n").await?;
                left.notify_one();
                return Ok(());
            }
            Ok(cmd) => match answer(&registry, cmd).await {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "error": e.to_string() }),
            },
            Err(e) => json!({ "error": format!("not a request: {e}") }),
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}

async fn answer<T: Transport>(registry: &Registry<T>, cmd: Command) -> Result<Value, crate::Error> {
    Ok(match cmd {
        Command::Services { ty } => Value::Array(
            registry
                .get_services(&ty)
                .iter()
                .map(service_json)
                .collect(),
        ),
        Command::Find {
            ty,
            key,
            n,
            allow_offline,
        } => {
            let routing = if allow_offline {
                Routing::AllowOffline
            } else {
                Routing::OnlineOnly
            };
            let found = registry.find_multi_service(n.unwrap_or(1), &ty, &key, routing)?;
            Value::Array(found.iter().map(service_json).collect())
        }
        Command::Call {
            ty,
            key,
            payload,
            timeout_ms,
        } => {
            let mut client = registry.client();
            if let Some(ms) = timeout_ms {
                client = client.timeout(Duration::from_millis(ms));
            }
            let reply = client.call_raw(&ty, &key, payload.as_bytes()).await?;
            Value::String(String::from_utf8_lossy(&reply).into_owned())
        }
        Command::Stats => {
            let s = registry.stats();
            let keys = registry.keyring().map(|k| {
                json!({
                    "primary": k.primary().id(),
                    "accepted": std::iter::once(k.primary())
                        .chain(k.secondary())
                        .map(|key| key.id())
                        .collect::<Vec<_>>(),
                })
            });
            json!({
                "keys": keys,
                "datagrams_in": s.node.datagrams_in,
                "datagrams_out": s.node.datagrams_out,
                "dropped": s.node.dropped_total(),
                "dropped_by_reason": s
                    .node
                    .drops()
                    .filter(|&(_, n)| n > 0)
                    .map(|(r, n)| (format!("{r:?}"), Value::from(n)))
                    .collect::<serde_json::Map<String, Value>>(),
                "strangers_greeted": s.node.strangers_greeted,
                "datagrams_sealed": s.node.datagrams_sealed,
                "calls_started": s.node.calls_started,
                "requests_handled": s.node.requests_handled,
                "send_errors": s.io.send_errors,
            })
        }
        Command::Peers => Value::Array(
            registry
                .peers()
                .iter()
                .map(|p| {
                    json!({
                        "name": &*p.id.name,
                        "incarnation": p.id.incarnation,
                        "addr": p.addr.to_string(),
                        "up": p.status == PeerStatus::Up,
                    })
                })
                .collect(),
        ),
        Command::Leave => Value::Null,
    })
}

/// An instance as JSON.
pub fn service_json(s: &Service) -> Value {
    json!({
        "type": &*s.ty,
        "id": &*s.id,
        "node": &*s.node.name,
        "incarnation": s.node.incarnation,
        "state": if s.state == State::Online { "online" } else { "offline" },
        "slot": s.slot,
        "ref": format!("{}:{}", s.reference.incarnation, s.reference.clock),
        "prev": s.previous.map(|r| format!("{}:{}", r.incarnation, r.clock)),
    })
}

/// Sends one request to the control endpoint at `addr` and returns its
/// answer's `ok` value; an `error` answer becomes an `io::Error` of kind
/// `Other` with its message.
pub async fn request(addr: SocketAddr, cmd: &Command) -> io::Result<Value> {
    let mut stream = TcpStream::connect(addr).await?;
    let line = serde_json::to_string(cmd).map_err(io::Error::other)?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).await?;
    let mut v: Value = serde_json::from_str(&answer).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad answer `{answer}`: {e}"),
        )
    })?;
    if let Some(e) = v.get("error") {
        return Err(io::Error::other(e.as_str().unwrap_or("error").to_string()));
    }
    Ok(v.get_mut("ok").map(Value::take).unwrap_or(Value::Null))
}
