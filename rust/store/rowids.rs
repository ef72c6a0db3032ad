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

/// Hints kept at most (about 9 bytes each).
const MAX_HINTS: usize = 1 << 22;

/// Atom detail rowids by a 32-bit hash of their uuid: 8 bytes a row, not the uuid itself (a
/// million-atom flow must resume within its memory budget). Two uuids of one hash are rare and
/// harmless (see the module docs); rowids past `u32::MAX` are not remembered.
#[derive(Debug, Default)]
pub(super) struct RowidHints(FastMap<u32, u32>);

impl RowidHints {
    fn key(uuid: &str) -> u32 {
        (BuildHasherDefault::<FxHasher>::default().hash_one(uuid) >> 32) as u32
    }

    /// Remembers that the detail `uuid` is row `rowid` (while there is room).
    pub(super) fn learn(&mut self, uuid: &str, rowid: i64) {
        if let Ok(rowid) = u32::try_from(rowid) {
            if self.0.len() < MAX_HINTS {
                self.0.insert(Self::key(uuid), rowid);
            }
        }
    }

    /// The row the detail `uuid` was last seen at, if known.
    pub(super) fn get(&self, uuid: &str) -> Option<i64> {
        self.0.get(&Self::key(uuid)).map(|&rowid| i64::from(rowid))
    }

    /// Forgets `uuid`'s row (its hint was wrong).
    pub(super) fn forget(&mut self, uuid: &str) {
        self.0.remove(&Self::key(uuid));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}
