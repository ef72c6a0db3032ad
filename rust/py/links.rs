//! A graph flow's links read from its adjacency lists (`graph_flow.Flow._succ`) in one Rust pass.
//!
//! A 100,000-atom graph flow has about as many links, nearly all inferred from one symbol (their
//! meta is the symbol's text, not a dict). Making a Python tuple per link for the compiler to
//! convert back cost more than compiling them; here they go straight into `LinkSpec`s, kept in a
//! `GraphLinks` that the lowered flow node carries in place of its list of link tuples.
use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::convert::{link_spec, LinkTuple};
use crate::graph::Csr;
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

/// The links of a graph flow whose children are all its nodes and whose links are all plain
/// (inferred, each from one symbol), from its log of links (`graph_flow.Flow._link_log`: `u, v` of
/// each link, in the order made) and its node count: in the order `graph_links` gives them, by
/// source and, from one source, in the order made (a dict keeps its keys so), without visiting the
/// flow's 100,000 successor dicts.
///
/// Refused (`ValueError`) when the log has an odd length or names a node past `nodes`.
#[pyfunction]
pub fn logged_graph_links(log: &Bound<'_, PyAny>, nodes: usize) -> PyResult<GraphLinks> {
    // (an empty array's buffer may have no aligned address to give: nothing to read then)
    let flat = if log.len()? == 0 { Vec::new() } else { PyBuffer::<u32>::get(log)?.to_vec(log.py())? };
    if flat.len() % 2 != 0 || flat.iter().any(|&node| node as usize >= nodes) {
        return Err(PyValueError::new_err(format!(
            "a graph flow's link log must hold (from, to) pairs of its {nodes} nodes; it holds {} numbers",
            flat.len()
        )));
    }
    let pairs: Vec<(u32, u32)> = flat.chunks_exact(2).map(|pair| (pair[0], pair[1])).collect();
    let by_source = Csr::from_edges(nodes, &pairs);
    let mut links = Vec::with_capacity(pairs.len());
    for from in 0..nodes {
        for &to in by_source.neighbours(from as u32) {
            links.push(LinkSpec { from, to: to as usize, manual: false, decider: None, depth: DeciderDepth::All });
        }
    }
    Ok(GraphLinks { links: Arc::new(links) })
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
