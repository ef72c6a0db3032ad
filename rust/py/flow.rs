//! `compile()` and the frozen `CompiledFlow` handle.
use std::collections::HashSet;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::convert;
use super::errors::PyCoreError;
use super::fresh;
use super::specs::AtomSpecs;
use crate::graph::{self, NONE};
use crate::names;
use crate::spec::FlowSpec;

/// `(decider id, history atoms, entry atoms, target atoms, depth code)`.
type DeciderRow = (u32, Vec<u32>, Vec<u32>, Vec<u32>, u8);

/// A compiled flow: the execution graph and argument providers, by atom index.
#[pyclass(frozen, module = "ferroflow._core")]
pub struct CompiledFlow {
    pub inner: Arc<graph::CompiledFlow>,
}

fn optional_index(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

#[pymethods]
impl CompiledFlow {
    #[getter]
    fn atom_count(&self) -> usize {
        self.inner.atoms.len()
    }

    #[getter]
    fn node_count(&self) -> usize {
        self.inner.node_count
    }

    /// Atom indices in topological order.
    #[getter]
    fn topo(&self) -> Vec<u32> {
        self.inner.topo.clone()
    }

    /// The order a serial engine runs the atoms when all succeed (rounds of ready atoms), `None`
    /// when it is the atoms' own order: what a new flow's rows are laid out in.
    fn round_order(&self, py: Python<'_>) -> Option<Vec<u32>> {
        let flow = &self.inner;
        py.detach(|| graph::round_order(flow))
    }

    /// New details for the atoms `atoms` (distinct indices, in the order their rows are to be
    /// inserted; `None`: every atom, inserted in `round_order()`, the order they will run in, so
    /// that a graph's run does not write to a different page of its rows at nearly every step),
    /// with version-4 UUIDs made from `random` (16 random bytes per atom, e.g. `os.urandom`),
    /// ascending in insertion order. Returns `(uuids, rows)`: the UUIDs in the order of `atoms`
    /// (`None`: in atom order), and the rows for `SqliteStore.apply`.
    #[pyo3(signature = (random, atoms=None))]
    fn fresh_rows<'py>(
        &self,
        py: Python<'py>,
        random: &[u8],
        atoms: Option<Vec<u32>>,
    ) -> PyResult<(Bound<'py, PyList>, fresh::FreshRows)> {
        let flow = &self.inner;
        if let Some(atoms) = atoms {
            return fresh::fresh_rows(py, flow, &atoms, random, false);
        }
        let order = graph::round_order(flow).unwrap_or_else(|| (0..flow.atoms.len() as u32).collect());
        fresh::fresh_rows(py, flow, &order, random, true)
    }

    /// Atom names by index.
    fn names(&self) -> Vec<String> {
        self.inner.atoms.iter().map(|a| a.name.to_string()).collect()
    }

    /// Provider atom of each name of `requires ++ optional` (None: no atom provides it).
    fn providers(&self, atom: usize) -> Vec<Option<u32>> {
        self.inner.providers.execute(atom).iter().copied().map(optional_index).collect()
    }

    /// Provider atom of each name of `revert_requires ++ revert_optional`.
    fn revert_providers(&self, atom: usize) -> Vec<Option<u32>> {
        self.inner.providers.revert(atom).iter().copied().map(optional_index).collect()
    }

    /// The nearest retry controlling `atom`.
    fn retry_of(&self, atom: usize) -> Option<u32> {
        self.inner.retry_of.get(atom).copied().and_then(optional_index)
    }

    /// Atoms controlled by the retry `atom` (empty for tasks).
    fn retry_scope(&self, atom: usize) -> Vec<u32> {
        self.inner.retry_scope.get(atom).cloned().unwrap_or_default()
    }

    /// Edges between atoms of the execution graph, joins collapsed: `(from, to)` atom indices.
    fn atom_edges(&self) -> Vec<(u32, u32)> {
        let g = &*self.inner;
        let atoms = g.atoms.len() as u32;
        let mut edges = Vec::new();
        for from in 0..atoms {
            let mut stack: Vec<u32> = g.succs.neighbours(from).to_vec();
            let mut seen = HashSet::new();
            while let Some(node) = stack.pop() {
                if node < atoms {
                    edges.push((from, node));
                } else if seen.insert(node) {
                    stack.extend_from_slice(g.succs.neighbours(node));
                }
            }
        }
        edges
    }

    /// Per atom, required names (execute and revert) that no atom provides and `available`
    /// (store / injected names) does not hold: `[(atom name, [names])]`.
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts arguments by value
    fn unsatisfied(&self, available: HashSet<String>) -> Vec<(String, Vec<String>)> {
        let available: HashSet<&str> = available.iter().map(String::as_str).collect();
        names::unsatisfied(&self.inner, &available)
    }

    /// Deciders on links: `(decider id, history atoms, entry atoms, target atoms, depth code)`.
    fn deciders(&self) -> Vec<DeciderRow> {
        self.inner
            .deciders
            .iter()
            .map(|d| (d.decider, d.history_atoms.clone(), d.entry_atoms.clone(), d.targets.clone(), d.depth as u8))
            .collect()
    }
}

/// Compiles a lowered flow (`ferroflow._lower.lower`) into the execution graph. `atoms` is the
/// lowering's `AtomSpecs` (moved into the compiled flow, and read from there afterwards) or a
/// sequence of lowered atom tuples.
#[pyfunction]
pub fn compile(py: Python<'_>, atoms: &Bound<'_, PyAny>, root: &Bound<'_, PyAny>) -> PyResult<CompiledFlow> {
    let Ok(specs) = atoms.cast::<AtomSpecs>() else {
        let spec = convert::flow_spec(atoms, root)?;
        let compiled = py.detach(|| graph::compile_owned(spec)).map_err(PyCoreError::from)?;
        return Ok(CompiledFlow { inner: Arc::new(compiled) });
    };
    let root = convert::node(root)?;
    let atoms = specs.borrow_mut().take();
    match py.detach(|| graph::compile_or_return(FlowSpec { atoms, root })) {
        Ok(compiled) => {
            let inner = Arc::new(compiled);
            specs.borrow_mut().compiled(Arc::clone(&inner));
            Ok(CompiledFlow { inner })
        }
        Err((err, atoms)) => {
            specs.borrow_mut().restore(atoms);
            Err(PyCoreError::from(err).into())
        }
    }
}
