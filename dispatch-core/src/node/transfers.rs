//! The transfers a node has in flight, in both directions, bounded in
//! number and size.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use crate::presence::ReplicaId;
use crate::time::Instant;
use crate::transfer::{Incoming, Outgoing};
use crate::wire::{ChunkHead, Message, TransferKind};

/// Most `(first, count)` runs one resend request names.
const MAX_RUNS: usize = 32;
/// Retry periods a sender keeps a fully sent transfer without hearing of it.
const SENDER_PATIENCE: u32 = 4;
/// Resend requests sent for one incoming transfer without progress before
/// it is abandoned (the receiver then asks for a fresh catch-up).
const MAX_RESENDS: u32 = 3;

#[derive(Debug)]
struct Sending<A> {
    to: A,
    kind: TransferKind,
    transfer: Outgoing,
    /// Chunks still to send, in order.
    queue: VecDeque<u32>,
    last_activity: Instant,
}

#[derive(Debug)]
struct Receiving<A> {
    from: A,
    kind: TransferKind,
    transfer: Incoming,
    last_progress: Instant,
    /// Resend requests sent since the last progress.
    resends: u32,
    /// When to ask for the missing chunks (again).
    next_ask: Instant,
}

/// Outgoing transfers keyed by identifier, incoming ones by sender name and
/// identifier.
#[derive(Debug)]
pub(crate) struct Transfers<A> {
    sending: BTreeMap<u32, Sending<A>>,
    receiving: BTreeMap<(Box<str>, u32), Receiving<A>>,
    max: usize,
    max_bytes: u32,
    /// Largest call transfer received.
    max_call_bytes: u32,
    /// How long to wait for chunks before asking for them.
    retry: Duration,
}

impl<A: Clone + Ord> Transfers<A> {
    pub(crate) fn new(max: usize, max_bytes: u32, max_call_bytes: u32, retry: Duration) -> Self {
        Transfers {
            sending: BTreeMap::new(),
            receiving: BTreeMap::new(),
            max,
            max_bytes,
            max_call_bytes,
            retry,
        }
    }

    /// Drops the sync transfers in flight to `to`.
    pub(crate) fn cancel_to(&mut self, to: &A) {
        self.sending
            .retain(|_, s| s.to != *to || s.kind != TransferKind::Sync);
    }

    /// Whether a sync transfer from the node named `name` is being received.
    pub(crate) fn receiving_from(&self, name: &str) -> bool {
        self.receiving
            .iter()
            .any(|((n, _), r)| **n == *name && r.kind == TransferKind::Sync)
    }

    /// Whether transfer `id` is still being sent or kept for resends.
    pub(crate) fn is_sending(&self, id: u32) -> bool {
        self.sending.contains_key(&id)
    }

    /// Queues the last chunk of transfer `id` again, so that a receiver
    /// that lost every chunk learns of the transfer and asks for the rest.
    pub(crate) fn probe(&mut self, now: Instant, id: u32) {
        if let Some(s) = self.sending.get_mut(&id) {
            let last = s.transfer.chunks().saturating_sub(1);
            if !s.queue.contains(&last) {
                s.queue.push_back(last);
            }
            s.last_activity = now;
        }
    }

    /// Stops sending transfer `id`.
    pub(crate) fn cancel(&mut self, id: u32) {
        self.sending.remove(&id);
    }

