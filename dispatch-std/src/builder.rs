//! Starting a registry: the [`Builder`], and its settings from a TOML file
//! and from `DISPATCH_*` environment variables.
//!
//! Settings apply in the order given: start from [`Builder::new`], merge a
//! file, then the environment, then call setters (command-line flags), each
//! overriding the ones before. The same names serve everywhere:
//!
//! | TOML key | environment variable | setter | default |
//! |---|---|---|---|
//! | `bind` | `DISPATCH_BIND` | [`Builder::bind`] | `127.0.0.1:0` |
//! | `seeds` (list) | `DISPATCH_SEEDS` (comma-separated) | [`Builder::seed`] | none |
//! | `name` | `DISPATCH_NAME` | [`Builder::name`] | `node-` and random hex |
//! | `cluster_id` | `DISPATCH_CLUSTER_ID` | [`Builder::cluster_id`] | 0 |
//! | `heartbeat_period` | `DISPATCH_HEARTBEAT_PERIOD` | [`Builder::heartbeat_period`] | `1s` |
//! | `down_after` | `DISPATCH_DOWN_AFTER` | [`Builder::down_after`] | `10s` |
//! | `permanent_down_after` | `DISPATCH_PERMANENT_DOWN_AFTER` | [`Builder::permanent_down_after`] | `10m` |
//! | `request_timeout` | `DISPATCH_REQUEST_TIMEOUT` | [`Builder::request_timeout`] | `5s` |
//! | `key_file` | `DISPATCH_KEY_FILE` | [`Builder::key_file`] | none |
//! | `insecure` | `DISPATCH_INSECURE` (`true`/`false`) | [`Builder::insecure`] | `false` |
//!
//! With a key file (see [`key_file`](crate::key_file)) every datagram is
//! sealed with the cluster key, and datagrams without it are refused. A
//! node bound beyond loopback refuses to start without one, unless told
//! [`insecure`](Builder::insecure) (for a network where every host is
//! trusted).
//!
//! Durations are written with a unit: `250ms`, `2s`, `10m`, `1h`.
//! `dispatch-std/node.example.toml` sets every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dispatch_core::keyring::Keyring;
use dispatch_core::node::{self, Node};
use dispatch_core::presence::ReplicaId;
use serde::Deserialize;

use crate::driver::{self, Core};
use crate::error::StartError;
use crate::registry::Registry;
use crate::time::Clock;
use crate::transport::{Transport, Udp};

/// Settings of a registry, then [`Builder::start`].
///
/// ```no_run
/// # async fn demo() -> Result<(), dispatch_std::StartError> {
/// use std::time::Duration;
/// let registry = dispatch_std::Registry::builder()
///     .bind("0.0.0.0:7400")
///     .seed("10.0.0.2:7400")
///     .name("api-1")
///     .request_timeout(Duration::from_secs(2))
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    bind: String,
    seeds: Vec<String>,
    name: Option<String>,
    incarnation: Option<u64>,
    config: node::Config,
    subscription_capacity: usize,
    /// The key file to read at start, and where its path came from.
    key_file: Option<(PathBuf, String)>,
    insecure: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// The settings a TOML file may hold; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    bind: Option<String>,
    seeds: Option<Vec<String>>,
    name: Option<String>,
    cluster_id: Option<u32>,
    heartbeat_period: Option<String>,
    down_after: Option<String>,
    permanent_down_after: Option<String>,
    request_timeout: Option<String>,
    key_file: Option<PathBuf>,
    insecure: Option<bool>,
}

impl Builder {
    /// The defaults: loopback on a free port, no seeds, a random name, the
    /// core's default periods.
    pub fn new() -> Self {
        Builder {
            bind: "127.0.0.1:0".into(),
            seeds: Vec::new(),
            name: None,
            incarnation: None,
            config: node::Config::default(),
            subscription_capacity: 1024,
            key_file: None,
            insecure: false,
        }
    }

