//! Chunked transfers: one encoded message larger than a datagram, split into
//! numbered chunks that survive loss.
//!
//! The sender keeps the encoded bytes of an [`Outgoing`] transfer and sends
//! every chunk once. The receiver assembles chunks in an [`Incoming`] buffer
//! whose size is checked against a limit before anything is allocated; when
//! chunks are missing it asks for exactly those ([`Incoming::missing`]), and
//! the sender resends only them. A transfer is never restarted because one
//! chunk was lost.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Why an [`Incoming`] transfer refused a chunk. The transfer is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The announced total length is zero or exceeds the receiver's limit.
    TooLarge {
        /// The length the sender announced.
        total_len: u32,
        /// The receiver's limit.
        limit: u32,
    },
    /// The chunk disagrees with the transfer's announced shape (total
    /// length, chunk size, position or length of this chunk).
    Inconsistent,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::TooLarge { total_len, limit } => write!(
                f,
                "transfer of {total_len} bytes refused: the limit is {limit} bytes"
            ),
            ChunkError::Inconsistent => {
                f.write_str("chunk does not match the transfer it claims to belong to")
            }
        }
    }
}

impl core::error::Error for ChunkError {}

/// Number of chunks needed to carry `total_len` bytes in chunks of
/// `chunk_size` bytes.
pub fn chunk_count(total_len: u32, chunk_size: u16) -> u32 {
    if chunk_size == 0 {
        return 0;
    }
    total_len.div_ceil(u32::from(chunk_size))
}

/// A transfer being sent: the encoded bytes and their chunking.
#[derive(Debug, Clone)]
pub struct Outgoing {
    id: u32,
    bytes: Vec<u8>,
    chunk_size: u16,
}

impl Outgoing {
    /// Splits `bytes` into chunks of at most `chunk_size` bytes.
    ///
    /// `chunk_size` must be at least 1; `bytes` must be shorter than 4 GiB.
    /// Both are the node's own choices, not network input.
    pub fn new(id: u32, bytes: Vec<u8>, chunk_size: u16) -> Self {
        debug_assert!(chunk_size > 0, "the node computes chunk_size from its MTU");
        debug_assert!(u32::try_from(bytes.len()).is_ok());
        Outgoing {
            id,
            bytes,
            chunk_size: chunk_size.max(1),
        }
    }

    /// The transfer's identifier.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Total length of the encoded message.
    pub fn total_len(&self) -> u32 {
        u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }

    /// The chunk size this transfer was split with.
    pub fn chunk_size(&self) -> u16 {
        self.chunk_size
    }

    /// Number of chunks.
    pub fn chunks(&self) -> u32 {
        chunk_count(self.total_len(), self.chunk_size)
    }

    /// The bytes of chunk `index`, or `None` past the last chunk.
    pub fn chunk(&self, index: u32) -> Option<&[u8]> {
        let size = usize::from(self.chunk_size);
        let start = usize::try_from(index).ok()?.checked_mul(size)?;
        if start >= self.bytes.len() {
            return None;
        }
        let end = (start + size).min(self.bytes.len());
        Some(&self.bytes[start..end])
    }
}

/// A transfer being received: a buffer of exactly the announced length and
/// a bitmap of the chunks seen.
#[derive(Debug, Clone)]
pub struct Incoming {
    id: u32,
    chunk_size: u16,
    buf: Vec<u8>,
    seen: Vec<u64>,
    remaining: u32,
}

impl Incoming {
    /// Starts assembling a transfer announced as `total_len` bytes in chunks
    /// of `chunk_size`, refusing it when longer than `limit`.
    pub fn new(id: u32, total_len: u32, chunk_size: u16, limit: u32) -> Result<Self, ChunkError> {
        if total_len == 0 || total_len > limit {
            return Err(ChunkError::TooLarge { total_len, limit });
        }
        if chunk_size == 0 {
            return Err(ChunkError::Inconsistent);
        }
        let chunks = chunk_count(total_len, chunk_size);
        let words = usize::try_from(chunks.div_ceil(64)).map_err(|_| ChunkError::Inconsistent)?;
        Ok(Incoming {
            id,
            chunk_size,
            buf: vec![0; total_len as usize],
            seen: vec![0; words],
            remaining: chunks,
        })
    }

    /// The transfer's identifier.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Announced total length.
    pub fn total_len(&self) -> u32 {
        self.buf.len() as u32
    }

    /// Chunk size the transfer was announced with.
    pub fn chunk_size(&self) -> u16 {
        self.chunk_size
    }

