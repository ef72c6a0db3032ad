//! The resumption plan: one entry per compiled atom and per saved detail, saying what resuming
//! will do with it and why — computed before anything runs, and without writing anything.
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;

use super::{
    input_fingerprint, provider_changes, same_kind, Migration, MigrationKind, ProviderAliases, ProviderPolicy,
    SavedAtom, VersionPolicy, INJECTOR_NAME,
};
use crate::graph::hash::{FastMap, FastSet};
use crate::graph::{CompiledFlow, NONE};
use crate::sched::{Intention, State};

/// Indices by atom or saved detail name (names from the user's own flow: the fast hasher, as
/// compilation's maps; the standard one was most of a 100,000-atom plan).
type NameIndex<'a> = FastMap<&'a str, u32>;

/// What resuming does with one atom or saved detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanAction {
    /// Completed earlier: its saved result (or state) is kept and it does not run.
    Reuse = 0,
    /// Runs (never started, or new).
    Run = 1,
    /// Had run (or started) before and runs again.
    Rerun = 2,
    /// Reverted (a rollback in progress, a rewind, `revert_then_rerun`).
    Revert = 3,
    /// A saved detail whose atom is no longer in the flow.
    Orphan = 4,
    /// Its saved detail or result comes from a migration (declarative, or a version `migrate`).
    Migrate = 5,
    /// Skipped (a decider said no).
    Ignore = 6,
    /// Resuming stops because of it (version policy `fail`, a failed revert, a task/retry clash).
    Fail = 7,
}

impl PlanAction {
    pub const ALL: [PlanAction; 8] = [
        PlanAction::Reuse,
        PlanAction::Run,
        PlanAction::Rerun,
        PlanAction::Revert,
        PlanAction::Orphan,
        PlanAction::Migrate,
        PlanAction::Ignore,
        PlanAction::Fail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlanAction::Reuse => "reuse",
            PlanAction::Run => "run",
            PlanAction::Rerun => "rerun",
            PlanAction::Revert => "revert",
            PlanAction::Orphan => "orphan",
            PlanAction::Migrate => "migrate",
            PlanAction::Ignore => "ignore",
            PlanAction::Fail => "fail",
        }
    }
}

/// Reverts the engine still has to do before running (a rewind, or `revert_then_rerun`
/// atoms), as recorded in the flow detail: atoms to revert in this order, then atoms to run again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingReverts {
    /// Why, for the plan's reasons (`"rewind to b"`).
    pub reason: String,
    pub revert: Vec<String>,
    pub rerun: Vec<String>,
}

/// Everything the plan depends on.
pub struct PlanRequest<'a> {
    pub flow: &'a CompiledFlow,
    pub saved: &'a [SavedAtom],
    /// Version policies set on atoms (by compiled atom index); others use `default_policy`.
    pub policies: &'a HashMap<u32, VersionPolicy>,
    pub default_policy: VersionPolicy,
    pub provider_policy: ProviderPolicy,
    /// The saved flow state is REVERTED: resuming restarts it from the beginning (`TaskFlow`).
    pub flow_reverted: bool,
    /// Migrations given but not applied yet: the plan shows their effect.
    pub pending: &'a [Migration],
    /// Migrations applied earlier (only their renames matter, for provider changes).
    pub applied: &'a [Migration],
    pub reverts: Option<&'a PendingReverts>,
    /// Completed atoms whose saved result cannot give every name they now provide (by compiled
    /// atom index: what it lacks, checked by the engine): the version policy decides, and
    /// `reuse` cannot apply, so it refuses.
    pub misfits: &'a HashMap<u32, String>,
    /// Orphans that a rollback could not revert (by saved index: why, checked by the engine).
    pub unrevertable: &'a HashMap<u32, String>,
}

/// One line of the plan: a compiled atom (`atom`), a saved detail (`saved`), or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    pub atom: Option<u32>,
    pub saved: Option<u32>,
    pub action: PlanAction,
    pub reason: Cow<'static, str>,
}

