//! ferroflow's Rust core. The pure core (spec, graph, names, sched, store) has no Python in it;
//! `py` (behind the `python` feature) is the thin PyO3 layer that exposes it as `ferroflow._core`.
pub mod error;
pub mod graph;
pub mod names;
pub mod resume;
pub mod sched;
pub mod spec;
pub mod store;

#[cfg(feature = "python")]
mod py;
