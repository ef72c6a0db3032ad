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

/// New atom details as columns, in the order their rows are inserted: `(uuids, names, is-retry
/// flags, versions)`, one entry per atom. Made by `CompiledFlow.fresh_rows` (or from lists, for
/// tests and other backends), given to `SqliteStore.apply`, which takes the columns over: they
/// are written once.
#[pyclass(module = "ferroflow._core")]
pub struct FreshRows {
    columns: Option<FreshColumns>,
}

/// The columns of [`FreshRows`], each with one entry per atom.
#[derive(Debug, Default)]
pub(crate) struct FreshColumns {
    pub uuids: Vec<String>,
    pub names: Vec<String>,
    pub retries: Vec<bool>,
    /// `None`: the atom has no version.
    pub versions: Vec<Option<String>>,
}

impl FreshRows {
    /// The columns, taken over (the rows are about to be written).
    pub(crate) fn take(&mut self) -> PyResult<FreshColumns> {
        self.columns.take().ok_or_else(|| PyValueError::new_err("these fresh rows were already given to a store"))
    }

    fn columns(&self) -> PyResult<&FreshColumns> {
        self.columns.as_ref().ok_or_else(|| PyValueError::new_err("these fresh rows were already given to a store"))
    }
}

#[pymethods]
impl FreshRows {
    /// Fresh rows from columns given as lists (the same length each).
    #[new]
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
        Ok(FreshRows { columns: Some(FreshColumns { uuids, names, retries, versions }) })
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.columns()?.uuids.len())
    }

    /// `(uuids, names, is-retry flags, versions)` as lists, in insertion order (for a backend that
    /// writes from Python).
    #[allow(clippy::type_complexity)]
    fn lists(&self) -> PyResult<(Vec<String>, Vec<String>, Vec<bool>, Vec<Option<String>>)> {
        let c = self.columns()?;
        Ok((c.uuids.clone(), c.names.clone(), c.retries.clone(), c.versions.clone()))
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
    let uuids: Vec<String> = made.iter().map(|&uuid| uuid_text(uuid)).collect();
    let texts = if by_atom {
        let mut placed: Vec<Option<Bound<'py, PyString>>> = vec![None; atoms.len()];
        for (text, &atom) in uuids.iter().zip(atoms) {
            placed[atom as usize] = Some(PyString::new(py, text));
        }
        PyList::new(py, placed.into_iter().flatten())?
    } else {
        PyList::new(py, uuids.iter().map(|text| PyString::new(py, text)))?
    };
    let columns = FreshColumns {
        names: gather(atoms, specs.len(), |atom| specs[atom].name.clone()),
        retries: atoms.iter().map(|&atom| specs[atom as usize].kind == AtomKind::Retry).collect(),
        versions: gather(atoms, specs.len(), |atom| match specs[atom].version.as_str() {
            "" => None,
            version => Some(version.to_owned()),
        }),
        uuids,
    };
    Ok((texts, FreshRows { columns: Some(columns) }))
}

/// `value(atom)` of each of `atoms`, in that order. A whole flow's atoms in round order are read
/// in atom order and then moved into place: read in that order, nearly every atom's spec would be
/// a cache miss.
fn gather<T>(atoms: &[u32], count: usize, value: impl Fn(usize) -> T) -> Vec<T> {
    if atoms.len() < count {
        return atoms.iter().map(|&atom| value(atom as usize)).collect();
    }
    let mut by_atom: Vec<Option<T>> = (0..count).map(|atom| Some(value(atom))).collect();
    atoms.iter().filter_map(|&atom| by_atom[atom as usize].take()).collect()
}

/// A version-4 UUID (as a big-endian integer: its order is its text's) from 16 random bytes.
fn uuid4(random: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(random);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    u128::from_be_bytes(bytes)
}

/// A UUID's hyphenated lowercase text.
fn uuid_text(uuid: u128) -> String {
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
    // (ASCII by construction: the check cannot fail, and is one pass over 36 bytes)
    std::str::from_utf8(&text).unwrap_or_default().to_owned()
}