/// The plan, plus the matching the engine binds its atoms with.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Recorded pending reverts first (in their order), then other reverts (latest first), then
    /// the other atoms in topological order, then saved details without an atom in saved order.
    pub entries: Vec<PlanEntry>,
    /// Per compiled atom, the index of its saved detail (`NONE`: it needs a new detail).
    pub matched: Vec<u32>,
    /// Per compiled atom, its action.
    pub actions: Vec<PlanAction>,
    /// Saved details without an atom that a rollback must consider (not retired by a migration,
    /// not shadowed by a later detail of the same name, not the store's injector).
    pub orphans: Vec<u32>,
}

/// Computes the plan (a hash join of saved details and compiled atoms by name, then one decision
/// per atom): O(saved + atoms + inputs).
pub fn plan(request: &PlanRequest<'_>) -> Plan {
    let flow = request.flow;
    let saved = request.saved;
    let atom_count = flow.atoms.len();
    let by_name = SavedIndex::new(saved, flow);
    // Migrations given with a flow that has no saved atoms have nothing to do (recorded as such).
    let pending_list = if by_name.any() { request.pending } else { &[][..] };
    let pending = PendingMigrations::new(pending_list, &by_name);
    let aliases = ProviderAliases::new(request.applied.iter().chain(pending_list));
    let (revert_order, rerun_set) = pending_reverts(request.reverts, flow);

    let mut plan =
        Plan { matched: vec![NONE; atom_count], actions: vec![PlanAction::Run; atom_count], ..Plan::default() };
    let decide = |atom: u32| -> PlanEntry {
        let name = flow.atoms[atom as usize].name.as_str();
        let (saved_index, migrated_from) = match pending.renamed_from.get(name) {
            Some(&(source, migration)) => (Some(source), Some(migration)),
            None => (by_name.of_atom(atom, name), None),
        };
        let Some(saved_index) = saved_index else {
            return new_atom(atom, name, &pending, saved, &by_name);
        };
        let detail = &saved[saved_index as usize];
        let (action, reason) = if !same_kind(detail, flow.atoms[atom as usize].kind) {
            (PlanAction::Fail, Cow::Owned(kind_clash(detail)))
        } else if let Some(migration) = migrated_from {
            // Decided as once the rename is applied (what the run does), shown as carried over.
            let state = detail.state().name();
            let carried =
                format!("{} (not applied yet): its saved detail ({state}) carries over", migration.describe());
            match matched_action(request, atom, detail, &rerun_set, &aliases) {
                (PlanAction::Reuse, reason) if reason == "completed: saved result reused" => {
                    (PlanAction::Migrate, Cow::Owned(carried))
                }
                (PlanAction::Reuse, reason) => (PlanAction::Migrate, Cow::Owned(format!("{carried}; {reason}"))),
                (action, reason) => (action, Cow::Owned(format!("{carried}; {reason}"))),
            }
        } else {
            matched_action(request, atom, detail, &rerun_set, &aliases)
        };
        PlanEntry { atom: Some(atom), saved: Some(saved_index), action, reason }
    };

    // Listed in the order resuming handles them: recorded reverts, then other reverts (latest
    // first, as the scheduler does them), then the rest in flow order.
    let mut listed = vec![false; atom_count];
    let mut later = Vec::with_capacity(atom_count);
    for &atom in revert_order.iter().chain(flow.topo.iter()) {
        if std::mem::replace(&mut listed[atom as usize], true) {
            continue;
        }
        let entry = decide(atom);
        plan.matched[atom as usize] = entry.saved.unwrap_or(NONE);
        plan.actions[atom as usize] = entry.action;
        if plan.entries.len() < revert_order.len() {
            plan.entries.push(entry);
        } else {
            later.push(entry);
        }
    }
    plan.entries.extend(later.iter().rev().filter(|e| e.action == PlanAction::Revert).cloned());
    plan.entries.extend(later.into_iter().filter(|e| e.action != PlanAction::Revert));
    let mut used = vec![false; saved.len()];
    for &saved_index in plan.matched.iter().filter(|&&s| s != NONE) {
        used[saved_index as usize] = true;
    }
    for (index, detail) in saved.iter().enumerate() {
        if used[index] || detail.name == INJECTOR_NAME {
            continue;
        }
        let index = index as u32;
        let (reason, real_orphan) = orphan_reason(detail, index, &by_name, &pending, request.unrevertable);
        if real_orphan {
            plan.orphans.push(index);
        }
        plan.entries.push(PlanEntry { atom: None, saved: Some(index), action: PlanAction::Orphan, reason });
    }
    plan
}