    /// A builder with the settings of a TOML file (keys in the module docs).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, StartError> {
        Builder::new().toml_file(path)
    }

    /// A builder with the settings of the `DISPATCH_*` environment
    /// variables.
    pub fn from_env() -> Result<Self, StartError> {
        Builder::new().env()
    }

    /// Merges the settings of a TOML file over these.
    pub fn toml_file(self, path: impl AsRef<Path>) -> Result<Self, StartError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| StartError::Setting {
            source_name: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        self.toml_str(&text, &path.display().to_string())
    }

    /// Merges settings written in TOML; `source_name` names them in errors.
    pub fn toml_str(mut self, text: &str, source_name: &str) -> Result<Self, StartError> {
        let bad = |message: String| StartError::Setting {
            source_name: source_name.into(),
            message,
        };
        let s: Settings = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if let Some(v) = s.bind {
            self.bind = v;
        }
        if let Some(v) = s.seeds {
            self.seeds = v;
        }
        if let Some(v) = s.name {
            self.name = Some(v);
        }
        if let Some(v) = s.cluster_id {
            self.config.cluster_id = v;
        }
        if let Some(v) = s.key_file {
            self.key_file = Some((v, format!("{source_name}: key_file")));
        }
        if let Some(v) = s.insecure {
            self.insecure = v;
        }
        for (key, value) in [
            ("heartbeat_period", s.heartbeat_period),
            ("down_after", s.down_after),
            ("permanent_down_after", s.permanent_down_after),
            ("request_timeout", s.request_timeout),
        ] {
            if let Some(v) = value {
                let d = parse_duration(&v).map_err(|m| bad(format!("{key}: {m}")))?;
                self.set_duration(key, d);
            }
        }
        Ok(self)
    }

    /// Merges the `DISPATCH_*` environment variables over these settings.
    pub fn env(self) -> Result<Self, StartError> {
        self.env_vars(std::env::vars())
    }

    /// Merges `DISPATCH_*` variables from `vars` (the environment, or a
    /// test's list); other names are ignored.
    pub fn env_vars(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StartError> {
        for (var, value) in vars {
            let Some(key) = var.strip_prefix("DISPATCH_") else {
                continue;
            };
            let bad = |message: String| StartError::Setting {
                source_name: var.clone(),
                message,
            };
            match key {
                "BIND" => self.bind = value,
                "SEEDS" => {
                    self.seeds = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                }
                "NAME" => self.name = Some(value),
                "CLUSTER_ID" => {
                    self.config.cluster_id = value.trim().parse().map_err(|_| {
                        bad(format!(
                            "`{value}` is not a cluster id: give a number from 0 to {}",
                            u32::MAX
                        ))
                    })?;
                }
                "KEY_FILE" => self.key_file = Some((PathBuf::from(value), var.clone())),
                "INSECURE" => {
                    self.insecure = match value.trim() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => {
                            return Err(bad(format!(
                                "`{value}` is not a yes or no: write true or false"
                            )))
                        }
                    };
                }
                "HEARTBEAT_PERIOD" | "DOWN_AFTER" | "PERMANENT_DOWN_AFTER" | "REQUEST_TIMEOUT" => {
                    let d = parse_duration(&value).map_err(bad)?;
                    self.set_duration(&key.to_ascii_lowercase(), d);
                }
                // Other variables of ours (DISPATCH_SIM_SEED, ...) belong
                // to other tools.
                _ => {}
            }
        }
        Ok(self)
    }

    /// The UDP address to bind, `host:port` (port 0 picks a free one).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Adds a seed: the `host:port` of a member of the cluster to join
    /// through.
    pub fn seed(mut self, addr: impl Into<String>) -> Self {
        self.seeds.push(addr.into());
        self
    }

    /// Replaces the seeds.
    pub fn seeds<S: Into<String>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
        self.seeds = addrs.into_iter().map(Into::into).collect();
        self
    }

    /// The node's name, unique in the cluster and kept across restarts.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The incarnation; by default microseconds since the UNIX epoch at
    /// start, so that a restart always has a larger one.
    pub fn incarnation(mut self, incarnation: u64) -> Self {
        self.incarnation = Some(incarnation);
        self
    }

    /// The cluster id: datagrams of other clusters are dropped and counted.
    pub fn cluster_id(mut self, id: u32) -> Self {
        self.config.cluster_id = id;
        self
    }

    /// How often the node tells its peers it is alive.
    pub fn heartbeat_period(mut self, d: Duration) -> Self {
        self.config.heartbeat_period = d;
        self
    }

    /// Silence after which a peer is down and its services leave.
    pub fn down_after(mut self, d: Duration) -> Self {
        self.config.down_after = d;
        self
    }

    /// Silence after which a down peer is forgotten.
    pub fn permanent_down_after(mut self, d: Duration) -> Self {
        self.config.permanent_down_after = d;
        self
    }

    /// How long a call waits for its reply unless it says otherwise.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.call_timeout = d;
        self
    }

    /// Seals every datagram with `keyring`'s primary key and accepts only
    /// datagrams sealed with one of its keys (see
    /// [`key_file`](crate::key_file) for rotating keys). Replaces a key
    /// file given before.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.config.keyring = Some(keyring);
        self.key_file = None;
        self
    }

    /// The keyring from a key file, read at start (`dispatch keygen` makes
    /// one; the format is in [`key_file`](crate::key_file)).
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some((path.into(), "key file".into()));
        self
    }

    /// Lets a node bound beyond loopback start without a key: its traffic
    /// travels in the clear and anyone who reaches it can join. Only for a
    /// network where every host is trusted.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// The key file given, if any, to read again when keys rotate.
    pub fn key_file_path(&self) -> Option<&Path> {
        self.key_file.as_ref().map(|(p, _)| p.as_path())
    }

    /// How many events each subscription buffers before it lags.
    pub fn subscription_capacity(mut self, n: usize) -> Self {
        self.subscription_capacity = n.max(1);
        self
    }

    /// Changes any setting of the core node directly.
    pub fn node_config(mut self, f: impl FnOnce(&mut node::Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Binds the UDP socket, joins the cluster through the seeds and starts
    /// the driver on the current tokio runtime.
    pub async fn start(mut self) -> Result<Registry<Udp>, StartError> {
        self.check()?;
        self.load_key_file()?;
        let bind = resolve(&self.bind).await?;
        self.check_exposure(&format!("bind address {bind}"), !bind.ip().is_loopback())?;
        let mut seeds = Vec::with_capacity(self.seeds.len());
        for seed in &self.seeds {
            seeds.push(resolve(seed).await?);
        }
        let udp = Udp::bind(bind).await?;
        self.start_with(udp, seeds)
    }

    /// Starts the driver over another transport, joining through `seeds`.
    /// Must be called within a tokio runtime.
    pub fn start_with<T: Transport>(
        mut self,
        transport: T,
        seeds: Vec<T::Addr>,
    ) -> Result<Registry<T>, StartError> {
        self.load_key_file()?;
        let mut config = self.config.clone();
        transport.configure(&mut config);
        config.seed = entropy();
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("node-{:08x}", entropy() as u32));
        let incarnation = self.incarnation.unwrap_or_else(now_micros);
        let clock = Clock::start();
        let mut node = Node::new(
            ReplicaId::new(&name, incarnation),
            config.clone(),
            clock.now(),
        )?;
        let local_addr = transport.local_addr()?;
        node.join(clock.now(), &seeds);
        let (core, stopped) = Core::new(
            node,
            transport,
            clock,
            config.mtu,
            self.subscription_capacity,
        );
        let driver = tokio::spawn(driver::run(std::sync::Arc::clone(&core), stopped));
        let key = config.keyring.as_ref().map(|k| k.primary().id());
        tracing::info!(node = %name, incarnation, addr = ?local_addr, seeds = seeds.len(), sealed_with_key = ?key, "node started");
        Ok(Registry::new(core, driver, local_addr))
    }

    /// Refuses a node reachable beyond this host (`beyond_loopback`, at
    /// the address `what` names) that has no cluster key, unless it was
    /// started [`insecure`](Builder::insecure). [`Builder::start`] checks its
    /// bind address; another transport checks its listen addresses.
    pub fn check_exposure(&self, what: &str, beyond_loopback: bool) -> Result<(), StartError> {
        let keyed = self.config.keyring.is_some() || self.key_file.is_some();
        if !beyond_loopback || keyed || self.insecure {
            return Ok(());
        }
        Err(StartError::Setting {
            source_name: what.to_string(),
            message: "it is reachable beyond this host, and the node has no cluster key: \
                      anyone who reaches it could join the cluster, forge its services \
                      and read its calls. Make a key with `dispatch keygen --out cluster.key`, \
                      copy it to every node and give it with --key-file (DISPATCH_KEY_FILE, \
                      key_file in TOML); or, on a network where every host is trusted, \
                      pass --insecure"
                .into(),
        })
    }

    /// The seeds given so far (flags, `DISPATCH_SEEDS`, the TOML file's
    /// `seeds`), as written. [`Builder::start`] resolves them as UDP
    /// addresses; another transport parses them its own way.
    pub fn seed_addrs(&self) -> &[String] {
        &self.seeds
    }

    /// Checks the settings without starting anything.
    pub fn check(&self) -> Result<(), StartError> {
        self.config.validate()?;
        if let Some(name) = &self.name {
            let max = self.config.presence.max_name_len as usize;
            if name.is_empty() || name.len() > max {
                return Err(StartError::Setting {
                    source_name: "name".into(),
                    message: format!("`{name}` must be 1 to {max} bytes long"),
                });
            }
        }
        Ok(())
    }

    /// Reads the key file given, if any, into the node's keyring.
    fn load_key_file(&mut self) -> Result<(), StartError> {
        if let Some((path, source)) = self.key_file.take() {
            let ring = crate::key_file::read(&path).map_err(|message| StartError::Setting {
                source_name: format!("{source} {}", path.display()),
                message,
            })?;
            self.config.keyring = Some(ring);
        }
        Ok(())
    }

    fn set_duration(&mut self, key: &str, d: Duration) {
        match key {
            "heartbeat_period" => self.config.heartbeat_period = d,
            "down_after" => self.config.down_after = d,
            "permanent_down_after" => self.config.permanent_down_after = d,
            "request_timeout" => self.config.call_timeout = d,
            _ => {}
        }
    }
}

