//! A flow's new atom details made in Rust as columns, from its compiled atoms: the rows a new
//! flow's prepare inserts, and their version-4 UUIDs. Building them from Python objects cost a pass
//! over every atom object per column (names, kinds, versions, each a cache miss per atom on a big
//! graph), a permutation of each list into insertion order, then one extraction per value back
//! into Rust for the insert; here the columns never become Python objects at all, and only the
//! UUIDs do (the engine's storage keeps them).
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::graph;
use crate::spec::AtomKind;
use crate::store::{FreshRows as Rows, TextColumn};

/// New atom details as columns, in the order their rows are inserted: uuid, name, kind and version
/// per atom (`crate::store::FreshRows`). Made by `CompiledFlow.fresh_rows` (or from lists, for
/// tests and other backends), given to `SqliteStore.apply`, which takes them over: they are
/// written once.
#[pyclass(module = "ferroflow._core")]
pub struct FreshRows {
    rows: Option<Rows>,
}

impl FreshRows {
    /// The rows, taken over (they are about to be written).
    pub(crate) fn take(&mut self) -> PyResult<Rows> {
        self.rows.take().ok_or_else(given)
    }
}

fn given() -> PyErr {
    PyValueError::new_err("these fresh rows were already given to a store")
}

#[pymethods]
impl FreshRows {
    /// Fresh rows from columns given as lists (the same length each).
    #[new]
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
    fn new(
        uuids: Vec<String>,
        names: Vec<String>,
        retries: Vec<bool>,
        versions: Vec<Option<String>>,
    ) -> PyResult<Self> {
        let n = uuids.len();
        if names.len() != n || retries.len() != n || versions.len() != n {
            return Err(PyValueError::new_err(format!(
                "fresh rows need one name, kind and version per uuid ({n} uuids, {} names, {} kinds, {} versions)",
                names.len(),
                retries.len(),
                versions.len()
            )));
        }
        let mut rows = Rows::with_capacity(n);
        for (((uuid, name), is_retry), version) in uuids.iter().zip(&names).zip(retries).zip(&versions) {
            rows.push(uuid, name, is_retry, version.as_deref());
        }
        Ok(FreshRows { rows: Some(rows) })
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.rows.as_ref().ok_or_else(given)?.len())
    }

    /// `(uuids, names, is-retry flags, versions)` as lists, in insertion order (for a backend that
    /// writes from Python).
    #[allow(clippy::type_complexity)]
    fn lists(&self) -> PyResult<(Vec<&str>, Vec<&str>, Vec<bool>, Vec<Option<&str>>)> {
        let rows = self.rows.as_ref().ok_or_else(given)?;
        let mut lists = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (uuid, name, is_retry, version) in (0..rows.len()).filter_map(|row| rows.row(row)) {
            lists.0.push(uuid);
            lists.1.push(name);
            lists.2.push(is_retry);
            lists.3.push(version);
        }
        Ok(lists)
    }
}

/// New details for `atoms` of `flow` (distinct indices, in the order their rows are to be
/// inserted), with UUIDs made from `random` (16 random bytes each) ascending in that order: rows
/// inserted in that order add to the end of the store's uuid index, where random keys would each
/// land on a page of their own. Returns the UUIDs as Python strings, and the rows. The UUIDs are
/// listed by atom (`uuids[i]` for atom `i`) when `by_atom` (`atoms` must then be every atom), else
/// in the order of `atoms`.
pub(crate) fn fresh_rows<'py>(
    py: Python<'py>,
    flow: &graph::CompiledFlow,
    atoms: &[u32],
    random: &[u8],
    by_atom: bool,
) -> PyResult<(Bound<'py, PyList>, FreshRows)> {
    if random.len() != 16 * atoms.len() {
        return Err(PyValueError::new_err(format!(
            "fresh rows for {} atoms need {} random bytes (16 per UUID), got {}",
            atoms.len(),
            16 * atoms.len(),
            random.len()
        )));
    }
    let specs = &flow.atoms;
    let mut seen = vec![false; specs.len()];
    for &atom in atoms {
        match seen.get_mut(atom as usize) {
            Some(slot @ false) => *slot = true,
            Some(true) => return Err(PyValueError::new_err(format!("fresh rows: atom {atom} is listed twice"))),
            None => {
                return Err(PyValueError::new_err(format!(
                    "fresh rows: atom {atom} is not one of the flow's {} atoms",
                    specs.len()
                )))
            }
        }
    }
    if by_atom && atoms.len() != specs.len() {
        return Err(PyValueError::new_err("fresh rows listed by atom need every atom"));
    }
    let mut made: Vec<u128> = random.chunks_exact(16).map(uuid4).collect();
    made.sort_unstable();
    let mut rows = Rows::with_capacity(atoms.len());
    let mut add = |uuid: u128, name: &str, is_retry: bool, version: &str| {
        let text = uuid_text(uuid);
        // (ASCII by construction: the check cannot fail, and is one pass over 36 bytes)
        let text = std::str::from_utf8(&text).unwrap_or_default();
        rows.push(text, name, is_retry, Some(version).filter(|version| !version.is_empty()));
    };
    if atoms.len() < specs.len() {
        for (&uuid, &atom) in made.iter().zip(atoms) {
            let spec = &specs[atom as usize];
            add(uuid, &spec.name, spec.kind == AtomKind::Retry, &spec.version);
        }
    } else {
        // A whole flow, mostly in round order: what the rows need is read in atom order into
        // compact columns first, then read from those in insertion order (read from the specs in
        // that order, nearly every atom's spec and name would be a cache miss).
        let (mut names, mut versions) = (TextColumn::default(), TextColumn::default());
        let mut retries = Vec::with_capacity(specs.len());
        for spec in specs {
            names.push(&spec.name);
            versions.push(&spec.version);
            retries.push(spec.kind == AtomKind::Retry);
        }
        for (&uuid, &atom) in made.iter().zip(atoms) {
            let atom = atom as usize;
            add(uuid, names.get(atom).unwrap_or_default(), retries[atom], versions.get(atom).unwrap_or_default());
        }
    }
    let uuids = rows.uuids();
    let texts = if by_atom {
        let mut placed: Vec<Option<Bound<'py, PyString>>> = vec![None; atoms.len()];
        for (text, &atom) in uuids.iter().zip(atoms) {
            placed[atom as usize] = Some(PyString::new(py, text));
        }
        PyList::new(py, placed.into_iter().flatten())?
    } else {
        PyList::new(py, uuids.iter().map(|text| PyString::new(py, text)))?
    };
    Ok((texts, FreshRows { rows: Some(rows) }))
}

/// A version-4 UUID (as a big-endian integer: its order is its text's) from 16 random bytes.
fn uuid4(random: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(random);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    u128::from_be_bytes(bytes)
}

/// A UUID's hyphenated lowercase text (ASCII).
fn uuid_text(uuid: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 36];
    let mut at = 0;
    for (i, byte) in uuid.to_be_bytes().iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    text
}
