//! Framing a message body into a datagram, sealed with the cluster key or
//! in the clear, and opening one.
//!
//! A datagram is the [`header`](super::header), then:
//!
//! | sealed (key id ≠ 0) | in the clear (key id 0) |
//! |---|---|
//! | 12-byte nonce, little-endian | the receiver's incarnation, 8 bytes little-endian, if addressed |
//! | the body, encrypted in place | the body |
//! | 16-byte Poly1305 tag | |
//!
//! A sealed datagram is ChaCha20-Poly1305 with the header as associated
//! data, followed (when the header says it is addressed) by the receiver's
//! incarnation, which is authenticated but not sent: a datagram written for
//! an earlier incarnation of the receiver fails its tag, so what was
//! captured before a node restarted cannot be replayed to it afterwards.
//!
//! # Nonces
//!
//! A sender's nonces are a 96-bit counter that starts, for each incarnation,
//! at a point derived from its name and incarnation ([`nonce_start`]) and
//! grows by one per sealed datagram. Two senders with distinct names, or
//! one sender in two incarnations, start 2^64-scale distances apart, so a
//! nonce never repeats under a key as long as no two processes ever run
//! with the same name and incarnation: a board must give every boot a new
//! incarnation (a counter kept in flash, bumped before the node starts, or
//! a clock that never goes back), never a constant.

use core::ops::Range;

use chacha20poly1305::{AeadInPlace, Nonce, Tag};

use super::header::{Header, HEADER_LEN};
use super::WireError;
use crate::keyring::{Key, Keyring};

/// Length of the nonce of a sealed datagram.
pub const NONCE_LEN: usize = 12;
/// Length of the tag of a sealed datagram.
pub const TAG_LEN: usize = 16;
/// Length of the receiver's incarnation in an addressed datagram in the
/// clear.
pub const TO_LEN: usize = 8;
/// What sealing adds to a datagram: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Numbers the datagrams below 2^96 stay in: a start below 2^95 leaves
/// 2^95 datagrams before the counter could wrap.
const NONCE_MASK: u128 = (1 << 95) - 1;

/// How a datagram is framed.
#[derive(Debug, Clone, Copy)]
pub struct Framing<'k> {
    /// The cluster identifier in the header.
    pub cluster: u32,
    /// The incarnation of the receiver it is written for, when known.
    pub to: Option<u64>,
    /// The key and nonce that seal it; `None` in the clear.
    pub seal: Option<(&'k Key, u128)>,
}

impl Framing<'_> {
    /// Where the body starts in the datagram.
    pub fn body_start(&self) -> usize {
        HEADER_LEN
            + match (self.seal.is_some(), self.to.is_some()) {
                (true, _) => NONCE_LEN,
                (false, true) => TO_LEN,
                (false, false) => 0,
            }
    }

    /// Bytes of the datagram beyond its body.
    pub fn overhead(&self) -> usize {
        self.body_start() + if self.seal.is_some() { TAG_LEN } else { 0 }
    }

    /// Writes the header and the rest of the frame around the `body_len`
    /// body bytes the caller put at [`Framing::body_start`] in `buf`,
    /// sealing them in place; returns the datagram's length.
    pub fn close(&self, buf: &mut [u8], body_len: usize) -> Result<usize, WireError> {
        let start = self.body_start();
        let total = self.overhead() + body_len;
        if buf.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        let header = Header {
            cluster: self.cluster,
            key: self.seal.map(|(k, _)| k.id()),
            addressed: self.to.is_some(),
        };
        header.write(buf)?;
        match self.seal {
            None => {
                if let Some(to) = self.to {
                    buf[HEADER_LEN..start].copy_from_slice(&to.to_le_bytes());
                }
            }
            Some((key, nonce)) => {
                let nonce = nonce_bytes(nonce);
                buf[HEADER_LEN..start].copy_from_slice(&nonce);
                let aad = associated_data(&buf[..HEADER_LEN], self.to);
                let (aad, aad_len) = aad;
                let body = &mut buf[start..start + body_len];
                let tag = key
                    .cipher()
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad[..aad_len], body)
                    .map_err(|_| WireError::BufferTooSmall)?;
                buf[start + body_len..total].copy_from_slice(&tag);
            }
        }
        Ok(total)
    }
}

