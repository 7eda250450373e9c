//! The wire format: a fixed [`header`] followed by one postcard-encoded
//! [`Message`].
//!
//! Every message names its sender ([`ReplicaId`]: node name and
//! incarnation), so a receiver can tell a restarted node from its old self
//! and ignore what an older incarnation still has in flight. Messages are
//! encoded straight into the caller's buffer and decoded without copying
//! chunk payloads.

pub mod header;
pub mod seal;

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::presence::{Delta, Extract, ReplicaId};

pub use header::{Header, HEADER_LEN, MAGIC, VERSION};
pub use seal::{open, Framing, Opened, SEAL_OVERHEAD};

/// Why a datagram could not be decoded or a message not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than the header.
    Truncated,
    /// Does not start with Dispatch's magic bytes.
    NotDispatch,
    /// Speaks a wire version this build does not.
    UnsupportedVersion(u8),
    /// Belongs to another cluster (its identifier is given).
    ForeignCluster(u32),
    /// The body does not decode as a message, or has bytes left over.
    Malformed,
    /// The message does not fit in the buffer (or the MTU) it was meant for.
    BufferTooSmall,
    /// In the clear, to a node that holds a keyring.
    Unsealed,
    /// Sealed with a key id the receiver does not hold (retired, not yet
    /// added, or the receiver has no keyring).
    UnknownKey(u8),
    /// Sealed, but the tag does not verify: forged, altered in transit,
    /// sealed with another key under the same id, or written for another
    /// incarnation of the receiver.
    BadTag,
    /// In the clear, written for another incarnation of the receiver (the
    /// one given): sent before it restarted.
    NotForUs(u64),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("datagram shorter than the Dispatch header"),
            WireError::NotDispatch => f.write_str("datagram is not a Dispatch message"),
            WireError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "wire version {v} is not supported (this build speaks {VERSION})"
                )
            }
            WireError::ForeignCluster(c) => write!(f, "datagram belongs to cluster {c:#010x}"),
            WireError::Malformed => f.write_str("message body does not decode"),
            WireError::BufferTooSmall => f.write_str("message does not fit in the buffer"),
            WireError::Unsealed => {
                f.write_str("datagram in the clear, and this node accepts sealed ones only")
            }
            WireError::UnknownKey(id) => write!(
                f,
                "datagram sealed with key {id}, which this node does not hold"
            ),
            WireError::BadTag => f.write_str("sealed datagram does not authenticate"),
            WireError::NotForUs(to) => {
                write!(f, "datagram was written for incarnation {to} of this node")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// One protocol message. `A` is the transport's peer address, gossiped so
/// that nodes discover each other through their peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Deserialize<'de>, 'de: 'a"))]
pub enum Message<'a, A> {
    /// Periodic proof of life, and the sender's own presence clock so the
    /// receiver notices what it lacks.
    Heartbeat(Heartbeat<A>),
    /// Addresses of the sender's peers, sent to a node that asked for them.
    Peers {
        /// The sender.
        from: ReplicaId,
        /// Known peers and where they listen.
        peers: Vec<PeerInfo<A>>,
    },
    /// Changes to the sender's own entries, pushed as soon as they happen.
    Delta {
        /// The sender.
        from: ReplicaId,
        /// The sender's operations over a contiguous clock range.
        #[serde(borrow)]
        delta: Delta<'a>,
    },
    /// "I know your entries up to `have`: send me what I lack."
    CatchUp {
        /// The sender.
        from: ReplicaId,
        /// The clock of the receiver's replica that the sender has merged.
        have: u64,
    },
    /// One chunk of a transfer too large for a datagram.
    Chunk {
        /// The sender.
        from: ReplicaId,
        /// Chunk metadata.
        head: ChunkHead,
        /// The chunk's bytes.
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// The receiver of a transfer asks for these chunks again.
    Resend {
        /// The sender (the transfer's receiver).
        from: ReplicaId,
        /// The transfer.
        transfer: u32,
        /// Missing chunks as `(first, count)` runs.
        missing: Vec<(u32, u32)>,
    },
    /// The receiver of a transfer has it all; the sender may forget it.
    TransferDone {
        /// The sender (the transfer's receiver).
        from: ReplicaId,
        /// The transfer.
        transfer: u32,
    },
    /// The sender is leaving the cluster for good: drop its entries now.
    Leave {
        /// The sender.
        from: ReplicaId,
    },
    /// A call or cast for one of the receiver's instances, when it fits one
    /// datagram (larger ones travel as a [`TransferBody::Request`]).
    Request {
        /// The caller.
        from: ReplicaId,
        /// The request.
        #[serde(borrow)]
        request: CallRequest<'a>,
    },
    /// "I have your request `call`." Answers every copy of a cast, and the
    /// copies of a call that arrive while it is being handled: the caller
    /// then sends it again less often.
    RequestAck {
        /// The receiver of the request.
        from: ReplicaId,
        /// The caller's call number.
        call: u64,
    },
    /// The answer to a call (larger ones travel as a
    /// [`TransferBody::Reply`]).
    Reply {
        /// The node that handled the call.
        from: ReplicaId,
        /// The caller's call number.
        call: u64,
        /// The handler's reply, or why there is none.
        #[serde(borrow)]
        outcome: Outcome<'a>,
    },
}

impl<A> Message<'_, A> {
    /// The node that sent this message.
    pub fn from(&self) -> &ReplicaId {
        match self {
            Message::Heartbeat(h) => &h.from,
            Message::Peers { from, .. }
            | Message::Delta { from, .. }
            | Message::CatchUp { from, .. }
            | Message::Chunk { from, .. }
            | Message::Resend { from, .. }
            | Message::TransferDone { from, .. }
            | Message::Leave { from }
            | Message::Request { from, .. }
            | Message::RequestAck { from, .. }
            | Message::Reply { from, .. } => from,
        }
    }
}

