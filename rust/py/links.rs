//! A graph flow's links read from its adjacency lists (`graph_flow.Flow._succ`) in one Rust pass.
//!
//! A 100,000-atom graph flow has about as many links, nearly all inferred from one symbol (their
//! meta is the symbol's text, not a dict). Making a Python tuple per link for the compiler to
//! convert back cost more than compiling them; here they go straight into `LinkSpec`s, kept in a
//! `GraphLinks` that the lowered flow node carries in place of its list of link tuples.
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::convert::{link_spec, LinkTuple};
use crate::spec::{DeciderDepth, LinkSpec};

/// The links of one graph flow, ready for the compiler (see the module docs).
#[pyclass(module = "ferroflow._core", frozen)]
pub struct GraphLinks {
    pub(super) links: Arc<Vec<LinkSpec>>,
}

#[pymethods]
impl GraphLinks {
    fn __len__(&self) -> usize {
        self.links.len()
    }

    /// The links as the lowering's tuples `(from, to, manual, decider id, depth code)`.
    fn tuples(&self) -> Vec<LinkTuple> {
        self.links.iter().map(|l| (l.from, l.to, l.manual, l.decider, l.depth as u8)).collect()
    }
}

/// The links of a graph flow whose children are all its nodes, from its adjacency lists `succ`
/// (`succ[u]` maps each successor `v` to the link's meta): a meta that is a `str` is a plain
/// inferred link; any other is passed to `make_link(u, v, meta)`, which returns the link's tuple
/// (and registers its decider), in the order `iter_links()` yields them.
#[pyfunction]
pub fn graph_links(succ: &Bound<'_, PyList>, make_link: &Bound<'_, PyAny>) -> PyResult<GraphLinks> {
    let mut links = Vec::with_capacity(succ.len());
    for (from, successors) in succ.iter().enumerate() {
        let successors = successors.cast_into::<PyDict>()?;
        for (to, meta) in successors.iter() {
            let to: usize = to.extract()?;
            if meta.is_exact_instance_of::<PyString>() {
                links.push(LinkSpec { from, to, manual: false, decider: None, depth: DeciderDepth::All });
            } else {
                links.push(link_spec(make_link.call1((from, to, meta))?.extract()?)?);
            }
        }
    }
    Ok(GraphLinks { links: Arc::new(links) })
}
