//! What travels to one peer over request-response, and its bounded codec.
//!
//! A request is a [`Frame`]: one of the core's datagrams (a greeting, a
//! catch-up, a transfer chunk, a call or its reply), or the cluster peers
//! the sender can reach, so that a node that came in through one seed
//! connects to every member. The response is empty: it only tells the
//! sender the frame arrived, and the core does its own recovery.
//!
//! Everything read is bounded before it is buffered: a frame longer than
//! [`Limits::max_frame_bytes`] fails its stream, a response is never
//! longer than zero bytes, and a peer list holds at most
//! [`MAX_LISTED_PEERS`] peers of [`MAX_LISTED_ADDRS`] addresses each.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use crate::stats::SharedStats;

/// The request-response protocol of Dispatch.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/dispatch/1");

/// Most peers a peer list carries; the rest are left out.
pub const MAX_LISTED_PEERS: usize = 256;

/// Most addresses listed for one peer.
pub const MAX_LISTED_ADDRS: usize = 8;

const TAG_DATAGRAM: u8 = 0;
const TAG_PEERS: u8 = 1;

/// A request: what one peer sends another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One of the core's datagrams, as it wrote them.
    Datagram(Vec<u8>),
    /// Cluster peers the sender knows how to reach.
    Peers(Vec<(PeerId, Vec<Multiaddr>)>),
}

/// The bounds the codec enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest frame read, tag byte included.
    pub max_frame_bytes: usize,
}

/// The bounded codec of [`Frame`]s. The response carries nothing.
#[derive(Debug, Clone)]
pub struct Codec {
    limits: Limits,
    stats: SharedStats,
}

impl Codec {
    /// A codec that reads frames of at most `limits.max_frame_bytes`, and
    /// counts the requests it refuses in `stats` (request-response reports
    /// a failed read to nobody).
    pub fn new(limits: Limits, stats: SharedStats) -> Self {
        Codec { limits, stats }
    }
}

impl Frame {
    /// The frame's bytes on a stream.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Frame::Datagram(bytes) => {
                let mut out = Vec::with_capacity(1 + bytes.len());
                out.push(TAG_DATAGRAM);
                out.extend_from_slice(bytes);
                out
            }
            Frame::Peers(peers) => {
                let listed: Vec<(Vec<u8>, Vec<Vec<u8>>)> = peers
                    .iter()
                    .take(MAX_LISTED_PEERS)
                    .map(|(id, addrs)| {
                        let addrs = addrs.iter().take(MAX_LISTED_ADDRS).map(|a| a.to_vec());
                        (id.to_bytes(), addrs.collect())
                    })
                    .collect();
                let mut out = vec![TAG_PEERS];
                // Encoding plain vectors of bytes cannot fail.
                out.extend(postcard::to_stdvec(&listed).unwrap_or_default());
                out
            }
        }
    }

    /// Decodes a frame read whole. A peer list's undecodable entries are
    /// an error; entries past the limits are left out.
    pub fn decode(bytes: &[u8]) -> io::Result<Frame> {
        match bytes.split_first() {
            Some((&TAG_DATAGRAM, body)) => Ok(Frame::Datagram(body.to_vec())),
            Some((&TAG_PEERS, body)) => {
                let listed: Vec<(Vec<u8>, Vec<Vec<u8>>)> =
                    postcard::from_bytes(body).map_err(|e| invalid(format!("peer list: {e}")))?;
                let mut peers = Vec::with_capacity(listed.len().min(MAX_LISTED_PEERS));
                for (id, addrs) in listed.into_iter().take(MAX_LISTED_PEERS) {
                    let id = PeerId::from_bytes(&id)
                        .map_err(|e| invalid(format!("peer list: peer id: {e}")))?;
                    let mut parsed = Vec::with_capacity(addrs.len().min(MAX_LISTED_ADDRS));
                    for a in addrs.into_iter().take(MAX_LISTED_ADDRS) {
                        parsed.push(
                            Multiaddr::try_from(a)
                                .map_err(|e| invalid(format!("peer list: address: {e}")))?,
                        );
                    }
                    peers.push((id, parsed));
                }
                Ok(Frame::Peers(peers))
            }
            Some((tag, _)) => Err(invalid(format!("unknown frame tag {tag}"))),
            None => Err(invalid("empty frame".into())),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads `io` to its end, refusing more than `max` bytes.
async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    // One byte past the limit tells an oversized frame from one that fits.
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    io.take(limit).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(invalid(format!("frame longer than {max} bytes")));
    }
    Ok(buf)
}

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = match read_bounded(io, self.limits.max_frame_bytes).await {
            Ok(bytes) => Frame::decode(&bytes),
            Err(e) => Err(e),
        };
        if frame
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::InvalidData)
        {
            self.stats.count(|s| s.requests_refused += 1);
        }
        frame
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_bounded(io, 0).await.map(|_| ())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frame: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&frame.encode()).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use request_response::Codec as _;

    fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    #[test]
    fn frames_round_trip() {
        let datagram = Frame::Datagram(vec![1, 2, 3]);
        assert_eq!(Frame::decode(&datagram.encode()).unwrap(), datagram);
        let peers = Frame::Peers(vec![(
            peer(),
            vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
        )]);
        assert_eq!(Frame::decode(&peers.encode()).unwrap(), peers);
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for junk in [
            &[][..],
            &[9, 1, 2],
            &[TAG_PEERS, 0xff, 0xff, 0xff],
            &[TAG_PEERS, 1, 3, 1, 2, 3, 0],
        ] {
            assert!(Frame::decode(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn long_peer_lists_are_cut_to_the_limits() {
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        let many = Frame::Peers(
            (0..MAX_LISTED_PEERS + 10)
                .map(|_| (peer(), vec![addr.clone(); MAX_LISTED_ADDRS + 3]))
                .collect(),
        );
        let Frame::Peers(back) = Frame::decode(&many.encode()).unwrap() else {
            panic!("a peer list decodes to a peer list");
        };
        assert_eq!(back.len(), MAX_LISTED_PEERS);
        assert!(back.iter().all(|(_, a)| a.len() == MAX_LISTED_ADDRS));
    }

    #[tokio::test]
    async fn an_oversized_request_fails_its_stream() {
        let stats = SharedStats::default();
        let mut codec = Codec::new(
            Limits {
                max_frame_bytes: 16,
            },
            stats.clone(),
        );
        let fits = Frame::Datagram(vec![7; 15]).encode();
        let read = codec
            .read_request(&PROTOCOL, &mut futures::io::Cursor::new(fits))
            .await
            .unwrap();
        assert_eq!(read, Frame::Datagram(vec![7; 15]));
        let long = Frame::Datagram(vec![7; 16]).encode();
        let e = codec
            .read_request(&PROTOCOL, &mut futures::io::Cursor::new(long))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("longer than 16"), "{e}");
        assert_eq!(stats.get().requests_refused, 1);
        let e = codec
            .read_response(&PROTOCOL, &mut futures::io::Cursor::new(vec![1]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