/// The body of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat<A> {
    /// The sender.
    pub from: ReplicaId,
    /// Increases with every heartbeat of this incarnation; a heartbeat that
    /// does not increase it is a replay and is dropped.
    pub seq: u64,
    /// The sender's clock for its own entries.
    pub clock: u64,
    /// The sender wants the receiver's peer list (it is joining).
    pub want_peers: bool,
    /// A few of the sender's peers, in rotation, so membership spreads.
    pub peers: Vec<PeerInfo<A>>,
}

/// A peer and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo<A> {
    /// The peer's name and incarnation.
    pub id: ReplicaId,
    /// Its address on the transport.
    pub addr: A,
}

/// A request to one instance, as it travels (in a datagram or a transfer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRequest<'a> {
    /// The caller's number for this call, increasing within its incarnation.
    pub call: u64,
    /// The service type.
    #[serde(borrow)]
    pub ty: &'a str,
    /// The instance's id on the receiving node.
    #[serde(borrow)]
    pub id: &'a str,
    /// Milliseconds the caller still waits for the answer.
    pub budget_ms: u32,
    /// A cast: no reply is expected.
    pub cast: bool,
    /// Every call of the caller numbered below this is finished on its side
    /// (answered, timed out or abandoned): the receiver may forget them and
    /// ignore late copies.
    pub done_below: u64,
    /// The application's request.
    #[serde(borrow)]
    pub payload: &'a [u8],
}

/// What a node answers to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<'a> {
    /// The handler's reply.
    #[serde(borrow)]
    Replied(&'a [u8]),
    /// The request was refused before reaching a handler.
    Refused(Refusal),
}

/// Why a node refused a request without handing it to a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No such instance on this node: it left, or never was.
    NoSuchInstance,
    /// The request or the reply exceeds the limit, given in bytes.
    TooLarge(u32),
    /// Too many requests are being handled on this node.
    Busy,
}

/// What a transfer is for: keeping the presence set in sync (one at a time
/// per sender; a new one replaces the last) or carrying a large call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// A catch-up: a delta generation or an extract.
    Sync,
    /// A request or a reply.
    Call,
}

