//! The lowering's loop over a flow's plain tasks (`ferroflow._lower._Lowering._add_tasks`), in Rust.
//!
//! A flow of 100,000 tasks is mostly atoms of one class built with `requires` names alone or with
//! the class's shared mappings: reading their instance dicts here costs a fraction of the same loop
//! in Python. The output is exactly what `_Lowering.add_atom` gives (the atom's spec pushed to the
//! lowering's `AtomSpecs` without a Python tuple, its result keys, `_seen`); any atom not in the
//! common shape stops the loop and is left to `add_atom`, which handles (or reports) it.
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple, PyType};

use super::convert;
use super::specs::AtomSpecs;
use crate::graph::hash::{FastMap, FastSet};
use crate::spec::{AtomKind, AtomSpec, Name};

/// The atoms and flows a lowering has visited, by identity (`_Lowering._seen`): a set of
/// addresses, so that the loop below adds 100,000 atoms without a Python int (and a set entry)
/// each. The lowered tree keeps every visited object alive, so an address stays its object's.
#[pyclass(module = "ferroflow._core")]
#[derive(Default)]
pub struct IdentitySet {
    ids: FastSet<usize>,
}

#[pymethods]
impl IdentitySet {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Adds `obj`; False when it was there already (nothing changes).
    fn add(&mut self, obj: &Bound<'_, PyAny>) -> bool {
        self.ids.insert(obj.as_ptr() as usize)
    }

    fn __contains__(&self, obj: &Bound<'_, PyAny>) -> bool {
        self.ids.contains(&(obj.as_ptr() as usize))
    }

    fn __len__(&self) -> usize {
        self.ids.len()
    }
}

/// The lowering's state this loop reads and adds to (attributes of `_Lowering`), and what it
/// remembers while it runs (by object identity: the atoms keep those objects alive meanwhile).
struct Lowering<'py> {
    this: &'py Bound<'py, PyAny>,
    atoms: Bound<'py, PyList>,
    spec_atoms: Bound<'py, AtomSpecs>,
    save_as: Bound<'py, PyList>,
    whole: Bound<'py, PyAny>,
    seen: Bound<'py, IdentitySet>,
    versions: Bound<'py, PyDict>,
    names_only: Bound<'py, PyDict>,
    /// id of a set of names -> its names (and the set, kept alive so that its id stays its own)
    set_names: FastMap<usize, (Vec<Name>, Bound<'py, PyAny>)>,
    /// id of a version object -> its text (and the object, kept alive)
    version_texts: FastMap<usize, (Name, Bound<'py, PyAny>)>,
    /// The class's `version` and `priority` when they are plain values (no descriptor): an
    /// instance's is then in its dict or is the class's, read without an attribute lookup.
    class_version: Option<Bound<'py, PyAny>>,
    class_priority: Option<Bound<'py, PyAny>>,
}

/// `_Lowering._plain_class_value(cls, name)`: the class's plain value, or None (read the attribute).
fn plain_class_value<'py>(
    this: &Bound<'py, PyAny>,
    cls: &Bound<'py, PyType>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let value = this.call_method1(intern!(cls.py(), "_plain_class_value"), (cls, name))?;
    Ok((!value.is_none()).then_some(value))
}

fn attr<'py, T: pyo3::PyTypeCheck>(this: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, T>> {
    Ok(this.getattr(name)?.cast_into::<T>()?)
}

impl<'py> Lowering<'py> {
    fn new(this: &'py Bound<'py, PyAny>, plain: &Bound<'py, PyType>) -> PyResult<Self> {
        let py = this.py();
        Ok(Lowering {
            this,
            atoms: attr(this, intern!(py, "atoms"))?,
            spec_atoms: attr(this, intern!(py, "spec_atoms"))?,
            save_as: attr(this, intern!(py, "save_as"))?,
            whole: this.getattr(intern!(py, "_whole"))?,
            seen: attr(this, intern!(py, "_seen"))?,
            versions: attr(this, intern!(py, "_versions"))?,
            names_only: attr(this, intern!(py, "_names_only"))?,
            set_names: FastMap::default(),
            version_texts: FastMap::default(),
            class_version: plain_class_value(this, plain, intern!(py, "version"))?,
            class_priority: plain_class_value(this, plain, intern!(py, "priority"))?,
        })
    }

