//! Extracts: what a peer lacks of our state, for transfers.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::delta::{check_increasing, Target};
use super::entries::Entries;
use super::error::MergeError;
use super::replica::ReplicaId;
use super::{Presence, Summary};

/// What a node knows: the clock it has for each replica. Nodes put it in
/// heartbeats and transfer requests; [`Presence::extract`] answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Each known replica with our clock for it, sorted by name.
    pub replicas: Vec<(ReplicaId, u64)>,
}

impl Context {
    /// The clock this context has for `id`, if it knows that exact incarnation.
    pub fn clock_of(&self, id: &ReplicaId) -> Option<u64> {
        self.replicas.iter().find(|(r, _)| r == id).map(|&(_, c)| c)
    }
}

/// The state of one replica that a peer lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaExtract<'a> {
    /// The replica.
    pub replica: ReplicaId,
    /// The sender's clock for it.
    pub clock: u64,
    /// The peer's clock for it when the extract was made (0 if unknown).
    pub since: u64,
    /// Live entries with a clock in `(since, clock]`, by increasing clock.
    #[serde(borrow)]
    pub entries: Entries<'a>,
    /// Clocks `<= since` of the live entries, increasing.
    pub alive_before: Vec<u64>,
}

/// What a peer lacks of the sender's state, one section per replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extract<'a> {
    /// The sections, one per replica.
    #[serde(borrow)]
    pub replicas: Vec<ReplicaExtract<'a>>,
}