    /// Stores chunk `index`. Returns `Ok(true)` when it was new, `Ok(false)`
    /// for a duplicate. A chunk that does not fit the announced shape is
    /// refused and nothing is written.
    pub fn insert(
        &mut self,
        total_len: u32,
        chunk_size: u16,
        index: u32,
        data: &[u8],
    ) -> Result<bool, ChunkError> {
        if total_len != self.total_len() || chunk_size != self.chunk_size {
            return Err(ChunkError::Inconsistent);
        }
        let chunks = chunk_count(total_len, chunk_size);
        if index >= chunks {
            return Err(ChunkError::Inconsistent);
        }
        let start = index as usize * usize::from(chunk_size);
        let expected = (self.buf.len() - start).min(usize::from(chunk_size));
        if data.len() != expected {
            return Err(ChunkError::Inconsistent);
        }
        let (word, bit) = ((index / 64) as usize, index % 64);
        if self.seen[word] & (1 << bit) != 0 {
            return Ok(false);
        }
        self.seen[word] |= 1 << bit;
        self.buf[start..start + expected].copy_from_slice(data);
        self.remaining -= 1;
        Ok(true)
    }

    /// Whether every chunk has arrived.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Chunks still missing.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The assembled bytes, once complete.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        self.is_complete().then_some(self.buf)
    }

    /// The missing chunks as `(first, count)` runs, at most `max_runs` of
    /// them, lowest first: what a request for resending asks for.
    pub fn missing(&self, max_runs: usize) -> Vec<(u32, u32)> {
        let chunks = chunk_count(self.total_len(), self.chunk_size);
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut i = 0;
        while i < chunks {
            let word = self.seen[(i / 64) as usize];
            if word == u64::MAX && i % 64 == 0 {
                i += 64;
                continue;
            }
            if word & (1 << (i % 64)) == 0 {
                let full = runs.len() == max_runs;
                match runs.last_mut() {
                    Some((first, count)) if *first + *count == i => *count += 1,
                    _ if full => break,
                    _ => runs.push((i, 1)),
                }
            }
            i += 1;
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn lost_chunks_are_asked_for_and_resent_alone() {
        let out = Outgoing::new(9, payload(10_000), 1000);
        assert_eq!(out.chunks(), 10);
        let mut inc = Incoming::new(9, out.total_len(), 1000, 1 << 20).unwrap();
        for i in (0..10).filter(|i| *i != 3 && *i != 4 && *i != 8) {
            assert_eq!(inc.insert(10_000, 1000, i, out.chunk(i).unwrap()), Ok(true));
        }
        assert!(!inc.is_complete());
        assert_eq!(inc.missing(8), vec![(3, 2), (8, 1)]);
        assert_eq!(inc.missing(1), vec![(3, 2)]);
        for (first, count) in inc.missing(8) {
            for i in first..first + count {
                inc.insert(10_000, 1000, i, out.chunk(i).unwrap()).unwrap();
            }
        }
        assert_eq!(inc.into_bytes().unwrap(), payload(10_000));
    }

    #[test]
    fn duplicates_and_last_short_chunk() {
        let out = Outgoing::new(1, payload(2500), 1000);
        assert_eq!(out.chunk(2).unwrap().len(), 500);
        assert_eq!(out.chunk(3), None);
        let mut inc = Incoming::new(1, 2500, 1000, 4096).unwrap();
        assert_eq!(inc.insert(2500, 1000, 2, out.chunk(2).unwrap()), Ok(true));
        assert_eq!(inc.insert(2500, 1000, 2, out.chunk(2).unwrap()), Ok(false));
        assert_eq!(inc.remaining(), 2);
    }

    #[test]
    fn hostile_shapes_are_refused_without_writing() {
        assert_eq!(
            Incoming::new(1, 5000, 1000, 4096).unwrap_err(),
            ChunkError::TooLarge {
                total_len: 5000,
                limit: 4096
            }
        );
        assert!(Incoming::new(1, 0, 1000, 4096).is_err());
        assert!(Incoming::new(1, 100, 0, 4096).is_err());
        let mut inc = Incoming::new(1, 2500, 1000, 4096).unwrap();
        let e = Err(ChunkError::Inconsistent);
        assert_eq!(inc.insert(2500, 1000, 3, &[0; 500]), e);
        assert_eq!(inc.insert(2500, 1000, 0, &[0; 999]), e);
        assert_eq!(inc.insert(2500, 1000, 2, &[0; 1000]), e);
        assert_eq!(inc.insert(2600, 1000, 0, &[0; 1000]), e);
        assert_eq!(inc.insert(2500, 500, 0, &[0; 500]), e);
        assert_eq!(inc.remaining(), 3);
        assert_eq!(inc.missing(10), vec![(0, 3)]);
    }

    #[test]
    fn missing_skips_full_words_quickly_and_spans_them() {
        let total = 200 * 10;
        let out = Outgoing::new(2, payload(total), 10);
        let mut inc = Incoming::new(2, total as u32, 10, 1 << 20).unwrap();
        for i in 0..200 {
            if !(60..70).contains(&i) && i != 199 {
                inc.insert(total as u32, 10, i, out.chunk(i).unwrap())
                    .unwrap();
            }
        }
        assert_eq!(inc.missing(10), vec![(60, 10), (199, 1)]);
    }
}
