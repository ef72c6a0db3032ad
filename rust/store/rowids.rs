//! Where atom detail rows are in the table, remembered by the store that inserted or read them,
//! so that a transition's UPDATE finds its row by rowid instead of searching the uuid index.
//!
//! The index search was the costliest part of an atom's row update (uuids are random: every
//! search walks other pages of the index). A hint is only a hint: the UPDATE that uses it also
//! checks the uuid (`WHERE rowid = ? AND uuid = ?`), and one that finds nothing falls back to the
//! uuid, so a stale hint (the row replaced or the file vacuumed by another process) or two uuids
//! of one hash cost a second statement, never a wrong row.
use std::hash::{BuildHasher, BuildHasherDefault};

use crate::graph::hash::{FastMap, FxHasher};

/// Hints kept at most: a million-atom flow's (about 19 MB with the table's spare room). A store
/// handle that lives long (a conductor's) starts over when full: the rows it writes next are
/// those it inserted or read last.
const MAX_HINTS: usize = 1 << 20;

/// Atom detail rowids by a 32-bit hash of their uuid: 8 bytes a row, not the uuid itself (a
/// million-atom flow must resume within its memory budget). Two uuids of one hash are rare and
/// harmless (see the module docs); rowids past `u32::MAX` are not remembered.
#[derive(Debug)]
pub struct RowidHints {
    rows: FastMap<u32, u32>,
    limit: usize,
}

impl Default for RowidHints {
    fn default() -> Self {
        RowidHints { rows: FastMap::default(), limit: MAX_HINTS }
    }
}

impl RowidHints {
    fn key(uuid: &str) -> u32 {
        (BuildHasherDefault::<FxHasher>::default().hash_one(uuid) >> 32) as u32
    }

    /// Remembers that the detail `uuid` is row `rowid` (forgetting every other hint first when
    /// the limit is reached).
    pub(super) fn learn(&mut self, uuid: &str, rowid: i64) {
        if let Ok(rowid) = u32::try_from(rowid) {
            self.insert(Self::key(uuid), rowid);
        }
    }

    /// Remembers row `rowid` under `key`, starting over first when the limit is reached.
    fn insert(&mut self, key: u32, rowid: u32) {
        if self.rows.len() >= self.limit {
            self.rows.clear();
        }
        self.rows.insert(key, rowid);
    }

    /// Room for `more` hints (a new flow's rows: no rehash after rehash while they are learnt).
    pub(super) fn reserve(&mut self, more: usize) {
        self.rows.reserve(more.min(self.limit.saturating_sub(self.rows.len())));
    }

    /// The row the detail `uuid` was last seen at, if known.
    pub(super) fn get(&self, uuid: &str) -> Option<i64> {
        self.rows.get(&Self::key(uuid)).map(|&rowid| i64::from(rowid))
    }

    /// Adds `other`'s hints to these (taking them whole when these are empty).
    pub(super) fn merge(&mut self, other: RowidHints) {
        if self.rows.is_empty() {
            self.rows = other.rows;
            return;
        }
        for (key, rowid) in other.rows {
            self.insert(key, rowid);
        }
    }

    /// Forgets `uuid`'s row (its hint was wrong).
    pub(super) fn forget(&mut self, uuid: &str) {
        self.rows.remove(&Self::key(uuid));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_bounded_and_start_over_when_full() {
        let mut hints = RowidHints { limit: 3, ..RowidHints::default() };
        for (row, uuid) in ["a", "b", "c"].iter().enumerate() {
            hints.learn(uuid, row as i64 + 1);
        }
        assert_eq!((hints.len(), hints.get("b")), (3, Some(2)));
        hints.learn("d", 4);
        assert_eq!((hints.len(), hints.get("a"), hints.get("d")), (1, None, Some(4)));
        hints.learn("e", i64::from(u32::MAX) + 1); // past u32: not remembered
        assert_eq!((hints.len(), hints.get("e")), (1, None));
        hints.forget("d");
        assert_eq!(hints.get("d"), None);
    }
}