impl Presence {
    /// Merges an extract and returns the diff.
    ///
    /// For each section, with our clock `c` for its replica: nothing happens
    /// if `c >= clock`. Otherwise our entries with clocks `<= since` missing
    /// from `alive_before` and those in `(since, c]` missing from `entries`
    /// are removed, entries after `c` are inserted, and `c` becomes `clock`.
    ///
    /// A section from an older incarnation than we know is skipped and
    /// counted in [`Summary::stale`]. A section whose `since` is after `c`
    /// (made for a state of ours we no longer have, after a purge) cannot be
    /// applied exactly, because `alive_before` says nothing of the clocks in
    /// `(c, since]`: it is skipped and counted in [`Summary::gaps`]. A section
    /// naming our own replica (same or newer incarnation), malformed data or
    /// a passed limit refuses the whole extract: the set is unchanged.
    pub fn merge_extract(&mut self, x: &Extract<'_>) -> Result<Summary, MergeError> {
        let mut names: Vec<&str> = x.replicas.iter().map(|s| &*s.replica.name).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(MergeError::DuplicateReplica);
        }
        let mut plans: Vec<Plan> = Vec::with_capacity(x.replicas.len());
        let (mut stale, mut gaps, mut new_replicas) = (0, 0, 0usize);
        // Entries the plans add and remove, over every section.
        let (mut adds, mut frees) = (0usize, 0usize);
        for (n, sec) in x.replicas.iter().enumerate() {
            let target = self.resolve(&sec.replica, false)?;
            if sec.since > sec.clock {
                return Err(MergeError::BadRange {
                    start: sec.since,
                    end: sec.clock,
                });
            }
            let Some(target) = target else {
                stale += 1;
                continue;
            };
            let c = target.clock();
            if matches!(target, Target::Known(..)) && c >= sec.clock {
                continue;
            }
            if c < sec.since {
                gaps += 1;
                continue;
            }
            // Sections we skip are not read further, so they need no more checks.
            let runs = self.check_entries(&sec.entries, sec.since, sec.clock)?;
            check_increasing(&sec.alive_before, 0, sec.since)?;
            let max = self.config.max_entries_per_replica;
            if sec.alive_before.len() > max as usize {
                return Err(MergeError::TooManyEntries { max });
            }
            if matches!(target, Target::New) {
                new_replicas += 1;
            }
            let mut doomed = Vec::new();
            if let Some(s) = target.slot() {
                for (ck, i) in self.replica(s).entries.iter() {
                    if self.extract_removes(sec, ck, c) {
                        doomed.push(i);
                    }
                }
            }
            let new = self.check_new(target, &sec.entries, c, &doomed, |p, i| {
                p.extract_removes(sec, p.record(i).clock(), c)
            })?;
            adds += new;
            frees += self.freed_by(target, &doomed);
            plans.push(Plan {
                section: n,
                target,
                c,
                doomed,
                new,
                runs,
            });
        }
        let max = self.config.max_replicas;
        if self.replica_idx.len() + new_replicas > max as usize {
            return Err(MergeError::TooManyReplicas { max });
        }
        if !self.entries_fit(self.live_records() - frees, adds) {
            return Err(MergeError::SetFull {
                max: self.entry_cap(),
            });
        }
        self.begin();
        for p in plans {
            let sec = &x.replicas[p.section];
            let s = self.target_slot(p.target, &sec.replica);
            for i in p.doomed {
                self.remove_record(i, true);
            }
            self.insert_all(s, &sec.entries, p.c, p.new, p.runs);
            let slot = self.replicas[s as usize]
                .as_mut()
                .expect("target slot is live");
            slot.clock = slot.clock.max(sec.clock);
        }
        Ok(Summary {
            stale,
            gaps,
            ..self.summary()
        })
    }

    /// Merges the whole state of `other`: the same as merging
    /// `other.extract(&self.context())`.
    pub fn merge_state(&mut self, other: &Presence) -> Result<Summary, MergeError> {
        let context = self.context();
        let x = other.extract(&context);
        self.merge_extract(&x)
    }

    /// What we know: every replica (down ones too) with our clock for it,
    /// sorted by name.
    pub fn context(&self) -> Context {
        let mut replicas: Vec<(ReplicaId, u64)> = self
            .replica_idx_order()
            .map(|r| {
                let s = self.replica(r);
                (s.id.clone(), s.clock)
            })
            .collect();
        replicas.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
        Context { replicas }
    }

    /// What a peer that knows `peer` lacks of our state: a section for every
    /// up replica (ours included) of which the peer has an older clock or an
    /// older incarnation, or which it does not know. Down replicas are not
    /// extracted. The extract borrows the set.
    pub fn extract(&self, peer: &Context) -> Extract<'_> {
        let mut known: Vec<(&str, u64, u64)> = peer
            .replicas
            .iter()
            .map(|(r, c)| (&*r.name, r.incarnation, *c))
            .collect();
        known.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut replicas = Vec::new();
        for r in self.replica_idx_order() {
            let s = self.replica(r);
            if !s.up {
                continue;
            }
            let since = match known.binary_search_by(|k| k.0.cmp(&s.id.name)) {
                Err(_) => 0,
                Ok(k) => {
                    let (_, inc, clock) = known[k];
                    if inc > s.id.incarnation || (inc == s.id.incarnation && clock >= s.clock) {
                        continue;
                    }
                    if inc == s.id.incarnation {
                        clock
                    } else {
                        0
                    }
                }
            };
            // The list is by clock: both parts come out sorted.
            let alive_before: Vec<u64> = s.entries.range(0, since).map(|(ck, _)| ck).collect();
            let slots: Vec<u32> = s.entries.range(since, u64::MAX).map(|(_, i)| i).collect();
            let entries = Entries::local(self, slots);
            replicas.push(ReplicaExtract {
                replica: s.id.clone(),
                clock: s.clock,
                since,
                entries,
                alive_before,
            });
        }
        Extract { replicas }
    }

    /// Whether section `sec` removes our entry with clock `ck`, given our clock `c`.
    fn extract_removes(&self, sec: &ReplicaExtract<'_>, ck: u64, c: u64) -> bool {
        if ck <= sec.since {
            sec.alive_before.binary_search(&ck).is_err()
        } else if ck <= c {
            !sec.entries.has_clock(ck)
        } else {
            false
        }
    }
}

/// A validated section, ready to apply.
struct Plan {
    section: usize,
    target: Target,
    c: u64,
    doomed: Vec<u32>,
    new: usize,
    /// Runs of entries of one type in the section.
    runs: usize,
}
