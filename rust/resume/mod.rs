//! Resuming a saved flow with changed code: which saved detail belongs to which compiled atom,
//! what each atom will do, and whether declarative migrations make sense.
//!
//! Everything here is pure data in, data out: the engine (Python) reads the saved details — or the
//! SQLite store reads them straight into [`SavedAtom`]s — and asks [`plan`] for one
//! [`PlanEntry`] per compiled atom and per saved detail. Matching is a hash join by name
//! (O(saved + atoms)), never a scan per atom.
//!
//! Vocabulary:
//! - an *orphan* is a saved detail whose atom is no longer in the flow (never deleted);
//! - a *retired* detail is one a migration replaced (split or merged away): kept for the record,
//!   never matched again and never reverted itself;
//! - an atom's *input fingerprint* ([`input_fingerprint`]) names, for each of its inputs, the atom
//!   that provides it; saved when the atom runs, compared on resume to report provider changes.
mod plan;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

pub use plan::{plan, PendingReverts, Plan, PlanAction, PlanEntry, PlanRequest};

use crate::error::{CoreError, CoreResult};
use crate::graph::{CompiledFlow, NONE};
use crate::sched::{Intention, State};
use crate::spec::AtomKind;

/// Name of `TaskFlow`'s pseudo atom detail holding flow-level `store` values: not an atom.
pub const INJECTOR_NAME: &str = "_TaskFlow_INJECTOR";

/// Separates an input name from its provider inside a fingerprint.
const NAME_END: char = '\u{1f}';
/// Separates two inputs inside a fingerprint.
const INPUT_END: char = '\u{1e}';

/// What to do with a completed atom whose saved version differs from its code's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionPolicy {
    /// Keep the saved result (`TaskFlow`'s behaviour; the plan shows the mismatch).
    Reuse,
    /// Run the atom again (its saved result is dropped, nothing is undone).
    Rerun,
    /// Revert the atom with its saved result, then run it again.
    RevertThenRerun,
    /// Refuse to run the flow.
    Fail,
    /// Replace the saved result by `migrate(old_version, old_result)` (a Python callable).
    Migrate,
}

impl VersionPolicy {
    pub const ALL: [VersionPolicy; 5] = [
        VersionPolicy::Reuse,
        VersionPolicy::Rerun,
        VersionPolicy::RevertThenRerun,
        VersionPolicy::Fail,
        VersionPolicy::Migrate,
    ];

    /// The option value users write (`"reuse"`, ...; `"migrate"` stands for a callable).
    pub fn name(self) -> &'static str {
        match self {
            VersionPolicy::Reuse => "reuse",
            VersionPolicy::Rerun => "rerun",
            VersionPolicy::RevertThenRerun => "revert_then_rerun",
            VersionPolicy::Fail => "fail",
            VersionPolicy::Migrate => "migrate",
        }
    }

    pub fn from_name(name: &str) -> Option<VersionPolicy> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What to do with a completed atom whose inputs now come from other atoms than when it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderPolicy {
    /// Keep its result (reported in the plan).
    Keep,
    /// Run it again.
    Rerun,
}

impl ProviderPolicy {
    pub fn name(self) -> &'static str {
        match self {
            ProviderPolicy::Keep => "keep",
            ProviderPolicy::Rerun => "rerun",
        }
    }

    pub fn from_name(name: &str) -> Option<ProviderPolicy> {
        [ProviderPolicy::Keep, ProviderPolicy::Rerun].into_iter().find(|p| p.name() == name)
    }
}

/// One saved atom detail, reduced to what resumption decisions need.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SavedAtom {
    pub name: String,
    /// `true` for a retry detail.
    pub is_retry: bool,
    /// The saved state name (`None`: never given one, same as PENDING).
    pub state: Option<Arc<str>>,
    pub intention: Option<Arc<str>>,
    pub version: Option<Arc<str>>,
    /// The input fingerprint saved when the atom last ran (`None`: never recorded).
    pub inputs: Option<Arc<str>>,
    /// How an orphan would be reverted: `"noop"`, `"class"`, `"function"`, `"unavailable"`, or
    /// `None` when no revert reference was saved.
    pub revert_kind: Option<Arc<str>>,
    /// The importable name in the revert reference (class or function).
    pub revert_name: Option<Arc<str>>,
    /// The migration that retired this detail, if one did.
    pub retired_by: Option<Arc<str>>,
}

/// Refuses saved details whose state or intention is a name this code does not know: a damaged
/// store, which must never be read as PENDING (a finished atom would run again). `flow` names the
/// flow detail the details belong to, for the message.
pub fn check_saved(details: &[SavedAtom], flow: &str) -> CoreResult<()> {
    for detail in details {
        let unknown = |field: &str, value: &str, known: &[&str]| {
            CoreError::Storage(format!(
                "atom detail '{}'{flow}: its '{field}' field holds an unknown {field} '{value}' (known: {}); the \
                 store is damaged (repair or remove that row)",
                detail.name,
                known.join(", ")
            ))
        };
        if let Some(state) = detail.state.as_deref() {
            if State::from_name(state).is_none() {
                return Err(unknown("state", state, &State::ALL.map(State::name)));
            }
        }
        if let Some(intention) = detail.intention.as_deref() {
            if Intention::from_name(intention).is_none() {
                return Err(unknown("intention", intention, &Intention::ALL.map(Intention::name)));
            }
        }
    }
    Ok(())
}

