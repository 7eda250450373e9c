//! The pending delta and the delta generations of our own replica.
//!
//! A window remembers only where it starts and which dots older than its
//! start were removed since. Its adds are not copied: they are exactly our
//! live entries with a clock after the start (an add removed inside the
//! window cancels out by itself), read from the set when the delta is built.
//! So recording an operation costs O(1) per window and no allocation of
//! entry data.

use alloc::vec::Vec;

use super::delta::Delta;
use super::{Presence, ME};

/// A compacted delta of our operations since `start`.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Our clock when the window (re)started.
    pub(crate) start: u64,
    /// Operations recorded since `start`.
    ops: u64,
    /// Operations after which the window restarts empty.
    cap: u64,
    /// Dots `<= start` removed since `start`, in removal order.
    removes: Vec<u64>,
}

impl Window {
    pub(crate) fn new(cap: u64) -> Self {
        Window {
            start: 0,
            ops: 0,
            cap,
            removes: Vec::new(),
        }
    }

    /// Called before each local operation, with the clock before it. A full
    /// window restarts empty at that clock.
    pub(crate) fn before_op(&mut self, clock: u64) {
        if self.ops >= self.cap {
            self.restart(clock);
        }
        self.ops += 1;
    }

    /// Records that the operation removed `dot`.
    pub(crate) fn removed(&mut self, dot: u64) {
        if dot <= self.start {
            self.removes.push(dot);
        }
    }

    fn restart(&mut self, clock: u64) {
        self.start = clock;
        self.ops = 0;
        self.removes.clear();
    }

    fn is_empty(&self) -> bool {
        self.ops == 0
    }
}

impl Presence {
    /// Returns the local operations since the last call as one delta and
    /// starts a new one; `None` if there were none. Push it to the peers
    /// promptly; it borrows the set until then.
    pub fn take_delta(&mut self) -> Option<Delta<'_>> {
        if self.pending.is_empty() {
            return None;
        }
        let end = self.clock();
        let start = self.pending.start;
        let mut removes = core::mem::take(&mut self.pending.removes);
        self.pending.restart(end);
        removes.sort_unstable();
        Some(self.build_delta(start, end, removes))
    }

    /// The smallest delta generation that brings a peer which has our
    /// replica at clock `peer_has` up to date, or `None` when no generation
    /// reaches back that far (send an [`Extract`](super::Extract) instead).
    /// A peer already up to date gets an empty delta.
    pub fn catch_up(&self, peer_has: u64) -> Option<Delta<'_>> {
        let end = self.clock();
        if peer_has >= end {
            return Some(self.build_delta(end, end, Vec::new()));
        }
        let w = self
            .generations
            .iter()
            .filter(|w| w.start <= peer_has)
            .max_by_key(|w| w.start)?;
        let mut removes = w.removes.clone();
        removes.sort_unstable();
        Some(self.build_delta(w.start, end, removes))
    }

    fn build_delta(&self, start: u64, end: u64, removes: Vec<u64>) -> Delta<'_> {
        let adds = self
            .alive_in_range(ME, start, end)
            .into_iter()
            .map(|i| self.wire(i))
            .collect();
        Delta {
            replica: self.me().clone(),
            start,
            end,
            adds,
            removes,
        }
    }
}
