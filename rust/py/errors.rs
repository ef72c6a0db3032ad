//! `CoreError` → the exception classes of `ferroflow.exceptions` (defined in Python so they pickle
//! and so persisted failures name them).
use pyo3::PyErr;

use crate::error::CoreError;

mod exc {
    pyo3::import_exception!(ferroflow.exceptions, Duplicate);
    pyo3::import_exception!(ferroflow.exceptions, DependencyFailure);
    pyo3::import_exception!(ferroflow.exceptions, AmbiguousDependency);
    pyo3::import_exception!(ferroflow.exceptions, CompilationFailure);
    pyo3::import_exception!(ferroflow.exceptions, InvalidState);
    pyo3::import_exception!(ferroflow.exceptions, NotFound);
    pyo3::import_exception!(ferroflow.exceptions, StorageFailure);
    pyo3::import_exception!(ferroflow.exceptions, LeaseLost);
    pyo3::import_exception!(ferroflow.exceptions, MissingDependencies);
}

/// Wrapper so `?` converts core errors at the boundary (orphan rule: both types are foreign here).
pub struct PyCoreError(pub CoreError);

impl From<CoreError> for PyCoreError {
    fn from(err: CoreError) -> Self {
        PyCoreError(err)
    }
}

impl From<PyCoreError> for PyErr {
    fn from(err: PyCoreError) -> PyErr {
        let message = err.0.to_string();
        match err.0 {
            CoreError::Duplicate(_) => exc::Duplicate::new_err(message),
            CoreError::Cycle(_) => exc::DependencyFailure::new_err(message),
            CoreError::Ambiguous(_) => exc::AmbiguousDependency::new_err(message),
            CoreError::Compilation(_) => exc::CompilationFailure::new_err(message),
            CoreError::InvalidState(_) => exc::InvalidState::new_err(message),
            CoreError::NotFound(_) => exc::NotFound::new_err(message),
            CoreError::Storage(_) => exc::StorageFailure::new_err(message),
            CoreError::LeaseLost(_) => exc::LeaseLost::new_err(message),
            CoreError::MissingDependencies(missing) => {
                let who: Vec<String> = missing.iter().map(|(atom, _)| atom.clone()).collect();
                let names: Vec<String> = missing.into_iter().flat_map(|(_, names)| names).collect();
                exc::MissingDependencies::new_err((who.join(", "), names))
            }
        }
    }
}
