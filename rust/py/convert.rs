//! Python's lowered flow (plain tuples, see `ferroflow/_lower.py`) → `spec` structs.
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyString, PyTuple};

use super::links::GraphLinks;
use crate::spec::{AtomKind, AtomSpec, DeciderDepth, FlowNode, FlowSpec, LinkSpec, Name, Node, Pattern};

/// One atom as Python lowers it (see `ferroflow/_lower.py`): `(name, kind, version, priority,
/// requires, optional, revert_requires, revert_optional, provides)`.
///
/// Read field by field, its name lists by index: pyo3's generic `Vec` extraction makes a Python
/// iterator object per list, five per atom, which was a third of compiling a big flow.
pub struct AtomArg(pub(super) AtomSpec);

const ATOM_FIELDS: usize = 9;

impl<'a, 'py> FromPyObject<'a, 'py> for AtomArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let t = obj.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("a lowered atom must be a tuple"))?;
        if t.len() != ATOM_FIELDS {
            return Err(PyValueError::new_err(format!("a lowered atom has {ATOM_FIELDS} fields, got {}", t.len())));
        }
        let name = t.get_item(0)?;
        let name = self::name(&name).map_err(|err| match name.cast::<PyString>() {
            // (a lone surrogate: Python text that is not Unicode text; no store could keep it)
            Ok(text) => PyValueError::new_err(format!(
                "atom name {} is not valid text ({err}); rename the atom",
                text.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
            )),
            Err(_) => err,
        })?;
        let kind = match t.get_item(1)?.extract::<u8>()? {
            0 => AtomKind::Task,
            1 => AtomKind::Retry,
            other => return Err(PyValueError::new_err(format!("atom '{name}': unknown atom kind code {other}"))),
        };
        let spec = AtomSpec {
            kind,
            version: self::name(&t.get_item(2)?)?,
            priority: t.get_item(3)?.extract()?,
            requires: names(&t.get_item(4)?)?,
            optional: names(&t.get_item(5)?)?,
            revert: None,
            provides: names(&t.get_item(8)?)?,
            name,
        };
        Ok(AtomArg(spec.with_revert(names(&t.get_item(6)?)?, names(&t.get_item(7)?)?)))
    }
}

/// A list (or tuple) of names, read by index; another sequence through its iterator.
pub(super) fn names(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Name>> {
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|item| name(&item)).collect();
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|item| name(&item)).collect();
    }
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("names must be a sequence of str, not a str"));
    }
    obj.try_iter()?.map(|item| name(&item?)).collect()
}

/// A `str` as a name (read in place: no `String` made first).
pub(super) fn name(obj: &Bound<'_, PyAny>) -> PyResult<Name> {
    Ok(Name::new(obj.cast::<PyString>()?.to_str()?))
}

fn pattern(code: u8) -> PyResult<Pattern> {
    match code {
        0 => Ok(Pattern::Linear),
        1 => Ok(Pattern::Unordered),
        2 => Ok(Pattern::Graph),
        other => Err(PyValueError::new_err(format!("unknown flow pattern code {other}"))),
    }
}

fn depth(code: u8) -> PyResult<DeciderDepth> {
    match code {
        0 => Ok(DeciderDepth::Atom),
        1 => Ok(DeciderDepth::Neighbors),
        2 => Ok(DeciderDepth::Flow),
        3 => Ok(DeciderDepth::All),
        other => Err(PyValueError::new_err(format!("unknown decider depth code {other}"))),
    }
}

/// A link as Python lowers it: `(from, to, manual, decider id, depth code)`.
pub(super) type LinkTuple = (usize, usize, bool, Option<u32>, u8);

pub(super) fn link_spec((from, to, manual, decider, code): LinkTuple) -> PyResult<LinkSpec> {
    Ok(LinkSpec { from, to, manual, decider, depth: depth(code)? })
}

/// A flow node's links: a list of link tuples, or a graph flow's `GraphLinks` read in Rust.
fn links(obj: &Bound<'_, PyAny>) -> PyResult<Arc<Vec<LinkSpec>>> {
    if let Ok(read) = obj.cast::<GraphLinks>() {
        return Ok(Arc::clone(&read.get().links));
    }
    Ok(Arc::new(obj.extract::<Vec<LinkTuple>>()?.into_iter().map(link_spec).collect::<PyResult<_>>()?))
}

/// A node of the pattern tree: a flow's child atom may be given as its index alone.
pub(super) fn node(obj: &Bound<'_, PyAny>) -> PyResult<Node> {
    if let Ok(index) = obj.cast::<PyInt>() {
        return Ok(Node::Atom(index.extract()?));
    }
    let tuple = obj.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("flow node must be a tuple"))?;
    let tag = tuple.get_item(0)?;
    let tag = tag.cast::<PyString>().map_err(|_| PyTypeError::new_err("flow node tag must be a string"))?;
    match tag.to_str()? {
        "atom" => Ok(Node::Atom(tuple.get_item(1)?.extract()?)),
        "flow" => {
            let children_obj = tuple.get_item(4)?;
            let mut children = Vec::with_capacity(children_obj.len().unwrap_or(0));
            for child in children_obj.try_iter()? {
                children.push(node(&child?)?);
            }
            let links = links(&tuple.get_item(5)?)?;
            Ok(Node::Flow(Box::new(FlowNode {
                name: tuple.get_item(1)?.extract()?,
                pattern: pattern(tuple.get_item(2)?.extract()?)?,
                retry: tuple.get_item(3)?.extract()?,
                children,
                links,
            })))
        }
        other => Err(PyValueError::new_err(format!("unknown flow node tag {other:?}"))),
    }
}

pub fn flow_spec(atoms: &Bound<'_, PyAny>, root: &Bound<'_, PyAny>) -> PyResult<FlowSpec> {
    let atoms = match atoms.cast::<PyList>() {
        Ok(list) => list.iter().map(|atom| atom.extract::<AtomArg>().map(|a| a.0)).collect::<PyResult<Vec<_>>>()?,
        Err(_) => atoms.extract::<Vec<AtomArg>>()?.into_iter().map(|a| a.0).collect(),
    };
    Ok(FlowSpec { atoms, root: node(root)? })
}