/// Saved details by name: the last matchable one of a name wins (as `TaskFlow`'s storage).
fn saved_by_name(saved: &[SavedAtom]) -> NameIndex<'_> {
    let mut by_name = NameIndex::default();
    by_name.reserve(saved.len());
    for (index, detail) in saved.iter().enumerate() {
        if detail.matchable() {
            by_name.insert(detail.name.as_str(), index as u32);
        }
    }
    by_name
}

/// The saved details an atom matches, found by position when they were saved in the atoms' own
/// order (as the engine that ran the flow created them): then no map of 100,000 names is built,
/// which was about a quarter of a plan. The by-name map is made on first need otherwise (details
/// in another order, or a lookup by a name alone: migrations, orphans).
struct SavedIndex<'a> {
    saved: &'a [SavedAtom],
    /// `saved[offset + atom]` is the detail atom `atom` matches, for every atom (checked once).
    offset: Option<usize>,
    by_name: OnceCell<NameIndex<'a>>,
}

impl<'a> SavedIndex<'a> {
    /// How far the first atom's detail may lie from the start (the injector's, a few retired ones).
    const MAX_OFFSET: usize = 8;

    fn new(saved: &'a [SavedAtom], flow: &CompiledFlow) -> Self {
        SavedIndex { saved, offset: Self::aligned_offset(saved, flow), by_name: OnceCell::new() }
    }

    /// The offset at which the saved details line up with the atoms by name, when every atom's
    /// detail there is matchable and no matchable detail outside that run has one of their
    /// names (so none would win over it); atom names are unique, so none inside the run does.
    fn aligned_offset(saved: &[SavedAtom], flow: &CompiledFlow) -> Option<usize> {
        let atoms = &flow.atoms;
        let first = atoms.first()?;
        let offset = saved.iter().take(Self::MAX_OFFSET).position(|d| d.matchable() && d.name == first.name)?;
        let run = saved.get(offset..offset + atoms.len())?;
        if !run.iter().zip(atoms).all(|(detail, atom)| detail.matchable() && detail.name == atom.name) {
            return None;
        }
        let outside: Vec<&str> = saved[..offset]
            .iter()
            .chain(&saved[offset + atoms.len()..])
            .filter(|d| d.matchable())
            .map(|d| d.name.as_str())
            .collect();
        if !outside.is_empty() {
            let names: FastSet<&str> = atoms.iter().map(|a| a.name.as_str()).collect();
            if outside.iter().any(|name| names.contains(name)) {
                return None;
            }
        }
        Some(offset)
    }

    /// The detail atom `atom` (named `name`) matches by name, if any.
    fn of_atom(&self, atom: u32, name: &str) -> Option<u32> {
        match self.offset {
            Some(offset) => Some((offset + atom as usize) as u32),
            None => self.get(name),
        }
    }

    /// The last matchable detail named `name`, if any.
    fn get(&self, name: &str) -> Option<u32> {
        self.by_name.get_or_init(|| saved_by_name(self.saved)).get(name).copied()
    }

    fn any(&self) -> bool {
        self.offset.is_some() || self.saved.iter().any(SavedAtom::matchable)
    }
}

/// The pending migrations, indexed for the plan.
struct PendingMigrations<'a> {
    /// Rename target → (the source's saved detail, the migration).
    renamed_from: HashMap<&'a str, (u32, &'a Migration)>,
    /// Split/merge target → the migration.
    made_by: HashMap<&'a str, &'a Migration>,
    /// Split/merge source → the migration.
    replaced_by: HashMap<&'a str, &'a Migration>,
}

