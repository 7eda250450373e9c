//! A string-keyed index split into shards that grow one at a time: each
//! replica's index of its entries by id.
//!
//! One big hash table doubles in one go: a merge that brings as many
//! entries as the set holds rehashes the whole table at once, into a fresh
//! block twice its size whose pages are all touched for the first time, and
//! every move misses the cache. Split by the top bits of the stored hash,
//! each shard grows on its own: a growth rehashes a shard's worth of slots
//! that fits in cache, the block an old shard frees can hold a later one's,
//! the pause of a single growth stays short, and no block is ever larger
//! than a shard (which matters on small devices). A bulk merge makes room
//! in every shard at once and hands its slots over in rounds
//! ([`Index::insert_batch`]), each shard taking its group while it is in
//! cache.
//!
//! A small index is one shard, so that an empty or small set pays for one
//! table only; past [`SPLIT_AT`] slots it is split once into [`SHARDS`].
//! Sixty-four shards keep a shard of a set of a few hundred thousand entries
//! within the first-level cache; 32 and 128 measured alike on a bulk merge,
//! 256 a little slower.

use alloc::vec::Vec;
use hashbrown::HashTable;

use super::store::{spread, Slot};

/// The number of shards of an index past [`SPLIT_AT`] slots.
const SHARDS: usize = 64;

/// An index that would hold more slots than this is split into shards.
const SPLIT_AT: usize = 2048;

/// A hash index of [`Slot`]s, keyed by their stored 32-bit hash.
///
/// The shard of a slot is chosen by the top bits of its hash. The table
/// hash within a shard is [`spread`] of the hash, whose low bits (the bucket
/// index) depend only on the low bits of the hash: within a shard they stay
/// uniform.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// No shard (nothing was ever inserted), one, or [`SHARDS`].
    shards: Vec<HashTable<Slot>>,
}

/// The slots a [`Batch`] gathers before [`Index::insert_batch`] takes
/// them: its groups are sized for this many, and reused.
pub(crate) const ROUND: usize = 16384;

/// Slots to insert at once with [`Index::insert_batch`], grouped by shard.
#[derive(Debug)]
pub(crate) struct Batch {
    groups: Vec<Vec<Slot>>,
    len: usize,
}

impl Batch {
    /// Adds a slot.
    #[inline]
    pub(crate) fn push(&mut self, s: Slot) {
        let n = self.groups.len();
        self.groups[shard_of(s.1, n)].push(s);
        self.len += 1;
    }

    /// Whether it holds a round's worth of slots: hand them to the index.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len >= ROUND
    }
}

/// The table hash of a slot, to rehash it.
#[inline]
fn rehash(s: &Slot) -> u64 {
    spread(s.1)
}

/// The shard, of `n`, of hash `h`: its top bits.
#[inline]
fn shard_of(h: u32, n: usize) -> usize {
    ((u64::from(h) * n as u64) >> 32) as usize
}

/// Room to reserve in each of [`SHARDS`] shards for `n` more uniformly hashed
/// slots: the mean share plus four standard deviations, so that a merge
/// seldom grows a shard midway (and if it does, only that shard).
fn share(n: usize) -> usize {
    let mean = n.div_ceil(SHARDS);
    mean + 4 * mean.isqrt() + 4
}

impl Index {
    /// The number of slots.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    /// Splits a single shard into [`SHARDS`], with room for `extra` more
    /// slots.
    fn split(&mut self, extra: usize) {
        let old = core::mem::take(&mut self.shards);
        let n = old.iter().map(HashTable::len).sum::<usize>() + extra;
        self.shards = (0..SHARDS)
            .map(|_| HashTable::with_capacity(share(n)))
            .collect();
        for table in old {
            for s in table {
                self.shards[shard_of(s.1, SHARDS)].insert_unique(spread(s.1), s, rehash);
            }
        }
    }

    /// Makes room for `n` more slots.
    pub(crate) fn reserve(&mut self, n: usize) {
        if self.shards.len() < SHARDS && self.len() + n > SPLIT_AT {
            self.split(n);
        } else if self.shards.len() == SHARDS {
            let each = share(n);
            for t in &mut self.shards {
                t.reserve(each, rehash);
            }
        } else if n > 0 {
            if self.shards.is_empty() {
                self.shards.push(HashTable::new());
            }
            self.shards[0].reserve(n, rehash);
        }
    }

