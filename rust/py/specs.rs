//! `AtomSpecs`: a flow's lowered atoms, held in Rust from the moment they are lowered.
//!
//! The lowering (`ferroflow._lower`) appends each atom here (its Rust loop over plain tasks pushes
//! them directly, `add_atom` appends a tuple), `compile` moves them into the compiled flow without
//! reading anything back from Python, and Python reads what it needs afterwards through the same
//! object: an atom's tuple (made on demand), or one field for many atoms in one call. A Python
//! tuple of five lists per atom cost more to make and to read back than the compile itself, and
//! about 300 bytes per atom for as long as the engine lived.
use std::collections::HashMap;
use std::sync::Arc;

use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use super::convert::AtomArg;
use crate::graph;
use crate::spec::{AtomKind, AtomSpec, Name};

enum Held {
    /// Being lowered (or lowered, not compiled yet).
    Building(Vec<AtomSpec>),
    /// Moved into the compiled flow: read from there.
    Compiled(Arc<graph::CompiledFlow>),
}

/// The lowered atoms of a flow, by index: a sequence of `(name, kind, version, priority, requires,
/// optional, revert_requires, revert_optional, provides)` tuples (see `ferroflow._lower`), each
/// made when it is read.
#[pyclass(module = "ferroflow._core", sequence)]
pub struct AtomSpecs {
    held: Held,
}

impl AtomSpecs {
    pub(crate) fn atoms(&self) -> &[AtomSpec] {
        match &self.held {
            Held::Building(atoms) => atoms,
            Held::Compiled(compiled) => &compiled.atoms,
        }
    }

    pub(crate) fn push(&mut self, spec: AtomSpec) -> PyResult<()> {
        match &mut self.held {
            Held::Building(atoms) => {
                atoms.push(spec);
                Ok(())
            }
            Held::Compiled(_) => Err(PyValueError::new_err("the atoms of a compiled flow can not be added to")),
        }
    }

    /// Room for `more` atoms (a flow's children are pushed in one go: no doubling copies).
    pub(crate) fn reserve(&mut self, more: usize) {
        if let Held::Building(atoms) = &mut self.held {
            atoms.reserve(more);
        }
    }

    /// The atoms, for a compile: moved out while building (`compiled` or `restore` puts the
    /// result back), copied when a compiled flow already holds them (a second compile).
    pub(crate) fn take(&mut self) -> Vec<AtomSpec> {
        match &mut self.held {
            Held::Building(atoms) => std::mem::take(atoms),
            Held::Compiled(compiled) => compiled.atoms.clone(),
        }
    }

    pub(crate) fn compiled(&mut self, compiled: Arc<graph::CompiledFlow>) {
        self.held = Held::Compiled(compiled);
    }

    /// Puts back atoms `take` moved out, when their compile failed.
    pub(crate) fn restore(&mut self, atoms: Vec<AtomSpec>) {
        if let Held::Building(held) = &mut self.held {
            *held = atoms;
        }
    }

    fn atom(&self, index: isize) -> PyResult<&AtomSpec> {
        let atoms = self.atoms();
        let position = if index < 0 { index.checked_add_unsigned(atoms.len()) } else { Some(index) };
        position
            .and_then(|p| usize::try_from(p).ok())
            .and_then(|p| atoms.get(p))
            .ok_or_else(|| PyIndexError::new_err(format!("atom index {index} out of range ({} atoms)", atoms.len())))
    }

    fn indices(&self, indices: Option<Vec<usize>>) -> PyResult<Vec<&AtomSpec>> {
        let atoms = self.atoms();
        match indices {
            None => Ok(atoms.iter().collect()),
            Some(indices) => indices
                .into_iter()
                .map(|i| {
                    atoms.get(i).ok_or_else(|| {
                        PyIndexError::new_err(format!("atom index {i} out of range ({} atoms)", atoms.len()))
                    })
                })
                .collect(),
        }
    }
}

