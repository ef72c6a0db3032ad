//! One error type for the core; `py::errors` maps each variant to a `ferroflow.exceptions` class.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// Two atoms share a name (`exceptions.Duplicate`).
    Duplicate(String),
    /// The execution graph has a cycle; the message names the atoms in it (`DependencyFailure`).
    Cycle(String),
    /// Two providers of one name in one graph flow (`AmbiguousDependency`).
    Ambiguous(String),
    /// Arguments nobody provides: `(atom, names)` pairs (`MissingDependencies`).
    MissingDependencies(Vec<(String, Vec<String>)>),
    /// The spec itself is malformed (index out of range, atom used twice...) (`CompilationFailure`).
    Compilation(String),
    /// A state change the state machine does not allow (`InvalidState`).
    InvalidState(String),
    /// Unknown atom, flow or book (`NotFound`).
    NotFound(String),
    /// The store failed: I/O, corruption, schema (`StorageFailure`).
    Storage(String),
    /// A write or renewal by an owner that no longer holds the flow's lease (`LeaseLost`).
    LeaseLost(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Duplicate(m)
            | CoreError::Cycle(m)
            | CoreError::Ambiguous(m)
            | CoreError::Compilation(m)
            | CoreError::InvalidState(m)
            | CoreError::NotFound(m)
            | CoreError::Storage(m)
            | CoreError::LeaseLost(m) => f.write_str(m),
            CoreError::MissingDependencies(missing) => {
                f.write_str("unsatisfied arguments: ")?;
                for (i, (atom, names)) in missing.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "atom '{atom}' requires {names:?}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