    /// An empty batch for `n` slots to insert, grouped by shard as they
    /// come, a round of at most [`ROUND`] at a time. The index makes room
    /// for all `n` first (an index that will need shards is split, so that
    /// the groups match its shards).
    pub(crate) fn batch(&mut self, n: usize) -> Batch {
        self.reserve(n);
        let k = self.shards.len().max(1);
        let round = n.min(ROUND);
        let each = if k == 1 { round } else { share(round) };
        Batch {
            groups: (0..k).map(|_| Vec::with_capacity(each)).collect(),
            len: 0,
        }
    }

    /// Inserts the slots of a batch, known to be absent, shard by shard,
    /// and empties it for the next round: each shard takes its group while
    /// it is in cache. Inserted one by one between other work, each slot
    /// would miss the cache twice (control byte and bucket) in a table as
    /// large as the whole index. Rounds keep the groups small and reuse
    /// them, so that a large batch costs few fresh pages of its own.
    pub(crate) fn insert_batch(&mut self, b: &mut Batch) {
        b.len = 0;
        if self.shards.is_empty() {
            self.shards.push(HashTable::new());
        }
        if b.groups.len() != self.shards.len() {
            // The index was split since the batch was made.
            for g in &mut b.groups {
                for s in g.drain(..) {
                    self.insert_unique(s);
                }
            }
            return;
        }
        for (t, g) in self.shards.iter_mut().zip(&mut b.groups) {
            t.reserve(g.len(), rehash);
            for s in g.drain(..) {
                t.insert_unique(spread(s.1), s, rehash);
            }
        }
    }

    /// Inserts a slot known to be absent.
    #[inline]
    pub(crate) fn insert_unique(&mut self, s: Slot) {
        if self.shards.len() < SHARDS {
            match self.shards.first() {
                None => self.shards.push(HashTable::new()),
                Some(t) if t.len() >= SPLIT_AT => self.split(1),
                Some(_) => {}
            }
        }
        let n = self.shards.len();
        self.shards[shard_of(s.1, n)].insert_unique(spread(s.1), s, rehash);
    }

    /// The table of hash `h`, if any.
    #[inline]
    fn table(&self, h: u32) -> Option<&HashTable<Slot>> {
        self.shards.get(shard_of(h, self.shards.len()))
    }

    /// The slots that may have hash `h` (and some others).
    pub(crate) fn iter_hash(&self, h: u32) -> impl Iterator<Item = &Slot> + '_ {
        self.table(h)
            .into_iter()
            .flat_map(move |t| t.iter_hash(spread(h)))
    }

    /// Removes the first slot of hash `h` that `eq` accepts, if any.
    pub(crate) fn remove(&mut self, h: u32, eq: impl FnMut(&Slot) -> bool) -> Option<Slot> {
        let n = self.shards.len();
        let t = self.shards.get_mut(shard_of(h, n))?;
        t.find_entry(spread(h), eq).ok().map(|e| e.remove().0)
    }
}

