//! A boolean shared between Python and the Rust lane: set from Python (a suspend asked for, a
//! listener registered), read by the lane between atoms for the cost of an atomic load instead of
//! a Python attribute lookup.
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

#[pyclass(frozen, module = "ferroflow._core")]
#[derive(Debug, Default)]
pub struct Flag(AtomicBool);

impl Flag {
    /// The value (for the lane).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[pymethods]
impl Flag {
    #[new]
    #[pyo3(signature = (value = false))]
    fn py_new(value: bool) -> Flag {
        Flag(AtomicBool::new(value))
    }

    /// Sets the value.
    fn set(&self, value: bool) {
        self.0.store(value, Ordering::Release);
    }

    fn __bool__(&self) -> bool {
        self.is_set()
    }

    /// Pickles (and copies) as a new flag with the same value.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, pyo3::types::PyType>, (bool,)) {
        (slf.get_type(), (slf.get().is_set(),))
    }

    fn __repr__(&self) -> String {
        format!("Flag({})", if self.is_set() { "True" } else { "False" })
    }
}