    /// The names of an atom's (usually shared) set of names, by the set object's identity (read
    /// through `_Lowering._set_list` the first time).
    fn set_names(&mut self, names: &Bound<'py, PyAny>) -> PyResult<Vec<Name>> {
        let key = names.as_ptr() as usize;
        if let Some((found, _)) = self.set_names.get(&key) {
            return Ok(found.clone());
        }
        let listed = self.this.call_method1(intern!(names.py(), "_set_list"), (names,))?;
        let made = convert::names(&listed)?;
        self.set_names.insert(key, (made.clone(), names.clone()));
        Ok(made)
    }

    /// Whether atoms with the class plan `plan` have their requires as their names alone.
    fn names_only(&self, plan: &Bound<'py, PyAny>) -> PyResult<bool> {
        if let Some(found) = self.names_only.get_item(plan)? {
            return found.is_truthy();
        }
        let simple = plan.getattr(intern!(plan.py(), "names_only"))?.is_truthy()?;
        self.names_only.set_item(plan, simple)?;
        Ok(simple)
    }

    /// `(requires, optional)` of an atom in the common shape, or None (leave it to `add_atom`).
    fn arg_names(
        &mut self,
        state: &Bound<'py, PyDict>,
        arg_attrs: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<(Vec<Name>, Vec<Name>)>> {
        let py = state.py();
        if let Some(lazy) = state.get_item(intern!(py, "_lazy_args"))?.filter(|v| !v.is_none()) {
            // built with requires names alone, its mappings not made: (plan, names, rebind)
            let Ok(lazy) = lazy.cast_into::<PyTuple>() else { return Ok(None) };
            if lazy.len() != 3 || !lazy.get_item(2)?.is_none() {
                return Ok(None);
            }
            for attr in arg_attrs.iter() {
                if state.contains(attr)? {
                    return Ok(None);
                }
            }
            if !self.names_only(&lazy.get_item(0)?)? {
                return Ok(None);
            }
            let Ok(names) = lazy.get_item(1)?.cast_into::<PyTuple>() else { return Ok(None) };
            let Some(names) = unique_names(&names) else { return Ok(None) };
            return Ok(Some((names, Vec::new())));
        }
        // built with its class's shared mappings, never replaced:
        // (rebind, optional, revert_rebind, revert_optional, requires set, identity)
        let Some(args) = state.get_item(intern!(py, "_shared_args"))? else { return Ok(None) };
        let Ok(args) = args.cast_into::<PyTuple>() else { return Ok(None) };
        if args.len() < 6 || !args.get_item(5)?.is_truthy()? {
            return Ok(None);
        }
        let keys = [
            intern!(py, "rebind"),
            intern!(py, "optional"),
            intern!(py, "revert_rebind"),
            intern!(py, "revert_optional"),
        ];
        for (position, key) in keys.into_iter().enumerate() {
            let current = state.get_item(key)?.unwrap_or_else(|| py.None().into_bound(py));
            if !args.get_item(position)?.is(&current) {
                return Ok(None);
            }
        }
        Ok(Some((self.set_names(&args.get_item(4)?)?, Vec::new())))
    }

    /// The provided names, or None (leave it to `add_atom`).
    fn provided_names(&mut self, atom: &Bound<'py, PyAny>, state: &Bound<'py, PyDict>) -> PyResult<Option<Vec<Name>>> {
        let py = atom.py();
        let provides_key = intern!(py, "provides");
        match state.get_item(intern!(py, "_lazy_provides"))?.filter(|v| !v.is_none()) {
            None => {
                let provides = match state.get_item(provides_key)? {
                    Some(provides) => provides,
                    None => atom.getattr(provides_key)?,
                };
                Ok(Some(self.set_names(&provides)?))
            }
            Some(_) if state.contains(provides_key)? => Ok(None),
            Some(name) => Ok(convert::name(&name).ok().map(|name| vec![name])),
        }
    }

    /// Attribute `name` of `atom`, whose class's value is `class_value` when it is a plain one.
    fn read(
        atom: &Bound<'py, PyAny>,
        state: &Bound<'py, PyDict>,
        name: &Bound<'py, PyString>,
        class_value: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match class_value {
            Some(value) => Ok(state.get_item(name)?.unwrap_or_else(|| value.clone())),
            None => atom.getattr(name),
        }
    }

    fn priority(&self, atom: &Bound<'py, PyAny>, state: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        Self::read(atom, state, intern!(atom.py(), "priority"), self.class_priority.as_ref())
    }

    fn version_text(&mut self, atom: &Bound<'py, PyAny>, state: &Bound<'py, PyDict>) -> PyResult<Name> {
        let py = atom.py();
        let version = Self::read(atom, state, intern!(py, "version"), self.class_version.as_ref())?;
        let key = version.as_ptr() as usize;
        if let Some((found, _)) = self.version_texts.get(&key) {
            return Ok(found.clone());
        }
        let text = match self.versions.get_item(id_of(&version)?)? {
            Some(found) => found.get_item(0)?,
            None => self.this.call_method1(intern!(py, "_version_text"), (atom, &version))?,
        };
        let text = convert::name(&text)?;
        self.version_texts.insert(key, (text.clone(), version));
        Ok(text)
    }

    /// The atom's result keys, as `ferroflow._lower.result_key` reads them.
    fn result_key(&self, atom: &Bound<'py, PyAny>, state: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        let py = atom.py();
        let save_as_key = intern!(py, "save_as");
        if let Some(save_as) = state.get_item(save_as_key)?.filter(|v| !v.is_none()) {
            return Ok(save_as);
        }
        match state.get_item(intern!(py, "_lazy_provides"))? {
            Some(name) if name.is_exact_instance_of::<PyString>() => Ok(self.whole.clone()),
            _ => atom.getattr(save_as_key),
        }
    }
}

/// The names of a tuple without repeats (first place kept); None when one is not a `str` that
/// `to_str` can read (left to `add_atom`).
fn unique_names(names: &Bound<'_, PyTuple>) -> Option<Vec<Name>> {
    let mut unique: Vec<Name> = Vec::with_capacity(names.len());
    for name in names.iter() {
        let name = name.cast_into::<PyString>().ok()?;
        let text = name.to_str().ok()?;
        if !unique.iter().any(|seen| seen == text) {
            unique.push(Name::new(text));
        }
    }
    Some(unique)
}

/// Python's `id(obj)`.
fn id_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyInt>> {
    Ok((obj.as_ptr() as usize).into_pyobject(obj.py())?)
}

/// Adds `children[position:]` to the lowering `lowering` (a `ferroflow._lower._Lowering`) as
/// `add_atom` would, with their nodes (their indices) appended to `nodes`, while they are instances
/// of `plain` (a class `_plain_class` accepts) in the common shape: a `str` name other than
/// `reserved`, nothing injected, built with requires names alone or the class's shared mappings,
/// `provides` one name or a set. Returns the position of the first child it did not take.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn lower_plain_tasks<'py>(
    lowering: &Bound<'py, PyAny>,
    children: &Bound<'py, PyList>,
    position: usize,
    plain: &Bound<'py, PyType>,
    nodes: &Bound<'py, PyList>,
    arg_attrs: &Bound<'py, PyTuple>,
    reserved: &Bound<'py, PyString>,
) -> PyResult<usize> {
    let py = lowering.py();
    let state_key = intern!(py, "__dict__");
    let (name_key, inject_key) = (intern!(py, "name"), intern!(py, "inject"));
    let mut this = Lowering::new(lowering, plain)?;
    this.spec_atoms.borrow_mut().reserve(children.len().saturating_sub(position));
    let mut position = position;
    while position < children.len() {
        let atom = children.get_item(position)?;
        if !atom.get_type().is(plain) {
            break;
        }
        let Ok(state) = atom.getattr(state_key)?.cast_into::<PyDict>() else { break };
        let Some(name) = state.get_item(name_key)? else { break };
        // (compared as Python compares; a name `to_str` cannot read, such as one with a lone
        // surrogate, is left to `add_atom`, which reports it)
        if !name.is_exact_instance_of::<PyString>() || name.eq(reserved)? {
            break;
        }
        let Ok(name) = convert::name(&name) else { break };
        match state.get_item(inject_key)? {
            Some(inject) if !inject.is_truthy()? => {}
            _ => break,
        }
        let Some((requires, optional)) = this.arg_names(&state, arg_attrs)? else { break };
        let Some(provides) = this.provided_names(&atom, &state)? else { break };
        let version = this.version_text(&atom, &state)?;
        let mut priority = this.priority(&atom, &state)?;
        if !priority.is_exact_instance_of::<PyInt>() {
            priority = py.get_type::<PyInt>().call1((priority,))?;
        }
        let Ok(priority) = priority.extract::<i32>() else { break };
        let save_as = this.result_key(&atom, &state)?;
        // (seen already: the same atom twice, which add_atom reports)
        if !this.seen.borrow_mut().add(&atom) {
            break;
        }
        this.spec_atoms.borrow_mut().push(AtomSpec {
            name,
            kind: AtomKind::Task,
            version,
            priority,
            revert: None, // (reverts with its execute names)
            requires,
            optional,
            provides,
        })?;
        let index = this.atoms.len();
        this.atoms.append(&atom)?;
        this.save_as.append(save_as)?;
        nodes.append(index)?;
        position += 1;
    }
    Ok(position)
}