impl<'a> PendingMigrations<'a> {
    fn new(migrations: &'a [Migration], by_name: &SavedIndex<'_>) -> Self {
        let mut pending =
            PendingMigrations { renamed_from: HashMap::new(), made_by: HashMap::new(), replaced_by: HashMap::new() };
        for migration in migrations {
            if migration.kind == MigrationKind::Rename {
                if let (Some(source), Some(target)) = (migration.sources.first(), migration.targets.first()) {
                    if let Some(index) = by_name.get(source.as_str()) {
                        pending.renamed_from.insert(target, (index, migration));
                    }
                }
                continue;
            }
            for target in &migration.targets {
                pending.made_by.insert(target, migration);
            }
            for source in &migration.sources {
                pending.replaced_by.insert(source, migration);
            }
        }
        pending
    }
}

/// The atoms to revert (in order) and the atoms to run again, as compiled indices.
fn pending_reverts(reverts: Option<&PendingReverts>, flow: &CompiledFlow) -> (Vec<u32>, HashMap<u32, bool>) {
    let Some(reverts) = reverts else { return (Vec::new(), HashMap::new()) };
    // (built only here: a plan with no pending reverts needs no index of atoms by name)
    let atom_index: NameIndex<'_> =
        flow.atoms.iter().enumerate().map(|(i, atom)| (atom.name.as_str(), i as u32)).collect();
    let order: Vec<u32> = reverts.revert.iter().filter_map(|name| atom_index.get(name.as_str()).copied()).collect();
    let mut set: HashMap<u32, bool> =
        reverts.rerun.iter().filter_map(|n| atom_index.get(n.as_str())).map(|&a| (a, false)).collect();
    for &atom in &order {
        set.insert(atom, true);
    }
    (order, set)
}

fn new_atom(
    atom: u32,
    name: &str,
    pending: &PendingMigrations<'_>,
    saved: &[SavedAtom],
    by_name: &SavedIndex<'_>,
) -> PlanEntry {
    let (action, reason) = match pending.made_by.get(name) {
        None => (PlanAction::Run, Cow::Borrowed("new atom: no saved detail")),
        Some(migration) => {
            let finished = migration.mapped
                && migration
                    .sources
                    .iter()
                    .all(|source| by_name.get(source.as_str()).is_some_and(|index| completed(&saved[index as usize])));
            let what = migration.describe();
            if finished {
                (
                    PlanAction::Migrate,
                    Cow::Owned(format!("{what} (not applied yet): its result is computed from the saved one")),
                )
            } else {
                (
                    PlanAction::Run,
                    Cow::Owned(format!("{what} (not applied yet): the old atom had not finished, so it runs")),
                )
            }
        }
    };
    PlanEntry { atom: Some(atom), saved: None, action, reason }
}

fn completed(detail: &SavedAtom) -> bool {
    detail.state() == State::Success && detail.intention() == Intention::Execute
}

fn kind_clash(detail: &SavedAtom) -> String {
    let (is, saved) = if detail.is_retry { ("task", "retry") } else { ("retry", "task") };
    format!("is a {is} but its saved detail is a {saved} detail: rename the atom or remove the old detail")
}