/// Identifies one chunk of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkHead {
    /// The transfer, chosen by its sender.
    pub transfer: u32,
    /// What the transfer is for.
    pub kind: TransferKind,
    /// Length of the whole encoded [`TransferBody`].
    pub total_len: u32,
    /// Size of every chunk but the last.
    pub chunk_size: u16,
    /// This chunk's position.
    pub index: u32,
}

/// What a transfer carries once reassembled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferBody<'a> {
    /// A delta too large for one datagram.
    #[serde(borrow)]
    Delta(Delta<'a>),
    /// An extract of the sender's entries the receiver lacks.
    #[serde(borrow)]
    Extract(Extract<'a>),
    /// A request too large for one datagram.
    #[serde(borrow)]
    Request(CallRequest<'a>),
    /// A reply too large for one datagram.
    Reply {
        /// The caller's call number.
        call: u64,
        /// The reply.
        #[serde(borrow)]
        outcome: Outcome<'a>,
    },
}

/// Encodes `msg` for `cluster` into `buf` in the clear and addressed to
/// no one, returning the length written.
pub fn encode<A: Serialize>(
    msg: &Message<'_, A>,
    cluster: u32,
    buf: &mut [u8],
) -> Result<usize, WireError> {
    encode_framed(
        msg,
        &Framing {
            cluster,
            to: None,
            seal: None,
        },
        buf,
    )
}

/// Encodes `msg` into `buf` and frames it as `framing` says (sealing it in
/// place when it names a key), returning the datagram's length.
pub fn encode_framed<A: Serialize>(
    msg: &Message<'_, A>,
    framing: &Framing<'_>,
    buf: &mut [u8],
) -> Result<usize, WireError> {
    let start = framing.body_start();
    let room = buf
        .len()
        .checked_sub(framing.overhead())
        .ok_or(WireError::BufferTooSmall)?;
    let body = encode_body(msg, &mut buf[start..start + room])?;
    framing.close(buf, body)
}

/// Encodes the body of `msg` (no header) into `buf`, returning its length.
pub fn encode_body<A: Serialize>(msg: &Message<'_, A>, buf: &mut [u8]) -> Result<usize, WireError> {
    postcard::to_slice(msg, buf)
        .map(|b| b.len())
        .map_err(|_| WireError::BufferTooSmall)
}

/// Decodes a datagram for `cluster` in the clear (addressed or not). Chunk
/// payloads borrow from `datagram`. Sealed datagrams are opened with
/// [`open`] first, then their body decoded with [`decode_body`].
pub fn decode<'a, A: Deserialize<'a>>(
    datagram: &'a [u8],
    cluster: u32,
) -> Result<Message<'a, A>, WireError> {
    let header = Header::read(datagram, cluster)?;
    if let Some(id) = header.key {
        return Err(WireError::UnknownKey(id));
    }
    let start = HEADER_LEN + if header.addressed { seal::TO_LEN } else { 0 };
    decode_body(datagram.get(start..).ok_or(WireError::Truncated)?)
}

/// Decodes the body of a datagram (what follows its frame).
pub fn decode_body<'a, A: Deserialize<'a>>(body: &'a [u8]) -> Result<Message<'a, A>, WireError> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::Malformed);
    }
    Ok(msg)
}

/// Encodes a transfer body.
pub fn encode_transfer(body: &TransferBody<'_>) -> Result<Vec<u8>, WireError> {
    postcard::to_allocvec(body).map_err(|_| WireError::BufferTooSmall)
}

