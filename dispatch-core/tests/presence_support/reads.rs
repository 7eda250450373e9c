//! The check that the reads through the indexes agree with the visible
//! entries. Shared by the presence tests and the `presence_replicas` fuzz
//! target (which includes this file by path).

use dispatch_core::presence::{EntryRef, Presence};

/// An entry as the checks compare it: replica name, type, id, clock.
pub type Key = (String, String, String, u64);

fn entry_key(e: EntryRef<'_>) -> Key {
    let (ty, id) = (e.ty().to_string(), e.id().to_string());
    (e.replica().name.to_string(), ty, id, e.reference().clock)
}

/// What `read` lists for each distinct one of `names`, sorted: each entry
/// once when the reads are right.
fn listed<'a>(names: impl Iterator<Item = &'a str>, read: impl Fn(&str) -> Vec<Key>) -> Vec<Key> {
    let mut names: Vec<&str> = names.collect();
    names.sort();
    names.dedup();
    let mut v: Vec<Key> = names.into_iter().flat_map(read).collect();
    v.sort();
    v
}

/// Asserts that the reads through the indexes (by type, by id, by key)
/// find exactly `visible`, the keys of the visible entries of `p`.
pub fn check_indexes(p: &Presence, visible: impl Iterator<Item = Key>) {
    let mut want: Vec<Key> = visible.collect();
    want.sort();
    let by_type = listed(want.iter().map(|k| k.1.as_str()), |t| {
        p.entries_of_type(t).map(entry_key).collect()
    });
    assert_eq!(by_type, want, "entries_of_type lists the visible entries");
    let by_id = listed(want.iter().map(|k| k.2.as_str()), |i| {
        p.entries_of_id(i).map(entry_key).collect()
    });
    assert_eq!(by_id, want, "entries_of_id lists the visible entries");
    for k in &want {
        let got = p.get(&k.0, &k.1, &k.2).map(entry_key);
        assert_eq!(got.as_ref(), Some(k), "get finds each visible entry");
    }
}
