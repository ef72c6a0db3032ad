//! A new flow's atom details as columns ([`FreshRows`]): what [`super::FreshAtoms`] inserts. A
//! 100,000-atom flow's rows are built and inserted without an allocation per row: texts go into
//! one buffer per column, and versions (atoms mostly share one) are kept once each.
use crate::graph::hash::FastMap;

/// Short texts in one buffer, by position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextColumn {
    text: String,
    ends: Vec<usize>,
}

impl TextColumn {
    /// An empty column with room for `texts` texts of `bytes` bytes in all.
    pub fn with_capacity(texts: usize, bytes: usize) -> Self {
        TextColumn { text: String::with_capacity(bytes), ends: Vec::with_capacity(texts) }
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The text at `index` (`None` past the end).
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        self.text.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

impl<'a> FromIterator<&'a str> for TextColumn {
    fn from_iter<I: IntoIterator<Item = &'a str>>(texts: I) -> Self {
        let mut column = TextColumn::default();
        for text in texts {
            column.push(text);
        }
        column
    }
}

/// New atom details, one row per atom, in the order they are inserted: uuid, name, kind and
/// version each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FreshRows {
    uuids: TextColumn,
    names: TextColumn,
    retries: Vec<bool>,
    /// Each row's version as an index into `version_texts` (`None`: no version).
    versions: Vec<Option<u32>>,
    version_texts: Vec<String>,
    version_index: FastMap<String, u32>,
}

impl FreshRows {
    /// Room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        FreshRows {
            uuids: TextColumn::with_capacity(rows, rows * 36),
            names: TextColumn::with_capacity(rows, rows * 8),
            retries: Vec::with_capacity(rows),
            versions: Vec::with_capacity(rows),
            ..FreshRows::default()
        }
    }

    /// Adds a row.
    pub fn push(&mut self, uuid: &str, name: &str, is_retry: bool, version: Option<&str>) {
        self.uuids.push(uuid);
        self.names.push(name);
        self.retries.push(is_retry);
        let version = version.map(|text| {
            if let Some(&known) = self.version_index.get(text) {
                return known;
            }
            let new = self.version_texts.len() as u32;
            self.version_texts.push(text.to_owned());
            self.version_index.insert(text.to_owned(), new);
            new
        });
        self.versions.push(version);
    }

    pub fn len(&self) -> usize {
        self.retries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.retries.is_empty()
    }

    /// Row `row`'s `(uuid, name, is_retry, version)` (`None` past the end).
    pub fn row(&self, row: usize) -> Option<(&str, &str, bool, Option<&str>)> {
        let version = match *self.versions.get(row)? {
            Some(index) => Some(self.version_texts.get(index as usize)?.as_str()),
            None => None,
        };
        Some((self.uuids.get(row)?, self.names.get(row)?, self.retries[row], version))
    }

    /// The rows' uuids, in order.
    pub fn uuids(&self) -> &TextColumn {
        &self.uuids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_kept_in_one_buffer_and_read_back_by_position() {
        let column: TextColumn = ["ab", "", "c"].into_iter().collect();
        assert_eq!(
            (column.len(), column.get(0), column.get(1), column.get(2), column.get(3)),
            (3, Some("ab"), Some(""), Some("c"), None)
        );
        assert_eq!(column.iter().collect::<Vec<_>>(), ["ab", "", "c"]);
    }

    #[test]
    fn rows_keep_each_version_once_and_read_back_whole() {
        let mut rows = FreshRows::with_capacity(3);
        rows.push("u1", "a", false, Some("1.0"));
        rows.push("u2", "b", true, None);
        rows.push("u3", "c", false, Some("1.0"));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.row(0), Some(("u1", "a", false, Some("1.0"))));
        assert_eq!(rows.row(1), Some(("u2", "b", true, None)));
        assert_eq!(rows.row(2), Some(("u3", "c", false, Some("1.0"))));
        assert_eq!(rows.row(3), None);
        assert_eq!(rows.version_texts, ["1.0"]);
    }
}