fn tuple<'py>(py: Python<'py>, spec: &AtomSpec) -> PyResult<Bound<'py, PyTuple>> {
    let kind: u8 = match spec.kind {
        AtomKind::Task => 0,
        AtomKind::Retry => 1,
    };
    PyTuple::new(
        py,
        [
            spec.name.as_str().into_pyobject(py)?.into_any(),
            kind.into_pyobject(py)?.into_any(),
            spec.version.as_str().into_pyobject(py)?.into_any(),
            spec.priority.into_pyobject(py)?.into_any(),
            PyList::new(py, spec.requires.iter().map(Name::as_str))?.into_any(),
            PyList::new(py, spec.optional.iter().map(Name::as_str))?.into_any(),
            PyList::new(py, spec.revert_requires().iter().map(Name::as_str))?.into_any(),
            PyList::new(py, spec.revert_optional().iter().map(Name::as_str))?.into_any(),
            PyList::new(py, spec.provides.iter().map(Name::as_str))?.into_any(),
        ],
    )
}

#[pymethods]
impl AtomSpecs {
    #[new]
    fn new() -> Self {
        AtomSpecs { held: Held::Building(Vec::new()) }
    }

    /// Adds one atom given as its lowered tuple (checked field by field, as `compile` checks them).
    fn append(&mut self, atom: &Bound<'_, PyAny>) -> PyResult<()> {
        self.push(atom.extract::<AtomArg>()?.0)
    }

    fn __len__(&self) -> usize {
        self.atoms().len()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        tuple(py, self.atom(index)?)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.tuples(py)?.as_any().try_iter().map(Bound::into_any)
    }

    /// Equal to another `AtomSpecs` with equal atoms, or to a sequence of equal tuples.
    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let equal = match op {
            CompareOp::Eq | CompareOp::Ne => match other.cast::<AtomSpecs>() {
                Ok(other) => self.atoms() == other.borrow().atoms(),
                Err(_) => self.tuples(py)?.eq(other)?,
            },
            _ => return Ok(py.NotImplemented()),
        };
        Ok((equal == matches!(op, CompareOp::Eq)).into_pyobject(py)?.to_owned().into_any().unbind())
    }

    fn __repr__(&self) -> String {
        format!("<AtomSpecs of {} atoms>", self.atoms().len())
    }

    /// Every atom's tuple, in a list.
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self.atoms().iter().map(|spec| tuple(py, spec)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Whether atom `index` is a retry.
    fn is_retry(&self, index: isize) -> PyResult<bool> {
        Ok(self.atom(index)?.kind == AtomKind::Retry)
    }

    /// Atom `index`'s version text, None when it has none.
    fn version(&self, index: isize) -> PyResult<Option<&str>> {
        let version = &self.atom(index)?.version;
        Ok((!version.is_empty()).then_some(version.as_str()))
    }

    /// Whether each atom (of `indices`, or all) is a retry.
    #[pyo3(signature = (indices=None))]
    fn retry_flags(&self, indices: Option<Vec<usize>>) -> PyResult<Vec<bool>> {
        Ok(self.indices(indices)?.into_iter().map(|spec| spec.kind == AtomKind::Retry).collect())
    }

    /// Each atom's (of `indices`, or all) version text, None when it has none; one Python string
    /// per distinct version (atoms mostly share one).
    #[pyo3(signature = (indices=None))]
    fn versions<'py>(&self, py: Python<'py>, indices: Option<Vec<usize>>) -> PyResult<Bound<'py, PyList>> {
        let mut texts: HashMap<&str, Bound<'py, PyString>> = HashMap::new();
        let none = py.None().into_bound(py);
        let items: Vec<Bound<'py, PyAny>> = self
            .indices(indices)?
            .into_iter()
            .map(|spec| match spec.version.as_str() {
                "" => none.clone(),
                version => texts.entry(version).or_insert_with(|| PyString::new(py, version)).clone().into_any(),
            })
            .collect();
        PyList::new(py, items)
    }

    /// The indices of the atoms that provide something.
    fn providing(&self) -> Vec<usize> {
        self.atoms().iter().enumerate().filter(|(_, spec)| !spec.provides.is_empty()).map(|(i, _)| i).collect()
    }
}