fn matched_action(
    request: &PlanRequest<'_>,
    atom: u32,
    detail: &SavedAtom,
    rerun_set: &HashMap<u32, bool>,
    aliases: &ProviderAliases,
) -> (PlanAction, Cow<'static, str>) {
    let state = detail.state();
    let intention = detail.intention();
    if let Some(&revert) = rerun_set.get(&atom) {
        let why = request.reverts.map_or("", |r| r.reason.as_str());
        let executed = matches!(state, State::Success | State::Failure | State::Reverting)
            || (state == State::Running && intention != Intention::Execute);
        return if revert && executed {
            (PlanAction::Revert, Cow::Owned(format!("{why}: reverted with its saved result, then run again")))
        } else if state == State::Pending {
            (PlanAction::Run, Cow::Owned(format!("{why}: runs")))
        } else {
            (PlanAction::Rerun, Cow::Owned(format!("{why}: runs again")))
        };
    }
    if request.flow_reverted {
        return if state == State::Pending {
            (PlanAction::Run, Cow::Borrowed("the flow was REVERTED: it restarts from the beginning"))
        } else {
            (PlanAction::Rerun, Cow::Borrowed("the flow was REVERTED: it restarts from the beginning"))
        };
    }
    let fixed = |action, reason: &'static str| (action, Cow::Borrowed(reason));
    match (state, intention) {
        (State::Pending, _) => fixed(PlanAction::Run, "not started yet"),
        (State::Running, Intention::Execute) => {
            fixed(PlanAction::Rerun, "was RUNNING when its engine stopped: runs again (at least once)")
        }
        (State::Running, _) => fixed(PlanAction::Revert, "was running while the flow reverted: reverted"),
        (State::Reverting, _) => {
            fixed(PlanAction::Revert, "was REVERTING when its engine stopped: its revert runs again")
        }
        (State::Failure, Intention::Execute) => {
            fixed(PlanAction::Revert, "failed earlier: its failure is resolved again (retried or reverted)")
        }
        (State::Failure | State::Success, Intention::Revert | Intention::Retry) => {
            fixed(PlanAction::Revert, "the rollback in progress reverts it")
        }
        (State::Success, _) => completed_action(request, atom, detail, aliases),
        (State::Reverted, Intention::Retry) => fixed(PlanAction::Rerun, "reverted by its retry: runs again"),
        (State::Reverted, _) => fixed(PlanAction::Reuse, "already REVERTED: stays so"),
        (State::RevertFailure, _) => {
            fixed(PlanAction::Fail, "its revert failed: the flow stays FAILURE until engine.reset()")
        }
        (State::Ignore, _) => fixed(PlanAction::Ignore, "ignored (a decider said no)"),
        (State::Retrying, _) => fixed(PlanAction::Rerun, "its retry was running its atoms again: runs again"),
        (State::Failure, _) => fixed(PlanAction::Revert, "failed: reverted"),
    }
}

/// A completed atom: its version, then its inputs' providers, decide.
fn completed_action(
    request: &PlanRequest<'_>,
    atom: u32,
    detail: &SavedAtom,
    aliases: &ProviderAliases,
) -> (PlanAction, Cow<'static, str>) {
    let version = request.flow.atoms[atom as usize].version.as_str();
    let saved_version = detail.version.as_deref().unwrap_or("");
    let mut notes = Vec::new();
    if !version.is_empty() && !saved_version.is_empty() && version != saved_version {
        let policy = request.policies.get(&atom).copied().unwrap_or(request.default_policy);
        let changed = format!("version changed {saved_version} → {version}");
        let action = match policy {
            VersionPolicy::Reuse => None,
            VersionPolicy::Rerun => Some((PlanAction::Rerun, "runs again")),
            VersionPolicy::RevertThenRerun => {
                Some((PlanAction::Revert, "reverted with its saved result, then run again"))
            }
            VersionPolicy::Fail => Some((PlanAction::Fail, "the run is refused")),
            VersionPolicy::Migrate => Some((PlanAction::Migrate, "its saved result is migrated")),
        };
        let policy_name = policy.name();
        if let Some((action, what)) = action {
            return (action, Cow::Owned(format!("{changed}: {what} (on_version_change={policy_name})")));
        }
        if request.misfits.get(&atom).is_none() {
            notes.push(format!("{changed}: saved result reused (on_version_change={policy_name})"));
        }
    }
    if let Some(misfit) = request.misfits.get(&atom) {
        return misfit_action(request, atom, "its saved result", misfit);
    }
    if let Some(saved_inputs) = detail.inputs.as_deref() {
        let current = input_fingerprint(request.flow, atom as usize);
        let changes = provider_changes(saved_inputs, &current, aliases);
        if !changes.is_empty() {
            let listed: Vec<String> = changes
                .iter()
                .map(|(name, then, now)| format!("{name}: {} → {}", or_store(then), or_store(now)))
                .collect();
            let moved = format!("inputs now come from other providers ({})", listed.join(", "));
            if request.provider_policy == ProviderPolicy::Rerun {
                notes.push(format!("{moved}: runs again (provider_change=rerun)"));
                return (PlanAction::Rerun, Cow::Owned(notes.join("; ")));
            }
            notes.push(format!("{moved}: result kept (provider_change=keep)"));
        }
    }
    if notes.is_empty() {
        (PlanAction::Reuse, Cow::Borrowed("completed: saved result reused"))
    } else {
        (PlanAction::Reuse, Cow::Owned(notes.join("; ")))
    }
}

