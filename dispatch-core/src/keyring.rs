//! The cluster keyring: the keys a node seals its datagrams with and
//! accepts datagrams under.
//!
//! A keyring holds one primary key, which seals everything the node sends,
//! and up to [`MAX_SECONDARY_KEYS`] secondary keys it also accepts. Each key
//! has an id (1 to [`MAX_KEY_ID`]) that travels in every datagram's header,
//! so a receiver picks the right key without trying them all. Keys rotate
//! without downtime in three steps, each done on every node before the
//! next begins:
//!
//! 1. add the new key as a secondary key everywhere: nodes still seal with
//!    the old one and now accept both;
//! 2. make the new key the primary and the old one a secondary everywhere:
//!    nodes seal with the new key and still accept the old one from nodes
//!    not yet switched;
//! 3. remove the old key everywhere: datagrams sealed with it are refused
//!    from then on.
//!
//! [`Node::set_keyring`](crate::node::Node::set_keyring) changes a running
//! node's keyring.

use core::fmt;

use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

/// Most secondary keys a keyring holds besides its primary.
pub const MAX_SECONDARY_KEYS: usize = 3;
/// Largest key id (ids are 1 to this; 0 means "in the clear" on the wire).
pub const MAX_KEY_ID: u8 = 127;
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// One 256-bit ChaCha20-Poly1305 key and its id. Its `Debug` shows the id
/// only.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    id: u8,
    bytes: [u8; KEY_LEN],
}

impl Key {
    /// The key `bytes` under `id` (1 to [`MAX_KEY_ID`]). Keys must be
    /// random: make them with a cryptographic random source, never from a
    /// password.
    pub fn new(id: u8, bytes: [u8; KEY_LEN]) -> Result<Key, KeyringError> {
        if id == 0 || id > MAX_KEY_ID {
            return Err(KeyringError::BadId(id));
        }
        Ok(Key { id, bytes })
    }

    /// The id that travels in the header of datagrams it seals.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The key's bytes, to write them to a key file.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.bytes.into())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key {{ id: {}, .. }}", self.id)
    }
}

/// A primary key and the secondary keys also accepted. See the
/// [module docs](self) for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    primary: Key,
    secondary: heapless::Vec<Key, MAX_SECONDARY_KEYS>,
}

impl Keyring {
    /// A keyring of `primary` alone.
    pub fn new(primary: Key) -> Keyring {
        Keyring {
            primary,
            secondary: heapless::Vec::new(),
        }
    }

    /// Also accepts datagrams sealed with `key`. Refuses an id already in
    /// the ring and more than [`MAX_SECONDARY_KEYS`] secondary keys.
    pub fn with_secondary(mut self, key: Key) -> Result<Keyring, KeyringError> {
        if self.get(key.id).is_some() {
            return Err(KeyringError::DuplicateId(key.id));
        }
        self.secondary
            .push(key)
            .map_err(|_| KeyringError::TooManyKeys)?;
        Ok(self)
    }

    /// The key that seals what the node sends.
    pub fn primary(&self) -> &Key {
        &self.primary
    }

    /// The keys accepted besides the primary.
    pub fn secondary(&self) -> &[Key] {
        &self.secondary
    }

    /// The key with `id`, primary or secondary.
    pub fn get(&self, id: u8) -> Option<&Key> {
        core::iter::once(&self.primary)
            .chain(self.secondary.iter())
            .find(|k| k.id == id)
    }
}

/// Why a key or keyring was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringError {
    /// A key id outside 1 to [`MAX_KEY_ID`].
    BadId(u8),
    /// Two keys with one id.
    DuplicateId(u8),
    /// More than [`MAX_SECONDARY_KEYS`] secondary keys.
    TooManyKeys,
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::BadId(id) => {
                write!(f, "key id {id} is out of range: give each key an id from 1 to {MAX_KEY_ID}")
            }
            KeyringError::DuplicateId(id) => {
                write!(f, "two keys have id {id}: give each key its own id")
            }
            KeyringError::TooManyKeys => write!(
                f,
                "more than {MAX_SECONDARY_KEYS} secondary keys: remove retired keys before adding new ones"
            ),
        }
    }
}

impl core::error::Error for KeyringError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_finds_its_keys_and_refuses_bad_ones() {
        let ring = Keyring::new(Key::new(2, [2; 32]).unwrap())
            .with_secondary(Key::new(1, [1; 32]).unwrap())
            .unwrap();
        assert_eq!(ring.primary().id(), 2);
        assert_eq!(ring.get(1).map(|k| k.bytes()[0]), Some(1));
        assert!(ring.get(3).is_none());
        assert_eq!(Key::new(0, [0; 32]), Err(KeyringError::BadId(0)));
        assert_eq!(Key::new(128, [0; 32]), Err(KeyringError::BadId(128)));
        assert_eq!(
            ring.clone().with_secondary(Key::new(2, [9; 32]).unwrap()),
            Err(KeyringError::DuplicateId(2))
        );
        let full = ring
            .with_secondary(Key::new(3, [3; 32]).unwrap())
            .and_then(|r| r.with_secondary(Key::new(4, [4; 32]).unwrap()))
            .unwrap();
        assert_eq!(
            full.with_secondary(Key::new(5, [5; 32]).unwrap()),
            Err(KeyringError::TooManyKeys)
        );
        assert_eq!(
            alloc::format!("{:?}", Key::new(7, [0xAB; 32]).unwrap()),
            "Key { id: 7, .. }"
        );
    }
}
