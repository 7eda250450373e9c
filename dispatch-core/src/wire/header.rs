//! The fixed header in front of every datagram.
//!
//! Eight bytes, read before anything is decoded, so that a datagram from
//! another program, from an incompatible version or from another cluster
//! sharing the network is dropped cheaply and counted:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `b"DS"` |
//! | 2 | wire version ([`VERSION`]) |
//! | 3..7 | cluster identifier, little-endian `u32` |
//! | 7 | bit 7: addressed to one incarnation of the receiver; bits 0..7: the key id that sealed the datagram, 0 when it travels in the clear |
//!
//! The whole header is authenticated as associated data when the datagram is
//! sealed (see [`seal`](super::seal)).

use super::WireError;

/// The magic bytes every Dispatch datagram starts with.
pub const MAGIC: [u8; 2] = *b"DS";
/// The wire version this build speaks.
pub const VERSION: u8 = 2;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 8;

const ADDRESSED: u8 = 0x80;

/// What the header of a datagram says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The cluster it belongs to.
    pub cluster: u32,
    /// The key id that sealed it (1..=127); `None` in the clear.
    pub key: Option<u8>,
    /// It carries the incarnation of the receiver it was written for.
    pub addressed: bool,
}

impl Header {
    /// Writes the header into the start of `buf`.
    pub(crate) fn write(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let head = buf.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
        head[..2].copy_from_slice(&MAGIC);
        head[2] = VERSION;
        head[3..7].copy_from_slice(&self.cluster.to_le_bytes());
        head[7] = self.key.unwrap_or(0) & !ADDRESSED | if self.addressed { ADDRESSED } else { 0 };
        Ok(())
    }

    /// Reads the header of `datagram`, refusing another program's, another
    /// version's and another cluster's.
    pub(crate) fn read(datagram: &[u8], cluster: u32) -> Result<Header, WireError> {
        if datagram.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if datagram[..2] != MAGIC {
            return Err(WireError::NotDispatch);
        }
        if datagram[2] != VERSION {
            return Err(WireError::UnsupportedVersion(datagram[2]));
        }
        let theirs = u32::from_le_bytes([datagram[3], datagram[4], datagram[5], datagram[6]]);
        if theirs != cluster {
            return Err(WireError::ForeignCluster(theirs));
        }
        let key = datagram[7] & !ADDRESSED;
        Ok(Header {
            cluster,
            key: (key != 0).then_some(key),
            addressed: datagram[7] & ADDRESSED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let mut buf = [0u8; 9];
        let head = Header {
            cluster: 0xABCD_0102,
            key: Some(5),
            addressed: true,
        };
        head.write(&mut buf).unwrap();
        assert_eq!(Header::read(&buf, 0xABCD_0102), Ok(head));
        assert_eq!(
            Header::read(&buf, 7),
            Err(WireError::ForeignCluster(0xABCD_0102))
        );
        assert_eq!(
            Header::read(&buf[..7], 0xABCD_0102),
            Err(WireError::Truncated)
        );
        let mut other = buf;
        other[2] = 9;
        assert_eq!(
            Header::read(&other, 0xABCD_0102),
            Err(WireError::UnsupportedVersion(9))
        );
        other[0] = b'X';
        assert_eq!(
            Header::read(&other, 0xABCD_0102),
            Err(WireError::NotDispatch)
        );
        assert_eq!(head.write(&mut [0u8; 3]), Err(WireError::BufferTooSmall));
        let clear = Header {
            cluster: 1,
            key: None,
            addressed: false,
        };
        clear.write(&mut buf).unwrap();
        assert_eq!(Header::read(&buf, 1), Ok(clear));
    }
}
