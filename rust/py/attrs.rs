//! Attributes of many Python objects read in one pass. A prepare reads a few rarely set
//! attributes of every atom object (what it injects, its own version policy): on a 100,000-atom
//! graph each pass over the objects is a cache miss per atom (~15 ms), so the passes are one.
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

/// For each of `names`, the indices of the `objects` whose attribute of that name is set and not
/// `None` (a missing attribute counts as `None`, as `getattr(obj, name, None)` reads it).
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
pub fn indices_having<'py>(
    objects: &Bound<'py, PyList>,
    names: Vec<Bound<'py, PyString>>,
) -> PyResult<Vec<Vec<usize>>> {
    let mut found = vec![Vec::new(); names.len()];
    for (index, object) in objects.iter().enumerate() {
        for (name, having) in names.iter().zip(found.iter_mut()) {
            match object.getattr(name) {
                Ok(value) if !value.is_none() => having.push(index),
                Ok(_) => {}
                Err(error) if error.is_instance_of::<PyAttributeError>(object.py()) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(found)
}
