//! The fixed header in front of every datagram.
//!
//! Seven bytes, read before anything is decoded, so that a datagram from
//! another program, from an incompatible version or from another cluster
//! sharing the network is dropped cheaply and counted:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `b"DS"` |
//! | 2 | wire version ([`VERSION`]) |
//! | 3..7 | cluster identifier, little-endian `u32` |

use super::WireError;

/// The magic bytes every Dispatch datagram starts with.
pub const MAGIC: [u8; 2] = *b"DS";
/// The wire version this build speaks.
pub const VERSION: u8 = 1;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 7;

/// Writes the header for `cluster` into the start of `buf`, which the caller
/// guarantees holds at least [`HEADER_LEN`] bytes.
pub(crate) fn write(buf: &mut [u8], cluster: u32) -> Result<(), WireError> {
    let head = buf.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
    head[..2].copy_from_slice(&MAGIC);
    head[2] = VERSION;
    head[3..7].copy_from_slice(&cluster.to_le_bytes());
    Ok(())
}

/// Checks the header of `datagram` for `cluster` and returns the body.
pub(crate) fn read(datagram: &[u8], cluster: u32) -> Result<&[u8], WireError> {
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
    Ok(&datagram[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let mut buf = [0u8; 9];
        write(&mut buf, 0xABCD_0102).unwrap();
        buf[7] = 42;
        assert_eq!(read(&buf[..8], 0xABCD_0102), Ok(&[42u8][..]));
        assert_eq!(read(&buf, 7), Err(WireError::ForeignCluster(0xABCD_0102)));
        assert_eq!(read(&buf[..6], 0xABCD_0102), Err(WireError::Truncated));
        let mut other = buf;
        other[2] = 9;
        assert_eq!(
            read(&other, 0xABCD_0102),
            Err(WireError::UnsupportedVersion(9))
        );
        other[0] = b'X';
        assert_eq!(read(&other, 0xABCD_0102), Err(WireError::NotDispatch));
        assert_eq!(write(&mut [0u8; 3], 1), Err(WireError::BufferTooSmall));
    }
}