/// Resolves `host:port` to its first address.
async fn resolve(addr: &str) -> Result<SocketAddr, StartError> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    let bad = |m: String| StartError::Setting {
        source_name: format!("address `{addr}`"),
        message: m,
    };
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| bad(format!("does not resolve ({e}): write it as host:port")))?
        .next()
        .ok_or_else(|| bad("resolves to no address".into()))
}

/// A duration with a unit: `250ms`, `2s`, `10m`, `1h`, `500us`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a whole number and a unit, e.g. 250ms or 2s")
    })?;
    match unit.trim() {
        "us" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        _ => Err(format!(
            "`{text}` has no known unit: end it with us, ms, s, m or h"
        )),
    }
}

/// Microseconds since the UNIX epoch: an incarnation that grows with every
/// restart.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A seed for the node's random choices, from the OS.
fn entropy() -> u64 {
    // Without OS entropy the clock still tells two nodes apart.
    getrandom::u64().unwrap_or_else(|_| now_micros().rotate_left(29))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("fast").unwrap_err().contains("250ms"));
    }

    #[test]
    fn a_file_then_the_environment_then_setters_apply_in_order() {
        let b = Builder::new()
            .toml_str(
                "bind = \"127.0.0.1:7400\"\nseeds = [\"127.0.0.1:7401\"]\nname = \"a\"\ndown_after = \"3s\"\n",
                "test.toml",
            )
            .unwrap()
            .env_vars([
                ("DISPATCH_NAME".to_string(), "b".to_string()),
                ("DISPATCH_SEEDS".to_string(), "127.0.0.1:1, 127.0.0.1:2".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ])
            .unwrap()
            .request_timeout(Duration::from_millis(700));
        assert_eq!(b.bind, "127.0.0.1:7400");
        assert_eq!(b.name.as_deref(), Some("b"));
        assert_eq!(b.seeds, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(b.config.down_after, Duration::from_secs(3));
        assert_eq!(b.config.call_timeout, Duration::from_millis(700));
        b.check().unwrap();
    }

    #[test]
    fn the_example_file_sets_every_key() {
        let b = Builder::new()
            .toml_str(include_str!("../node.example.toml"), "node.example.toml")
            .unwrap();
        assert_eq!(
            (b.bind.as_str(), b.name.as_deref()),
            ("127.0.0.1:7400", Some("a"))
        );
        assert_eq!(b.config.down_after, Duration::from_secs(10));
        b.check().unwrap();
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_change() {
        let e = Builder::new()
            .toml_str("down_afer = \"3s\"", "x.toml")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.toml: unknown field `down_afer`"),
            "{e}"
        );
        let e = Builder::new()
            .env_vars([("DISPATCH_DOWN_AFTER".to_string(), "3".to_string())])
            .unwrap_err();
        assert!(
            e.to_string().contains("DISPATCH_DOWN_AFTER") && e.to_string().contains("unit"),
            "{e}"
        );
        let e = Builder::new()
            .heartbeat_period(Duration::from_secs(5))
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("raise down_after"), "{e}");
    }
}