impl SavedAtom {
    /// The saved state, PENDING when none (unknown names are refused by [`check_saved`] first).
    pub fn state(&self) -> State {
        self.state.as_deref().and_then(State::from_name).unwrap_or(State::Pending)
    }

    pub fn intention(&self) -> Intention {
        self.intention.as_deref().and_then(Intention::from_name).unwrap_or(Intention::Execute)
    }

    /// Whether an atom may match this detail by its name: retired ones and the injector never do.
    pub fn matchable(&self) -> bool {
        self.retired_by.is_none() && self.name != INJECTOR_NAME
    }
}

/// The kind of a declarative migration (`ferroflow.migrations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MigrationKind {
    Rename,
    Split,
    Merge,
}

impl MigrationKind {
    pub fn name(self) -> &'static str {
        match self {
            MigrationKind::Rename => "rename",
            MigrationKind::Split => "split",
            MigrationKind::Merge => "merge",
        }
    }

    pub fn from_name(name: &str) -> Option<MigrationKind> {
        [MigrationKind::Rename, MigrationKind::Split, MigrationKind::Merge].into_iter().find(|k| k.name() == name)
    }
}

/// A rename (one source, one target), split (one source, several targets) or merge (several
/// sources, one target) of saved atom details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub kind: MigrationKind,
    pub sources: Vec<String>,
    pub targets: Vec<String>,
    /// Whether a function maps the old results to the new ones (always true for a rename); without
    /// one, split and merge targets simply run.
    pub mapped: bool,
}

impl Migration {
    /// `Rename(b → b2)`, `Split(b → b1, b2)`, `Merge(x, y → xy)`.
    pub fn describe(&self) -> String {
        let title = match self.kind {
            MigrationKind::Rename => "Rename",
            MigrationKind::Split => "Split",
            MigrationKind::Merge => "Merge",
        };
        format!("{title}({} → {})", self.sources.join(", "), self.targets.join(", "))
    }
}

/// Every reason why `migrations` (the ones not yet applied) cannot be applied to `saved` for the
/// compiled flow `flow`; empty when they can. Checked: shapes (one source for a rename or split,
/// one target for a rename or merge), names unknown to the saved details or to the flow, targets
/// that already have a detail, names used twice, and cycles or chains of renames.
pub fn check_migrations(saved: &[SavedAtom], flow: &CompiledFlow, migrations: &[Migration]) -> Vec<String> {
    let live: HashSet<&str> = saved.iter().filter(|s| s.matchable()).map(|s| s.name.as_str()).collect();
    let atoms: HashSet<&str> = flow.atoms.iter().map(|a| a.name.as_str()).collect();
    let mut problems = Vec::new();
    let mut sources: HashSet<&str> = HashSet::new();
    let mut targets: HashSet<&str> = HashSet::new();
    for migration in migrations {
        let what = migration.describe();
        let (min_sources, max_sources, min_targets, max_targets) = match migration.kind {
            MigrationKind::Rename => (1, 1, 1, 1),
            MigrationKind::Split => (1, 1, 1, usize::MAX),
            MigrationKind::Merge => (1, usize::MAX, 1, 1),
        };
        if !(min_sources..=max_sources).contains(&migration.sources.len())
            || !(min_targets..=max_targets).contains(&migration.targets.len())
        {
            problems.push(format!("{what}: wrong number of names for a {}", migration.kind.name()));
            continue;
        }
        for source in &migration.sources {
            if !live.contains(source.as_str()) {
                problems.push(format!("{what}: '{source}' has no saved detail in this flow (unknown name)"));
            }
            if !sources.insert(source.as_str()) {
                problems.push(format!("{what}: '{source}' is migrated twice"));
            }
        }
        for target in &migration.targets {
            if !atoms.contains(target.as_str()) {
                problems.push(format!("{what}: '{target}' is not an atom of the flow (unknown name)"));
            }
            if live.contains(target.as_str()) && !migration.sources.contains(target) {
                problems.push(format!("{what}: '{target}' already has a saved detail"));
            }
            if !targets.insert(target.as_str()) {
                problems.push(format!("{what}: '{target}' is the target of two migrations"));
            }
        }
    }
    problems.extend(rename_cycles(migrations));
    problems
}

