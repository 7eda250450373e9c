//! Reading the settings every device takes, whatever its source (flags on
//! Linux, QEMU's `-append` on the emulated board); the caller says where a
//! value came from when it refuses one.

use core::net::Ipv4Addr;

/// An IPv4 address and prefix, `192.168.69.1/24`.
pub fn cidr(v: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = v.split_once('/')?;
    let prefix = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((ip.parse().ok()?, prefix))
}

/// A cluster key: 64 hex digits.
pub fn key(v: &str) -> Option<[u8; 32]> {
    if v.len() != 64 || !v.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}