/// Decodes a reassembled transfer body.
pub fn decode_transfer(bytes: &[u8]) -> Result<TransferBody<'_>, WireError> {
    let (body, rest) = postcard::take_from_bytes(bytes).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::Malformed);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::{Config, Meta, Presence};
    use alloc::vec;

    fn round_trip(msg: &Message<'_, u16>) -> usize {
        let mut buf = [0u8; 1200];
        let len = encode(msg, 7, &mut buf).unwrap();
        let back: Message<'_, u16> = decode(&buf[..len], 7).unwrap();
        assert_eq!(&back, msg);
        len
    }

    #[test]
    fn every_message_kind_round_trips() {
        let from = ReplicaId::new("node-a", 3);
        let mut set = Presence::new(from.clone(), Config::default()).unwrap();
        set.add("uploader", "u1", Meta::online(0, b"x")).unwrap();
        let delta = set.take_delta().unwrap();
        let heartbeat = Message::Heartbeat(Heartbeat {
            from: from.clone(),
            seq: 9,
            clock: 1,
            want_peers: true,
            peers: vec![PeerInfo {
                id: ReplicaId::new("b", 1),
                addr: 4,
            }],
        });
        // A heartbeat is small: a few dozen bytes per peer per period.
        assert!(round_trip(&heartbeat) < 60);
        round_trip(&Message::Delta {
            from: from.clone(),
            delta,
        });
        round_trip(&Message::CatchUp {
            from: from.clone(),
            have: 5,
        });
        let head = ChunkHead {
            transfer: 1,
            kind: TransferKind::Call,
            total_len: 3,
            chunk_size: 2,
            index: 1,
        };
        round_trip(&Message::Chunk {
            from: from.clone(),
            head,
            data: &[1, 2],
        });
        round_trip(&Message::Resend {
            from: from.clone(),
            transfer: 1,
            missing: vec![(0, 2)],
        });
        round_trip(&Message::TransferDone {
            from: from.clone(),
            transfer: 1,
        });
        round_trip(&Message::Peers {
            from: from.clone(),
            peers: Vec::new(),
        });
        let request = CallRequest {
            call: 7,
            ty: "uploader",
            id: "u1",
            budget_ms: 5000,
            cast: false,
            done_below: 3,
            payload: b"file.png",
        };
        round_trip(&Message::Request {
            from: from.clone(),
            request: request.clone(),
        });
        round_trip(&Message::RequestAck {
            from: from.clone(),
            call: 7,
        });
        round_trip(&Message::Reply {
            from: from.clone(),
            call: 7,
            outcome: Outcome::Replied(b"ok"),
        });
        round_trip(&Message::Reply {
            from: from.clone(),
            call: 7,
            outcome: Outcome::Refused(Refusal::TooLarge(1 << 20)),
        });
        round_trip(&Message::Leave { from });
        let body = TransferBody::Request(request);
        assert_eq!(
            decode_transfer(&encode_transfer(&body).unwrap()).unwrap(),
            body
        );
    }

    #[test]
    fn trailing_bytes_and_truncation_are_malformed() {
        let msg: Message<'_, u16> = Message::Leave {
            from: ReplicaId::new("a", 1),
        };
        let mut buf = [0u8; 64];
        let len = encode(&msg, 1, &mut buf).unwrap();
        assert_eq!(decode::<u16>(&buf[..len + 1], 1), Err(WireError::Malformed));
        assert_eq!(decode::<u16>(&buf[..len - 1], 1), Err(WireError::Malformed));
        assert_eq!(
            encode(&msg, 1, &mut buf[..9]),
            Err(WireError::BufferTooSmall)
        );
    }

    #[test]
    fn transfer_bodies_round_trip() {
        let mut set = Presence::new(ReplicaId::new("a", 1), Config::default()).unwrap();
        for i in 0..200 {
            set.add("t", &alloc::format!("i{i}"), Meta::online(i, b""))
                .unwrap();
        }
        let body = TransferBody::Extract(set.extract(&crate::presence::Context::default()));
        let bytes = encode_transfer(&body).unwrap();
        assert!(bytes.len() > 1200, "large enough to need chunks");
        assert_eq!(decode_transfer(&bytes).unwrap(), body);
        assert_eq!(
            decode_transfer(&bytes[..bytes.len() - 1]),
            Err(WireError::Malformed)
        );
    }
}