/// A completed atom whose saved result no longer fits what it provides: its version policy says
/// what to do; `reuse` cannot keep such a result and `fail` refuses, so both refuse the resume.
fn misfit_action(request: &PlanRequest<'_>, atom: u32, what: &str, misfit: &str) -> (PlanAction, Cow<'static, str>) {
    let policy = request.policies.get(&atom).copied().unwrap_or(request.default_policy);
    let policy_name = policy.name();
    let head = format!("{what} no longer fits what it provides ({misfit})");
    let (action, then) = match policy {
        VersionPolicy::Rerun => (PlanAction::Rerun, "runs again".to_owned()),
        VersionPolicy::RevertThenRerun => {
            (PlanAction::Revert, "reverted with its saved result, then run again".to_owned())
        }
        VersionPolicy::Migrate => (PlanAction::Migrate, "its saved result is migrated".to_owned()),
        VersionPolicy::Reuse | VersionPolicy::Fail => (
            PlanAction::Fail,
            "the resume is refused before anything is written; set on_version_change='rerun' (on the atom or the \
             load) to run it again, or a migrate callable"
                .to_owned(),
        ),
    };
    (action, Cow::Owned(format!("{head}: {then} (on_version_change={policy_name})")))
}

fn or_store(provider: &str) -> &str {
    if provider.is_empty() {
        "(store)"
    } else {
        provider
    }
}

/// Why a saved detail has no atom, and whether it is a real orphan (one a rollback considers).
fn orphan_reason(
    detail: &SavedAtom,
    index: u32,
    by_name: &SavedIndex<'_>,
    pending: &PendingMigrations<'_>,
    unrevertable: &HashMap<u32, String>,
) -> (Cow<'static, str>, bool) {
    if let Some(migration) = &detail.retired_by {
        return (Cow::Owned(format!("replaced by {migration}: kept, never reverted itself")), false);
    }
    if by_name.get(detail.name.as_str()).is_some_and(|i| i != index) {
        return (Cow::Borrowed("a later saved detail has the same name and is used instead: ignored"), false);
    }
    if let Some(migration) = pending.replaced_by.get(detail.name.as_str()) {
        return (
            Cow::Owned(format!("replaced by {} (not applied yet): kept, never reverted itself", migration.describe())),
            false,
        );
    }
    if let Some(why) = unrevertable.get(&index) {
        let state = detail.state().name();
        return (
            Cow::Owned(format!(
                "atom removed from the flow; {state}, but it cannot be reverted: {why}; a rollback stops with \
                 OrphanRevertError naming it"
            )),
            true,
        );
    }
    let reason = match detail.state() {
        State::Success | State::Reverting => match (detail.revert_kind.as_deref(), detail.revert_name.as_deref()) {
            (Some("noop"), _) => Cow::Borrowed("atom removed from the flow; completed, and its revert does nothing"),
            (Some("class" | "function"), Some(name)) => Cow::Owned(format!(
                "atom removed from the flow; completed: reverted through {name} if the flow rolls back"
            )),
            _ => Cow::Borrowed(
                "atom removed from the flow; completed, with no usable revert reference: a rollback stops with an error naming it",
            ),
        },
        State::Reverted => Cow::Borrowed("atom removed from the flow; already reverted"),
        State::RevertFailure => Cow::Borrowed(
            "atom removed from the flow; its revert failed (REVERT_FAILURE): a rollback tries it again through its \
             revert reference",
        ),
        _ => Cow::Borrowed("atom removed from the flow; it had not completed: ignored"),
    };
    (reason, true)
}
