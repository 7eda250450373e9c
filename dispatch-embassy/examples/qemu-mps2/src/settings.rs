//! The device's settings, from QEMU's `-append` (semihosting
//! `SYS_GET_CMDLINE`): words `key=value`, each optional.
//!
//! | word | meaning | default |
//! |---|---|---|
//! | `name=N` | the node's name | `qemu-1` |
//! | `address=A/P` | the board's IPv4 address and prefix | `192.168.69.1/24` |
//! | `seed=A:P` | a server to join through (up to 4) | `192.168.69.100:7400` |
//! | `key=HEX` | the cluster key, 64 hex digits (key id 1) | none: in the clear |
//! | `heartbeat-ms=N` | the heartbeat period | the core's default |
//! | `down-ms=N` | silence after which a peer is down | the core's default |
//!
//! A word it does not know or a value it cannot read stops the firmware
//! with a message that names the word and what to write.

use alloc::format;
use alloc::string::{String, ToString};
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;

use dispatch_embassy_example_sensor::parse;
use embassy_net::Ipv4Cidr;

/// Where the settings come from, for messages.
const SOURCE: &str = "QEMU -append";

/// What the command line set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's name.
    pub name: String,
    /// The board's address.
    pub address: Ipv4Cidr,
    /// Servers to join through.
    pub seeds: heapless::Vec<SocketAddr, 4>,
    /// The cluster key, if the cluster is sealed.
    pub key: Option<[u8; 32]>,
    /// The heartbeat period, if set.
    pub heartbeat: Option<Duration>,
    /// The down period, if set.
    pub down_after: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            name: "qemu-1".to_string(),
            address: Ipv4Cidr::new(Ipv4Addr::new(192, 168, 69, 1), 24),
            seeds: heapless::Vec::new(),
            key: None,
            heartbeat: None,
            down_after: None,
        }
    }
}

impl Settings {
    /// Reads the words of `line`; the first, QEMU's path of the firmware,
    /// is skipped when it holds no `=`.
    pub fn parse(line: &str) -> Result<Settings, String> {
        let mut s = Settings::default();
        for (i, word) in line.split_ascii_whitespace().enumerate() {
            let Some((key, value)) = word.split_once('=') else {
                if i == 0 {
                    continue;
                }
                return Err(format!(
                    "{SOURCE}: {word:?} is not key=value; write e.g. seed=192.168.69.100:7400"
                ));
            };
            match key {
                "name" if !value.is_empty() => s.name = value.to_string(),
                "address" => s.address = parse_cidr(value)?,
                "seed" => {
                    let addr = value.parse().map_err(|_| {
                        format!("{SOURCE}: seed={value}: write an address and port, e.g. seed=192.168.69.100:7400")
                    })?;
                    s.seeds
                        .push(addr)
                        .map_err(|_| format!("{SOURCE}: seed={value}: at most 4 seeds"))?;
                }
                "key" => s.key = Some(parse_key(value)?),
                "heartbeat-ms" => s.heartbeat = Some(parse_ms(key, value)?),
                "down-ms" => s.down_after = Some(parse_ms(key, value)?),
                _ => {
                    return Err(format!(
                        "{SOURCE}: unknown setting {word:?}; the settings are name, address, seed, key, heartbeat-ms, down-ms"
                    ))
                }
            }
        }
        if s.seeds.is_empty() {
            let default = SocketAddr::from((Ipv4Addr::new(192, 168, 69, 100), 7400));
            let _ = s.seeds.push(default);
        }
        Ok(s)
    }
}

fn parse_cidr(v: &str) -> Result<Ipv4Cidr, String> {
    let (ip, prefix) = parse::cidr(v).ok_or_else(|| {
        format!(
            "{SOURCE}: address={v}: write an IPv4 address and prefix, e.g. address=192.168.69.1/24"
        )
    })?;
    Ok(Ipv4Cidr::new(ip, prefix))
}

fn parse_key(v: &str) -> Result<[u8; 32], String> {
    parse::key(v).ok_or_else(|| {
        format!(
            "{SOURCE}: key=: write the cluster key as 64 hex digits (got {} characters)",
            v.len()
        )
    })
}

fn parse_ms(key: &str, v: &str) -> Result<Duration, String> {
    v.parse()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{SOURCE}: {key}={v}: write a positive number of milliseconds"))
}

/// The command line QEMU was started with, through semihosting.
pub fn cmdline(buf: &mut [u8]) -> &str {
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most block[1] bytes at block[0],
    // which is `buf`, and the length it wrote into block[1].
    #[allow(unsafe_code)]
    let failed = unsafe {
        cortex_m_semihosting::syscall1(
            cortex_m_semihosting::nr::GET_CMDLINE,
            block.as_mut_ptr() as usize,
        )
    } != 0;
    if failed {
        return "";
    }
    let len = block[1].min(buf.len());
    core::str::from_utf8(&buf[..len]).unwrap_or("")
}