/// A datagram that opened: where its body is, and what its frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The body's bytes in the buffer (decrypted in place when sealed).
    pub body: Range<usize>,
    /// The sender's nonce, when sealed.
    pub nonce: Option<u128>,
    /// Written for the receiver's current incarnation.
    pub addressed: bool,
}

/// Opens `datagram` in place for a receiver of `cluster` holding `keyring`
/// (none: it speaks in the clear) in incarnation `me`. A keyed receiver
/// refuses datagrams in the clear and those sealed with a key it does not
/// hold; a datagram whose tag does not verify (forged, altered, sealed with
/// another key under the same id, or addressed to another incarnation of
/// the receiver) is refused and left unread.
pub fn open(
    datagram: &mut [u8],
    cluster: u32,
    keyring: Option<&Keyring>,
    me: u64,
) -> Result<Opened, WireError> {
    let header = Header::read(datagram, cluster)?;
    match (header.key, keyring) {
        (None, Some(_)) => Err(WireError::Unsealed),
        (None, None) => {
            let mut start = HEADER_LEN;
            if header.addressed {
                let to = datagram
                    .get(HEADER_LEN..HEADER_LEN + TO_LEN)
                    .ok_or(WireError::Truncated)?;
                let mut raw = [0u8; TO_LEN];
                raw.copy_from_slice(to);
                let to = u64::from_le_bytes(raw);
                if to != me {
                    return Err(WireError::NotForUs(to));
                }
                start += TO_LEN;
            }
            Ok(Opened {
                body: start..datagram.len(),
                nonce: None,
                addressed: header.addressed,
            })
        }
        (Some(id), ring) => {
            let key = ring
                .and_then(|r| r.get(id))
                .ok_or(WireError::UnknownKey(id))?;
            let start = HEADER_LEN + NONCE_LEN;
            if datagram.len() < start + TAG_LEN {
                return Err(WireError::Truncated);
            }
            let end = datagram.len() - TAG_LEN;
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(&datagram[HEADER_LEN..start]);
            let tag = *Tag::from_slice(&datagram[end..]);
            let (aad, aad_len) =
                associated_data(&datagram[..HEADER_LEN], header.addressed.then_some(me));
            key.cipher()
                .decrypt_in_place_detached(
                    Nonce::from_slice(&nonce),
                    &aad[..aad_len],
                    &mut datagram[start..end],
                    &tag,
                )
                .map_err(|_| WireError::BadTag)?;
            let mut wide = [0u8; 16];
            wide[..NONCE_LEN].copy_from_slice(&nonce);
            Ok(Opened {
                body: start..end,
                nonce: Some(u128::from_le_bytes(wide)),
                addressed: header.addressed,
            })
        }
    }
}

/// Where the nonces of `name` in `incarnation` start (below 2^95).
pub fn nonce_start(name: &str, incarnation: u64) -> u128 {
    let hi = crate::presence::hash::Keyed::new(incarnation).bytes(name.as_bytes());
    let lo = crate::presence::hash::Keyed::new(!incarnation ^ 0x5EA1_ED00_0000_0001)
        .bytes(name.as_bytes());
    (u128::from(hi) << 64 | u128::from(lo)) & NONCE_MASK
}

fn nonce_bytes(n: u128) -> [u8; NONCE_LEN] {
    let mut out = [0u8; NONCE_LEN];
    out.copy_from_slice(&n.to_le_bytes()[..NONCE_LEN]);
    out
}