#[cfg(test)]
mod tests {
    use super::{shard_of, spread, Index, SHARDS, SPLIT_AT};
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// A deterministic stream of pseudo-random hashes.
    fn hashes(n: usize) -> Vec<u32> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u32
            })
            .collect()
    }

    /// The slots of `ix` with hash `h`, sorted.
    fn of(ix: &Index, h: u32) -> Vec<u32> {
        let mut v: Vec<u32> = ix.iter_hash(h).filter(|s| s.1 == h).map(|s| s.0).collect();
        v.sort_unstable();
        v
    }

    /// `ix` holds exactly the slots of the model (index to hash).
    fn check(ix: &Index, model: &BTreeMap<u32, u32>) {
        assert_eq!(ix.len(), model.len());
        let mut by_hash: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (&i, &h) in model {
            by_hash.entry(h).or_default().push(i);
        }
        for (h, is) in by_hash {
            assert_eq!(of(ix, h), is, "hash {h:#x}");
        }
        let mut all: Vec<(u32, u32)> = ix.shards.iter().flat_map(|t| t.iter().copied()).collect();
        all.sort_unstable();
        let want: Vec<(u32, u32)> = model.iter().map(|(&i, &h)| (i, h)).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn agrees_with_a_model_across_growths_batches_and_removals() {
        let mut ix = Index::default();
        let mut model: BTreeMap<u32, u32> = BTreeMap::new();
        assert_eq!(ix.iter_hash(1).count(), 0);
        assert_eq!(ix.remove(1, |_| true), None);
        // Every seventh slot shares its hash with the one before.
        let mut hs = hashes(60_000);
        for k in (7..hs.len()).step_by(7) {
            hs[k] = hs[k - 1];
        }
        let mut next = 0usize;
        let mut add = |ix: &mut Index, model: &mut BTreeMap<u32, u32>, n: usize, how: u8| {
            let slots: Vec<(u32, u32)> = (next..next + n).map(|i| (i as u32, hs[i])).collect();
            next += n;
            match how {
                0 => slots.iter().for_each(|&s| ix.insert_unique(s)),
                1 => {
                    ix.reserve(n);
                    slots.iter().for_each(|&s| ix.insert_unique(s));
                }
                _ => {
                    let mut b = ix.batch(n);
                    for &s in &slots {
                        b.push(s);
                        if b.is_full() {
                            ix.insert_batch(&mut b);
                        }
                    }
                    ix.insert_batch(&mut b);
                }
            }
            model.extend(slots);
        };
        // One by one past the split, a small batch into one shard, then
        // reserves and batches that grow every shard.
        add(&mut ix, &mut model, 100, 2);
        assert_eq!(ix.shards.len(), 1);
        add(&mut ix, &mut model, SPLIT_AT, 0);
        assert_eq!(ix.shards.len(), SHARDS);
        check(&ix, &model);
        add(&mut ix, &mut model, 5_000, 1);
        add(&mut ix, &mut model, 20_000, 2);
        check(&ix, &model);
        // Removals by hash and index, with misses.
        let present: Vec<(u32, u32)> = model.iter().map(|(&i, &h)| (i, h)).collect();
        for &(i, h) in present.iter().step_by(3) {
            assert_eq!(ix.remove(h, |s| s.0 == i), Some((i, h)));
            assert_eq!(ix.remove(h, |s| s.0 == i), None);
            model.remove(&i);
        }
        check(&ix, &model);
        add(&mut ix, &mut model, 30_000, 2);
        add(&mut ix, &mut model, 500, 1);
        check(&ix, &model);
    }

    #[test]
    fn small_indexes_are_one_shard_and_large_batches_split_them() {
        let mut ix = Index::default();
        ix.reserve(0);
        assert!(ix.shards.is_empty(), "reserving nothing allocates nothing");
        for (i, &h) in hashes(100).iter().enumerate() {
            ix.insert_unique((i as u32, h));
        }
        assert_eq!(ix.shards.len(), 1);
        let hs = hashes(100 + SPLIT_AT);
        let mut b = ix.batch(SPLIT_AT);
        assert_eq!(ix.shards.len(), SHARDS);
        // A batch made for one shard still goes in if the index is split
        // meanwhile.
        let mut small = Index::default();
        let mut one = small.batch(10);
        for (i, &h) in hs[..100 + SPLIT_AT].iter().enumerate() {
            b.push((i as u32, h));
            small.insert_unique((i as u32, h));
        }
        for (i, &h) in hashes(10).iter().enumerate() {
            one.push((1_000_000 + i as u32, h));
        }
        ix.insert_batch(&mut b);
        assert_eq!(ix.len(), 200 + SPLIT_AT);
        assert_eq!(small.shards.len(), SHARDS);
        small.insert_batch(&mut one);
        assert_eq!(small.len(), 110 + SPLIT_AT);
        assert_eq!(of(&small, hashes(1)[0]), [0, 1_000_000]);
    }

    #[test]
    fn shards_are_even_and_buckets_within_a_shard_too() {
        // 64 shards by the top bits; within each, the low bits of the table
        // hash (the bucket index of a 256-bucket shard) stay uniform.
        let n = 1 << 20;
        let mut per_shard = [0u32; SHARDS];
        let mut buckets = alloc::vec![0u32; SHARDS * 256];
        for h in hashes(n) {
            let s = shard_of(h, SHARDS);
            per_shard[s] += 1;
            buckets[s * 256 + (spread(h) & 255) as usize] += 1;
        }
        let mean = (n / SHARDS) as u32;
        for &c in &per_shard {
            assert!(c.abs_diff(mean) < mean / 20, "{c} vs {mean}");
        }
        // Chi-squared of the buckets: about its degrees of freedom, far
        // within six of its standard deviations.
        let mean = u64::from(mean / 256);
        let chi2: u64 = buckets
            .iter()
            .map(|&c| u64::from(c).abs_diff(mean).pow(2))
            .sum::<u64>()
            / mean;
        let df = (buckets.len() - 1) as u64;
        assert!(chi2.abs_diff(df) < 6 * (2 * df).isqrt(), "{chi2} vs {df}");
    }
}
