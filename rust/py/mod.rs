//! `ferroflow._core`: the thin PyO3 layer over the pure core. Python lowers flows to tuples
//! (`ferroflow._lower`), this module turns them into `spec` structs, compiles them, and exposes the
//! scheduler with its poll/complete protocol. User code is called from one place only: the serial
//! engine's fast lane (`lane`), which runs plain atoms' `execute` when nothing observes the run.
mod attrs;
mod convert;
mod errors;
mod flag;
mod flow;
mod fresh;
mod lane;
mod links;
mod lower;
mod read_ahead;
mod resume;
mod scheduler;
mod specs;
mod store;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<flow::CompiledFlow>()?;
    m.add_class::<read_ahead::RecoveredWal>()?;
    m.add_class::<specs::AtomSpecs>()?;
    m.add_class::<scheduler::Scheduler>()?;
    m.add_class::<lane::Lane>()?;
    m.add_class::<flag::Flag>()?;
    m.add_class::<lane::ProgressSink>()?;
    m.add_class::<store::SqliteStore>()?;
    m.add_class::<fresh::FreshRows>()?;
    m.add_function(wrap_pyfunction!(flow::compile, m)?)?;
    m.add_function(wrap_pyfunction!(lower::lower_plain_tasks, m)?)?;
    m.add_class::<lower::IdentitySet>()?;
    m.add_class::<links::GraphLinks>()?;
    m.add_function(wrap_pyfunction!(links::graph_links, m)?)?;
    m.add_function(wrap_pyfunction!(links::logged_graph_links, m)?)?;
    m.add_class::<resume::ResumePlan>()?;
    m.add("RESUME_ACTIONS", resume::action_names())?;
    m.add_function(wrap_pyfunction!(resume::resume_plan, m)?)?;
    m.add_function(wrap_pyfunction!(resume::resume_plan_stored, m)?)?;
    m.add_function(wrap_pyfunction!(resume::check_migrations, m)?)?;
    m.add_function(wrap_pyfunction!(resume::input_fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(resume::rewind_order, m)?)?;
    m.add_function(wrap_pyfunction!(read_ahead::recover_wal, m)?)?;
    m.add_function(wrap_pyfunction!(attrs::indices_having, m)?)?;
    Ok(())
}