fn associated_data(header: &[u8], to: Option<u64>) -> ([u8; HEADER_LEN + TO_LEN], usize) {
    let mut aad = [0u8; HEADER_LEN + TO_LEN];
    aad[..HEADER_LEN].copy_from_slice(header);
    match to {
        Some(to) => {
            aad[HEADER_LEN..].copy_from_slice(&to.to_le_bytes());
            (aad, HEADER_LEN + TO_LEN)
        }
        None => (aad, HEADER_LEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: u8, byte: u8) -> Keyring {
        Keyring::new(Key::new(id, [byte; 32]).unwrap())
    }

    fn sealed(key: &Key, to: Option<u64>, nonce: u128, body: &[u8]) -> alloc::vec::Vec<u8> {
        let framing = Framing {
            cluster: 9,
            to,
            seal: Some((key, nonce)),
        };
        let mut buf = alloc::vec![0u8; 200];
        let start = framing.body_start();
        buf[start..start + body.len()].copy_from_slice(body);
        let len = framing.close(&mut buf, body.len()).unwrap();
        buf.truncate(len);
        buf
    }

    #[test]
    fn a_sealed_datagram_opens_under_its_key_only() {
        let keys = ring(3, 0x33);
        let d = sealed(keys.primary(), None, 77, b"hello");
        assert_eq!(d.len(), HEADER_LEN + SEAL_OVERHEAD + 5);
        assert!(
            !d.windows(5).any(|w| w == b"hello"),
            "the body is encrypted"
        );
        let mut copy = d.clone();
        let opened = open(&mut copy, 9, Some(&keys), 1).unwrap();
        assert_eq!(&copy[opened.body.clone()], b"hello");
        assert_eq!(opened.nonce, Some(77));
        assert!(!opened.addressed);
        // The same id with other key bytes, and an unknown id.
        assert_eq!(
            open(&mut d.clone(), 9, Some(&ring(3, 0x44)), 1),
            Err(WireError::BadTag)
        );
        assert_eq!(
            open(&mut d.clone(), 9, Some(&ring(4, 0x33)), 1),
            Err(WireError::UnknownKey(3))
        );
        assert_eq!(
            open(&mut d.clone(), 9, None, 1),
            Err(WireError::UnknownKey(3))
        );
        // Every flipped bit fails, the header's too (the cluster id aside,
        // which fails before).
        for bit in 0..d.len() * 8 {
            let mut bad = d.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&mut bad, 9, Some(&keys), 1).is_err(), "bit {bit}");
        }
        assert_eq!(
            open(&mut d[..HEADER_LEN + 20].to_vec(), 9, Some(&keys), 1),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn an_addressed_datagram_opens_for_that_incarnation_only() {
        let keys = ring(1, 0x11);
        let d = sealed(keys.primary(), Some(500), 1, b"x");
        assert_eq!(
            d.len(),
            HEADER_LEN + SEAL_OVERHEAD + 1,
            "the address is not sent"
        );
        assert!(open(&mut d.clone(), 9, Some(&keys), 500).unwrap().addressed);
        assert_eq!(
            open(&mut d.clone(), 9, Some(&keys), 501),
            Err(WireError::BadTag)
        );
        // In the clear the incarnation travels and is checked.
        let framing = Framing {
            cluster: 9,
            to: Some(500),
            seal: None,
        };
        let mut buf = [0u8; 32];
        buf[framing.body_start()] = 42;
        let len = framing.close(&mut buf, 1).unwrap();
        let opened = open(&mut buf[..len], 9, None, 500).unwrap();
        assert_eq!(buf[opened.body], [42]);
        assert_eq!(
            open(&mut buf[..len], 9, None, 7),
            Err(WireError::NotForUs(500))
        );
        assert_eq!(
            open(&mut buf[..len], 9, Some(&keys), 500),
            Err(WireError::Unsealed)
        );
    }

    #[test]
    fn nonce_starts_differ_by_name_and_incarnation() {
        let a = nonce_start("a", 1);
        assert!(a <= NONCE_MASK);
        assert_ne!(a, nonce_start("b", 1));
        assert_ne!(a, nonce_start("a", 2));
        assert_eq!(a, nonce_start("a", 1));
    }
}