/// Cycles (`a → b → a`) and chains (`a → b → c`) among renames: applied together they are
/// ambiguous, so both are refused with the path spelled out.
fn rename_cycles(migrations: &[Migration]) -> Vec<String> {
    let renames: HashMap<&str, &str> = migrations
        .iter()
        .filter(|m| m.kind == MigrationKind::Rename && m.sources.len() == 1 && m.targets.len() == 1)
        .map(|m| (m.sources[0].as_str(), m.targets[0].as_str()))
        .collect();
    let mut starts: Vec<&str> = renames.keys().copied().collect();
    starts.sort_unstable();
    let mut problems = Vec::new();
    let mut reported: HashSet<&str> = HashSet::new();
    for start in starts {
        if reported.contains(start) {
            continue;
        }
        let mut path = vec![start];
        let mut on_path: HashSet<&str> = HashSet::from([start]);
        let mut cycle = false;
        while let Some(&next) = renames.get(path[path.len() - 1]) {
            path.push(next);
            if !on_path.insert(next) {
                cycle = true;
                break;
            }
        }
        if cycle {
            problems.push(format!("cycle of renames: {}", path.join(" → ")));
        } else if path.len() > 2 {
            let last = path[path.len() - 1];
            problems.push(format!(
                "chain of renames: {} (rename '{start}' straight to '{last}' instead)",
                path.join(" → ")
            ));
        }
        if cycle || path.len() > 2 {
            reported.extend(path.iter().copied());
        }
    }
    problems
}

/// Who provides each input of `atom` (execute requires, then optional): `"name\x1fprovider"`
/// pairs joined by `\x1e`; the provider is empty when no atom provides the name (a store or
/// injected value, or nothing).
pub fn input_fingerprint(flow: &CompiledFlow, atom: usize) -> String {
    let Some(spec) = flow.atoms.get(atom) else { return String::new() };
    let providers = flow.providers.execute(atom);
    let mut out = String::new();
    for (position, name) in spec.requires.iter().chain(&spec.optional).enumerate() {
        if position > 0 {
            out.push(INPUT_END);
        }
        let provider = providers.get(position).copied().unwrap_or(NONE);
        let provider_name = if provider == NONE { "" } else { flow.atoms[provider as usize].name.as_str() };
        let _ = write!(out, "{name}{NAME_END}{provider_name}");
    }
    out
}

/// The `(input name, provider name)` pairs of a fingerprint (malformed parts are skipped).
pub fn parse_fingerprint(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(INPUT_END).filter(|part| !part.is_empty()).filter_map(|part| part.split_once(NAME_END))
}

/// The atoms reachable from `atom` in the execution graph (joins crossed, `atom` excluded), in
/// reverse topological order: the order a rewind to `atom` reverts them.
pub fn rewind_order(flow: &CompiledFlow, atom: u32) -> Vec<u32> {
    let atom_count = flow.atoms.len();
    if atom as usize >= atom_count {
        return Vec::new();
    }
    let mut seen = vec![false; flow.node_count];
    let mut stack = vec![atom];
    seen[atom as usize] = true;
    let mut reached = vec![false; atom_count];
    while let Some(node) = stack.pop() {
        for &succ in flow.succs.neighbours(node) {
            if !seen[succ as usize] {
                seen[succ as usize] = true;
                stack.push(succ);
                if (succ as usize) < atom_count {
                    reached[succ as usize] = true;
                }
            }
        }
    }
    flow.topo.iter().rev().copied().filter(|&a| reached[a as usize]).collect()
}

/// Old names → the names that took their place, from migrations (applied and pending): an input
/// that came from `b` and now comes from `b2` after `Rename(b → b2)` did not change provider.
#[derive(Debug, Default)]
pub struct ProviderAliases {
    successors: HashMap<String, Vec<String>>,
}

impl ProviderAliases {
    pub fn new<'a>(migrations: impl IntoIterator<Item = &'a Migration>) -> Self {
        let mut successors: HashMap<String, Vec<String>> = HashMap::new();
        for migration in migrations {
            for source in &migration.sources {
                successors.entry(source.clone()).or_default().extend(migration.targets.iter().cloned());
            }
        }
        ProviderAliases { successors }
    }

    /// Whether the input provided by `then` is now provided by `now` (same atom or one that took
    /// its place, through any number of migrations).
    pub fn same(&self, then: &str, now: &str) -> bool {
        if then == now {
            return true;
        }
        if self.successors.is_empty() {
            return false;
        }
        let mut seen: HashSet<&str> = HashSet::from([then]);
        let mut stack = vec![then];
        while let Some(name) = stack.pop() {
            for next in self.successors.get(name).into_iter().flatten() {
                if next == now {
                    return true;
                }
                if seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        false
    }
}

/// The inputs of a completed atom whose provider changed since it ran: `(input, then, now)`.
pub fn provider_changes<'a>(
    saved: &'a str,
    current: &'a str,
    aliases: &ProviderAliases,
) -> Vec<(&'a str, &'a str, &'a str)> {
    if saved == current {
        return Vec::new();
    }
    let then: HashMap<&str, &str> = parse_fingerprint(saved).collect();
    parse_fingerprint(current)
        .filter_map(|(name, now)| {
            let before = *then.get(name)?;
            (!aliases.same(before, now)).then_some((name, before, now))
        })
        .collect()
}

/// Whether a detail of this kind can be bound to an atom of `kind`.
pub fn same_kind(saved: &SavedAtom, kind: AtomKind) -> bool {
    saved.is_retry == (kind == AtomKind::Retry)
}

#[cfg(test)]
mod tests;
