//! The lowering's loop over a flow's plain tasks (`ferroflow._lower._Lowering._add_tasks`), in Rust.
//!
//! A flow of 100,000 tasks is mostly atoms of one class built with `requires` names alone or with
//! the class's shared mappings: reading their instance dicts here costs a fraction of the same loop
//! in Python. The output is exactly what `_Lowering.add_atom` gives (spec tuples, shared lists, the
//! lowering's caches and `_seen`); any atom not in the common shape stops the loop and is left to
//! `add_atom`, which handles (or reports) it.
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PySet, PyString, PyTuple, PyType};

/// The lowering's state this loop reads and adds to (attributes of `_Lowering`).
struct Lowering<'py> {
    this: &'py Bound<'py, PyAny>,
    atoms: Bound<'py, PyList>,
    spec_atoms: Bound<'py, PyList>,
    seen: Bound<'py, PySet>,
    versions: Bound<'py, PyDict>,
    set_lists: Bound<'py, PyDict>,
    one_lists: Bound<'py, PyDict>,
    names_lists: Bound<'py, PyDict>,
    names_only: Bound<'py, PyDict>,
    no_names: Bound<'py, PyAny>,
    shared_max: usize,
}

fn attr<'py, T: pyo3::PyTypeCheck>(this: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, T>> {
    Ok(this.getattr(name)?.cast_into::<T>()?)
}

impl<'py> Lowering<'py> {
    fn new(this: &'py Bound<'py, PyAny>, shared_max: usize) -> PyResult<Self> {
        let py = this.py();
        Ok(Lowering {
            this,
            atoms: attr(this, intern!(py, "atoms"))?,
            spec_atoms: attr(this, intern!(py, "spec_atoms"))?,
            seen: attr(this, intern!(py, "_seen"))?,
            versions: attr(this, intern!(py, "_versions"))?,
            set_lists: attr(this, intern!(py, "_set_lists"))?,
            one_lists: attr(this, intern!(py, "_one_lists"))?,
            names_lists: attr(this, intern!(py, "_names_lists"))?,
            names_only: attr(this, intern!(py, "_names_only"))?,
            no_names: this.getattr(intern!(py, "_no_names"))?,
            shared_max,
        })
    }

    /// `[name]`, one list per name while the cache has room (`_Lowering._one_lists`).
    fn one_list(&self, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(found) = self.one_lists.get_item(name)? {
            return Ok(found);
        }
        let made = PyList::new(name.py(), [name])?.into_any();
        if self.one_lists.len() < self.shared_max {
            self.one_lists.set_item(name, &made)?;
        }
        Ok(made)
    }

    /// The list of an atom's (usually shared) set of names, by the set object's identity
    /// (`_Lowering._set_list`, which makes and remembers it when it is new).
    fn set_list(&self, names: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let key = id_of(names)?;
        if let Some(found) = self.set_lists.get_item(&key)? {
            return found.get_item(0);
        }
        self.this.call_method1(intern!(names.py(), "_set_list"), (names,))
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

    /// The requires list of a lazily built atom whose requires are its names: `[]`, `[name]` or the
    /// names without repeats, shared while the caches have room.
    fn names_list(&self, names: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        match names.len() {
            0 => Ok(self.no_names.clone()),
            1 => self.one_list(&names.get_item(0)?),
            _ => {
                if let Some(found) = self.names_lists.get_item(names)? {
                    return Ok(found);
                }
                let unique = PyDict::new(names.py());
                for name in names.iter() {
                    unique.set_item(name, names.py().None())?;
                }
                let made = PyList::new(names.py(), unique.keys())?.into_any();
                if self.names_lists.len() < self.shared_max {
                    self.names_lists.set_item(names, &made)?;
                }
                Ok(made)
            }
        }
    }

    /// `(requires, optional)` of an atom in the common shape, or None (leave it to `add_atom`).
    fn arg_lists(
        &self,
        state: &Bound<'py, PyDict>,
        arg_attrs: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
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
            return Ok(Some((self.names_list(&names)?, self.no_names.clone())));
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
        Ok(Some((self.set_list(&args.get_item(4)?)?, self.no_names.clone())))
    }

    /// The provides list, or None (leave it to `add_atom`).
    fn provided_list(
        &self,
        atom: &Bound<'py, PyAny>,
        state: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = atom.py();
        let provides_key = intern!(py, "provides");
        match state.get_item(intern!(py, "_lazy_provides"))?.filter(|v| !v.is_none()) {
            None => {
                let provides = match state.get_item(provides_key)? {
                    Some(provides) => provides,
                    None => atom.getattr(provides_key)?,
                };
                Ok(Some(self.set_list(&provides)?))
            }
            Some(_) if state.contains(provides_key)? => Ok(None),
            Some(name) => Ok(Some(self.one_list(&name)?)),
        }
    }

    fn version_text(&self, atom: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = atom.py();
        let version = atom.getattr(intern!(py, "version"))?;
        if let Some(found) = self.versions.get_item(id_of(&version)?)? {
            return found.get_item(0);
        }
        self.this.call_method1(intern!(py, "_version_text"), (atom, version))
    }
}

/// Python's `id(obj)`.
fn id_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyInt>> {
    Ok((obj.as_ptr() as usize).into_pyobject(obj.py())?)
}

/// Adds `children[position:]` to the lowering `lowering` (a `ferroflow._lower._Lowering`) as
/// `add_atom` would, with their `("atom", index)` nodes appended to `nodes`, while they are instances
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
    shared_max: usize,
) -> PyResult<usize> {
    let py = lowering.py();
    let state_key = intern!(py, "__dict__");
    let (name_key, inject_key, priority_key) = (intern!(py, "name"), intern!(py, "inject"), intern!(py, "priority"));
    let atom_tag = intern!(py, "atom");
    let this = Lowering::new(lowering, shared_max)?;
    let mut position = position;
    while position < children.len() {
        let atom = children.get_item(position)?;
        if !atom.get_type().is(plain) {
            break;
        }
        let Ok(state) = atom.getattr(state_key)?.cast_into::<PyDict>() else { break };
        let Some(name) = state.get_item(name_key)? else { break };
        // (compared as Python compares: a name `to_str` cannot encode, such as one with a lone
        // surrogate, is still a name)
        if !name.is_exact_instance_of::<PyString>() || name.eq(reserved)? {
            break;
        }
        match state.get_item(inject_key)? {
            Some(inject) if !inject.is_truthy()? => {}
            _ => break,
        }
        let id = id_of(&atom)?;
        if this.seen.contains(&id)? {
            break;
        }
        let Some((requires, optional)) = this.arg_lists(&state, arg_attrs)? else { break };
        let Some(provided) = this.provided_list(&atom, &state)? else { break };
        let version = this.version_text(&atom)?;
        let mut priority = atom.getattr(priority_key)?;
        if !priority.is_exact_instance_of::<PyInt>() {
            priority = py.get_type::<PyInt>().call1((priority,))?;
        }
        this.seen.add(id)?;
        let spec = PyTuple::new(
            py,
            [
                name.into_any(),
                0u8.into_pyobject(py)?.into_any(),
                version,
                priority,
                requires.clone(),
                optional.clone(),
                requires,
                optional,
                provided,
            ],
        )?;
        this.spec_atoms.append(spec)?;
        let index = this.atoms.len();
        this.atoms.append(&atom)?;
        nodes.append((atom_tag, index))?;
        position += 1;
    }
    Ok(position)
}