    /// Starts sending `bytes` to `to`. Refused (false) when too many
    /// transfers are in flight, when the bytes exceed the limit, or when the
    /// identifier is taken.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        to: A,
        kind: TransferKind,
        id: u32,
        bytes: Vec<u8>,
        chunk_size: u16,
    ) -> bool {
        if self.sending.contains_key(&id) || bytes.len() > self.max_bytes as usize {
            return false;
        }
        if self.sending.len() >= self.max {
            // Make room by forgetting the transfer quiet the longest, if all
            // its chunks went out: its receiver can ask for a new one.
            let idle = self
                .sending
                .iter()
                .filter(|(_, s)| s.queue.is_empty())
                .min_by_key(|(_, s)| s.last_activity)
                .map(|(&id, _)| id);
            match idle {
                Some(old) => {
                    self.sending.remove(&old);
                }
                None => return false,
            }
        }
        let transfer = Outgoing::new(id, bytes, chunk_size);
        let queue = (0..transfer.chunks()).collect();
        self.sending.insert(
            id,
            Sending {
                to,
                kind,
                transfer,
                queue,
                last_activity: now,
            },
        );
        true
    }

    /// The next chunk to send: its destination, header and bytes.
    pub(crate) fn next_chunk(&mut self) -> Option<(A, ChunkHead, Vec<u8>)> {
        for s in self.sending.values_mut() {
            while let Some(index) = s.queue.pop_front() {
                if let Some(data) = s.transfer.chunk(index) {
                    let head = ChunkHead {
                        transfer: s.transfer.id(),
                        kind: s.kind,
                        total_len: s.transfer.total_len(),
                        chunk_size: s.transfer.chunk_size(),
                        index,
                    };
                    return Some((s.to.clone(), head, data.to_vec()));
                }
            }
        }
        None
    }

    /// Queues the chunks `missing` names again; returns how many.
    pub(crate) fn resend(
        &mut self,
        now: Instant,
        from: &A,
        id: u32,
        missing: &[(u32, u32)],
    ) -> u64 {
        let Some(s) = self.sending.get_mut(&id) else {
            return 0;
        };
        if s.to != *from {
            return 0;
        }
        s.last_activity = now;
        let chunks = s.transfer.chunks();
        let mut n = 0;
        for &(first, count) in missing.iter().take(MAX_RUNS) {
            for index in first..first.saturating_add(count).min(chunks) {
                if !s.queue.contains(&index) {
                    s.queue.push_back(index);
                    n += 1;
                }
            }
        }
        n
    }

    /// The receiver has it all.
    pub(crate) fn done(&mut self, from: &A, id: u32) {
        if self.sending.get(&id).is_some_and(|s| s.to == *from) {
            self.sending.remove(&id);
        }
    }

    /// Stores a chunk. `Ok(Some(bytes))` when the transfer is complete,
    /// `Ok(None)` while it is not, `Err(())` for a chunk that does not fit
    /// (or would exceed the limits).
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        sender: &ReplicaId,
        from: &A,
        head: ChunkHead,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, ()> {
        let key = (sender.name.clone(), head.transfer);
        if !self.receiving.contains_key(&key) {
            let limit = match head.kind {
                TransferKind::Sync => {
                    // A sender has one sync transfer in flight to us: a new
                    // one replaces whatever it sent before.
                    self.receiving
                        .retain(|(name, _), r| *name != key.0 || r.kind != TransferKind::Sync);
                    self.max_bytes
                }
                // Calls in flight are many; each is bounded, and so is
                // their number.
                TransferKind::Call => self.max_call_bytes,
            };
            if self.receiving.len() >= self.max {
                return Err(());
            }
            let transfer = Incoming::new(head.transfer, head.total_len, head.chunk_size, limit)
                .map_err(|_| ())?;
            self.receiving.insert(
                key.clone(),
                Receiving {
                    from: from.clone(),
                    kind: head.kind,
                    transfer,
                    last_progress: now,
                    resends: 0,
                    next_ask: now + self.retry,
                },
            );
        }
        let r = self.receiving.get_mut(&key).ok_or(())?;
        if r.kind != head.kind {
            return Err(());
        }
        if r.transfer
            .insert(head.total_len, head.chunk_size, head.index, data)
            .map_err(|_| ())?
        {
            r.last_progress = now;
            r.resends = 0;
            r.next_ask = now + self.retry;
        }
        if r.transfer.is_complete() {
            let r = self.receiving.remove(&key).ok_or(())?;
            return Ok(r.transfer.into_bytes());
        }
        Ok(None)
    }

    /// Forgets everything exchanged with a peer that is gone.
    pub(crate) fn forget_peer_name(&mut self, name: &str) {
        self.receiving.retain(|(n, _), _| **n != *name);
    }

    /// Asks again for chunks that stopped coming, gives up on transfers that
    /// made no progress for `give_up` (or after a few requests), and forgets
    /// fully sent transfers nobody asked about for a few `retry` periods.
    /// Returns the requests to send (`Some`) and
    /// one `None` per abandoned incoming transfer.
    pub(crate) fn on_timeout<'m>(
        &mut self,
        now: Instant,
        retry: Duration,
        give_up: Duration,
        me: &ReplicaId,
    ) -> Vec<(A, Option<Message<'m, A>>)> {
        let mut out = Vec::new();
        self.receiving.retain(|_, r| {
            let idle = now.saturating_duration_since(r.last_progress);
            if idle >= give_up || r.resends >= MAX_RESENDS && now >= r.next_ask {
                out.push((r.from.clone(), None));
                return false;
            }
            if now >= r.next_ask {
                r.resends += 1;
                // Counted from now, so the next deadline is always ahead.
                r.next_ask = now + retry * (r.resends + 1);
                let missing = r.transfer.missing(MAX_RUNS);
                out.push((
                    r.from.clone(),
                    Some(Message::Resend {
                        from: me.clone(),
                        transfer: r.transfer.id(),
                        missing,
                    }),
                ));
            }
            true
        });
        // A receiver missing chunks asks within `retry`; one that stays
        // quiet for several retries has them all, or has given up.
        let keep = retry * SENDER_PATIENCE;
        self.sending.retain(|_, s| {
            !s.queue.is_empty() || now.saturating_duration_since(s.last_activity) < keep
        });
        out
    }

    /// When [`Transfers::on_timeout`] next has something to do.
    pub(crate) fn next_deadline(&self, retry: Duration) -> Option<Instant> {
        let rx = self.receiving.values().map(|r| r.next_ask);
        let tx = self
            .sending
            .values()
            .filter(|s| s.queue.is_empty())
            .map(|s| s.last_activity + retry * SENDER_PATIENCE);
        rx.chain(tx).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_millis(500);
    const GIVE_UP: Duration = Duration::from_secs(10);

    #[test]
    fn a_long_silence_never_leaves_a_deadline_behind() {
        // Found by the node_datagrams fuzz target: a deadline in the past
        // after handle_timeout keeps a driver spinning.
        let mut t: Transfers<u8> = Transfers::new(2, 1 << 20, 1 << 20, RETRY);
        let (me, peer) = (ReplicaId::new("me", 1), ReplicaId::new("p", 1));
        let head = ChunkHead {
            transfer: 1,
            kind: TransferKind::Sync,
            total_len: 2000,
            chunk_size: 1000,
            index: 0,
        };
        assert_eq!(
            t.receive(Instant::ZERO, &peer, &7, head, &[0; 1000]),
            Ok(None)
        );
        let now = Instant::from_millis(9000);
        let out = t.on_timeout(now, RETRY, GIVE_UP, &me);
        assert!(matches!(
            out[..],
            [(7, Some(Message::Resend { transfer: 1, .. }))]
        ));
        assert!(t.next_deadline(RETRY).unwrap() > now);
    }

    #[test]
    fn a_stalled_transfer_is_abandoned_after_a_few_requests() {
        let mut t: Transfers<u8> = Transfers::new(2, 1 << 20, 1 << 20, RETRY);
        let (me, peer) = (ReplicaId::new("me", 1), ReplicaId::new("p", 1));
        let head = ChunkHead {
            transfer: 1,
            kind: TransferKind::Sync,
            total_len: 2000,
            chunk_size: 1000,
            index: 0,
        };
        t.receive(Instant::ZERO, &peer, &7, head, &[0; 1000])
            .unwrap();
        let mut requests = 0;
        let mut abandoned = false;
        while let Some(at) = t.next_deadline(RETRY) {
            for (_, msg) in t.on_timeout(at, RETRY, GIVE_UP, &me) {
                match msg {
                    Some(_) => requests += 1,
                    None => abandoned = true,
                }
            }
        }
        assert_eq!(requests, MAX_RESENDS);
        assert!(abandoned && !t.receiving_from("p"));
    }
}
