"""The resumption plan (``engine.plan()``) and the inputs the Rust core computes it from.

The plan has one `PlanEntry` per compiled atom and per saved atom detail: its saved state and
version, its current version, the ``action`` resuming takes and the ``reason``. Matching saved
details to atoms and deciding actions happen in Rust (``ferroflow._core.resume_plan``); with the
SQLite backend the saved details are even read by Rust, so a 100,000-atom plan makes no Python
object per saved detail until its entries are looked at.

Actions: ``reuse`` (completed: kept, not run), ``run`` (never started, or new), ``rerun`` (had
started or completed, runs again), ``revert`` (reverted: a rollback in progress, a rewind,
``revert_then_rerun``), ``orphan`` (a saved detail whose atom left the flow), ``migrate`` (its
detail or result comes from a migration), ``ignore`` (a decider said no) and ``fail`` (resuming
stops because of it: version policy ``fail``, a failed revert, a task/retry clash, a saved result
that no longer fits).

Two things the core cannot see are checked here, and fed back to it (the plan is computed again,
a rare path): a completed atom kept whose saved result cannot give every name it now
``provides`` (`misfits`: its version policy decides — ``rerun``, ``revert_then_rerun`` or a
migrate callable — and ``reuse`` or ``fail`` refuse the resume with `ProvidesMismatch`, before
anything is written), and an orphan whose revert reference no longer resolves under trust
(`unrevertable`: only trusted modules are imported, nothing is called), which a rollback could
not revert.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import json
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, overload

from ferroflow import _core, exceptions, states
from ferroflow import migrations as mig
from ferroflow.persistence import models

#: Action names by the code the core uses.
ACTIONS: tuple[str, ...] = tuple(_core.RESUME_ACTIONS)
REUSE, RUN, RERUN, REVERT, ORPHAN, MIGRATE, IGNORE, FAIL = (
    ACTIONS.index(name) for name in ("reuse", "run", "rerun", "revert", "orphan", "migrate", "ignore", "fail")
)
#: Flow detail meta key of the reverts still to do before running (a rewind, revert_then_rerun).
PENDING_REVERTS = "pending_reverts"


class PlanEntry(NamedTuple):
    """What resuming does with one atom or saved detail."""

    name: str
    #: The saved detail's state (``None``: no saved detail, a new atom).
    saved_state: str | None
    saved_version: str | None
    #: The current code's version (``None``: no atom, an orphan).
    version: str | None
    action: str
    reason: str


class ResumePlan(Sequence[PlanEntry]):
    """The plan: a sequence of `PlanEntry` (reverts still pending first, then atoms in the order
    they run, then saved details without an atom). ``plan["b"]`` is the entry of atom ``b``."""

    def __init__(self, core_plan: Any, flow_uuid: str, flow_name: str) -> None:
        self._core = core_plan
        self.flow_uuid = flow_uuid
        self.flow_name = flow_name
        self._raw_entries: list[tuple] | None = None
        self._entries: list[PlanEntry] | None = None
        self._by_name: dict[str, PlanEntry] | None = None

    def _raw(self) -> list[tuple]:
        """The core's entry tuples ``(name, saved_state, saved_version, version, action, reason,
        atom index, saved index)``, read once (the table and the counts need no `PlanEntry`)."""
        if self._raw_entries is None:
            # Plain tuples of strings cannot form cycles: the collector has nothing to find among
            # them, and walking a large flow's heap on each of their allocations would dominate.
            enabled = gc.isenabled()
            gc.disable()
            try:
                self._raw_entries = self._core.entries()
            finally:
                if enabled:
                    gc.enable()
        return self._raw_entries

    @property
    def entries(self) -> list[PlanEntry]:
        """Every entry, built on first use."""
        if self._entries is None:
            raw = self._raw()
            enabled = gc.isenabled()
            gc.disable()  # (see _raw)
            try:
                self._entries = list(map(PlanEntry._make, map(_FIELDS, raw)))
            finally:
                if enabled:
                    gc.enable()
        return self._entries

    def __len__(self) -> int:
        return self._core.entry_count

    @overload
    def __getitem__(self, key: int) -> PlanEntry: ...
    @overload
    def __getitem__(self, key: slice) -> list[PlanEntry]: ...
    @overload
    def __getitem__(self, key: str) -> PlanEntry: ...
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return self._names()[key]
            except KeyError:
                raise KeyError(f"no atom or saved detail named {key!r} in the plan") from None
        return self.entries[key]

    def __iter__(self) -> Iterator[PlanEntry]:
        return iter(self.entries)

    def _names(self) -> dict[str, PlanEntry]:
        if self._by_name is None:
            by_name: dict[str, PlanEntry] = {}
            for entry in self.entries:
                by_name.setdefault(entry.name, entry)  # an atom comes before an orphan of its name
            self._by_name = by_name
        return self._by_name

    def actions(self) -> dict[str, str]:
        """``{name: action}`` (an atom wins over an orphan of the same name)."""
        return {name: entry.action for name, entry in self._names().items()}

    def counts(self) -> collections.Counter[str]:
        """How many entries take each action (counted in Rust: no entry is made for it)."""
        return collections.Counter(self._core.action_counts())

    def orphans(self) -> list[str]:
        """Names of saved details whose atom is no longer in the flow."""
        return [entry.name for entry in self.entries if entry.action == "orphan"]

    def to_json(self) -> list[dict[str, Any]]:
        """The entries as dicts (for tools)."""
        return [entry._asdict() for entry in self.entries]

    def format_table(self, fold: bool = False, escape: Callable[[str], str] | None = None) -> str:
        """A plain-text table: one line per entry; with ``fold``, each run of at least `FOLD_RUN`
        consecutive entries with the same saved state, saved version, version, action and reason
        is one line naming its first and last atom and how many it holds (``t0 … t49999 (50000
        atoms)``). ``escape`` (``ferroflow.cli.common.printable``) rewrites cells holding
        characters that are not printable, before the columns are aligned."""
        if fold:
            # Only the entries the table shows are made: a run's first and last, and the others.
            segments = self._core.fold_runs(FOLD_RUN)
            picked = [i for start, end in segments for i in ((start, end - 1) if end - start > 1 else (start,))]
            made = self._raw_entries
            raw = self._core.entries(picked) if made is None else [made[index] for index in picked]
            return _table(_folded(segments, raw), escape)
        raw = self._raw()
        enabled = gc.isenabled()
        gc.disable()  # (tuples of strings: see _raw)
        try:
            return _table(list(zip(*map(_FIELDS, raw), strict=True)) or [()] * len(_HEADERS), escape)
        finally:
            if enabled:
                gc.enable()

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {action}" for action, n in sorted(self.counts().items()))
        return f"<ResumePlan of flow {self.flow_name!r} ({self.flow_uuid}): {counts or 'empty'}>"


# -- inputs ----------------------------------------------------------------------------------------


def saved_tuple(ad: Any, recorded: tuple[str | None, str | None, str | None] | None = None) -> tuple:
    """A saved atom detail in the core's form (see ``rust/py/resume.rs``); ``recorded`` is its
    resume summary ``(inputs, revert kind, revert name)`` when the backend keeps one."""
    from ferroflow.persistence import models

    marker = ad.meta.get(mig.ATOM_META) if ad.meta else None
    migrated = marker.get("migrated") if isinstance(marker, dict) else None
    inputs, revert_kind, revert_name = recorded or (None, None, None)
    version = ad.version
    return (
        ad.name,
        isinstance(ad, models.RetryDetail),
        ad.state,
        ad.intention,
        None if version is None else str(version),
        inputs,
        revert_kind,
        revert_name,
        migrated.get("migration") if isinstance(migrated, dict) else None,
    )


def version_policy(engine: Any, atom: Any) -> Any:
    """The version policy of ``atom``: its own, else the engine's ``on_version_change`` option."""
    policy = getattr(atom, "on_version_change", None)
    if policy is None:
        policy = engine.options.get("on_version_change")
    return mig.validate_version_policy(policy, f"atom {atom.name!r}") or mig.DEFAULT_VERSION_POLICY


def core_options(
    engine: Any, flow_meta: dict[str, Any], flow_state: str | None, reverts: dict[str, Any] | None, with_pending: bool
) -> dict[str, Any]:
    """Keyword arguments of ``_core.resume_plan`` / ``resume_plan_stored`` for ``engine``."""
    policies, default_policy, provider_policy = _policies(engine)
    pending: list[Any] = []
    if with_pending:
        applied = mig.applied_ids(flow_meta)
        given = mig.check_migrations(engine.options.get("migrations"))
        pending = [m.as_tuple() for m in given if m.id not in applied]
    return {
        "policies": policies,
        "default_policy": default_policy,
        "provider_policy": provider_policy,
        "flow_reverted": flow_state == states.REVERTED,
        "pending": pending,
        "applied": mig.applied_tuples(flow_meta),
        "reverts": None
        if not reverts
        else (reverts.get("reason", ""), list(reverts.get("revert", ())), list(reverts.get("rerun", ()))),
    }


def _policies(engine: Any) -> tuple[dict[int, str], str, str]:
    """``(own version policies by atom, default version policy, provider policy)`` of ``engine``:
    decided once per compilation and options (the engines `ferroflow.engines.many` resumes share
    one compilation, so its flows do not each look at every atom)."""
    options = engine.options
    given = (options.get("on_version_change"), options.get("provider_change"))
    compilation = engine.compilation
    cached = compilation.resume_policies
    if cached is not None and cached[0][0] is given[0] and cached[0][1] is given[1]:
        return cached[1]
    default = mig.validate_version_policy(given[0], "the load")
    policies = {}
    atoms = compilation.atoms
    having = compilation.own_policy_atoms  # (read by the engine's prepare with what atoms inject)
    if having is None:
        own_policies = map(getattr, atoms, itertools.repeat("on_version_change"), itertools.repeat(None))
        having = _indices_of(map(operator.is_not, own_policies, itertools.repeat(None)))  # (the few that have one)
    for index in having:
        atom = atoms[index]
        own = atom.on_version_change
        mig.validate_version_policy(own, f"atom {atom.name!r}")
        policies[index] = "migrate" if callable(own) else own
    found = (
        policies,
        "migrate" if callable(default) else (default or mig.DEFAULT_VERSION_POLICY),
        mig.validate_provider_policy(given[1]),
    )
    compilation.resume_policies = (given, found)
    return found


def rewind_reverts(engine: Any, to: str) -> dict[str, Any]:
    """The pending-reverts record of a rewind to atom ``to``."""
    index = engine.storage.index_of(to)
    atoms = engine.compilation.atoms
    names = [atoms[i].name for i in _core.rewind_order(engine.compilation.compiled, index)]
    return {"reason": f"rewind to {to}", "revert": names, "rerun": names}


def structured_provides(engine: Any) -> list[int]:
    """The compiled atoms whose ``provides`` pick items out of their result (a list, tuple or
    set): the only ones a saved result can fail to fit. Computed once per compilation (the
    engines `ferroflow.engines.many` resumes share one, and its result keys)."""
    compilation = engine.compilation
    found = compilation.structured_provides
    if found is None:
        # (the result keys the lowering read: an empty mapping for one name, not made yet)
        result_keys = engine._save_as
        found = []
        for index in compilation.spec_atoms.providing():  # (atoms providing nothing: none)
            save_as = result_keys[index]
            if save_as and (len(save_as) > 1 or None not in save_as.values()):
                found.append(index)
        compilation.structured_provides = found
    return found


def _indices_of(values: Iterator[Any]) -> Iterator[int]:
    """The positions of the true values (at C speed: a Python loop over 100,000 atoms would be most
    of what a plan costs in Python)."""
    return itertools.compress(itertools.count(), values)


def result_misfit(result: Any, save_as: Any) -> str | None:
    """What of ``save_as`` (name -> index or key) ``result`` cannot give, or None when it fits."""
    missing = []
    for name, key in save_as.items():
        if key is None:
            continue
        try:
            result[key]
        except (LookupError, TypeError):
            missing.append(f"no item {key!r} for {name!r}")
    if not missing:
        return None
    return f"the saved result, a {type(result).__name__}, has " + ", ".join(missing)


def misfits(engine: Any, core_plan: Any, detail_of: Callable[[int], Any]) -> dict[int, str]:
    """``{compiled atom: what its saved result lacks}`` for the completed atoms the plan keeps
    (or renames) whose saved result no longer fits their ``provides``; ``detail_of(saved
    index)`` gives a saved detail's model."""
    counts = core_plan.action_counts()
    if not counts.get(ACTIONS[REUSE]) and not counts.get(ACTIONS[MIGRATE]):
        return {}  # (no saved result kept: a new flow, for one)
    candidates = structured_provides(engine)
    if not candidates:
        return {}
    actions, matched = core_plan.actions, core_plan.matched
    atoms = engine.compilation.atoms
    found = {}
    for index in candidates:
        action, position = actions[index], matched[index]
        if position < 0 or action not in (REUSE, MIGRATE):
            continue
        if action == MIGRATE and core_plan.saved_name(position) == atoms[index].name:
            continue  # a version migrate: the result is replaced (checked once migrated)
        ad = detail_of(position)
        if ad is None or ad.state != states.SUCCESS or (ad.intention or states.EXECUTE) != states.EXECUTE:
            continue
        result = ad.results
        if isinstance(ad, models.RetryDetail):
            result = result[-1][0] if result else None
        problem = result_misfit(result, atoms[index].save_as)
        if problem is not None:
            found[index] = problem
    return found


#: Saved states of orphans a rollback reverts (see `ferroflow.engines.resumption`).
ORPHANS_TO_REVERT = frozenset({states.SUCCESS, states.REVERTING, states.REVERT_FAILURE})


def unrevertable(
    engine: Any, core_plan: Any, detail_of: Callable[[int], Any], record_of: Callable[[Any], dict[str, Any]]
) -> dict[int, str]:
    """``{saved index: why}`` of the orphans a rollback would revert whose revert reference does
    not resolve (missing, unavailable, untrusted or no longer importable); ``record_of(detail)``
    gives a detail's decoded resume record. Nothing but trusted modules is imported."""
    from ferroflow.engines import revert_refs

    found: dict[int, str] = {}
    trusted = None
    fd = engine._flow_detail
    flow = f"{getattr(fd, 'name', None)!r} ({getattr(fd, 'uuid', None)})"
    for position in core_plan.orphans:
        ad = detail_of(position)
        if ad is None or ad.state not in ORPHANS_TO_REVERT:
            continue
        try:
            trusted = trusted or revert_refs.trust_for(engine)
            revert_refs.resolve(ad.name, record_of(ad).get("revert"), trusted, flow)
        except mig.OrphanRevertError as exc:
            found[position] = str(exc).splitlines()[0].split(": ", 1)[-1]
    return found


def compute(engine: Any, rewind_to: str | None = None) -> ResumePlan:
    """The plan of ``engine``'s flow against what is saved, without writing or running anything."""
    engine.compile()
    persister = engine._persist
    fd = engine._flow_detail
    flow_meta: dict[str, Any] = dict(getattr(fd, "meta", None) or {})
    flow_state = getattr(fd, "state", None)
    details: list[Any] | None = None
    recorded: dict[str, Any] = {}
    stored = None
    if persister is not None:
        with contextlib.suppress(exceptions.NotFound):
            fresh = persister._conn.get_flow_details(fd.uuid, lazy=True)
            flow_meta, flow_state = dict(fresh.meta or {}), fresh.state
        store = getattr(persister.backend, "store", None)
        if persister._fast and callable(store):
            stored = store()
        else:
            try:
                details = list(persister._conn.get_atoms_for_flow(fd.uuid))
            except exceptions.NotFound:
                details = list(fd or ())
            recorded = persister._resume_summaries()  # record backends keep them too (dir://, memory://)
    elif fd is not None:
        details = list(fd)
    reverts = rewind_reverts(engine, rewind_to) if rewind_to is not None else pending_reverts(flow_meta)
    options = core_options(engine, flow_meta, flow_state, reverts, with_pending=True)
    compiled = engine.compilation.compiled
    saved_tuples = None if stored is not None else [saved_tuple(ad, recorded.get(ad.uuid)) for ad in details or ()]

    def plan_with(**checked: Any) -> Any:
        if stored is not None:
            return _core.resume_plan_stored(stored, fd.uuid, compiled, **options, **checked)
        return _core.resume_plan(compiled, saved_tuples, **options, **checked)

    core_plan = plan_with()
    if not core_plan.problems:
        core_plan = _checked(engine, core_plan, plan_with, _saved_details(persister, fd, details))
    if core_plan.problems:
        raise mig.MigrationError("Cannot apply the migrations: " + "; ".join(core_plan.problems))
    return ResumePlan(core_plan, engine.storage.flow_uuid, engine.storage.flow_name)


def _saved_details(persister: Any, fd: Any, details: list[Any] | None) -> Callable[[int], Any]:
    """``detail_of(saved index)`` over the details a plan was computed from (read from the store
    on first use when the plan read them itself)."""
    if details is not None:
        return lambda position: details[position] if 0 <= position < len(details) else None
    columns: list[Any] = []

    def detail_of(position: int) -> Any:
        if not columns:
            columns.append(persister._conn.saved_atoms(fd.uuid))
        saved = columns[0]
        return saved.detail(position) if 0 <= position < len(saved) else None

    return detail_of


def _checked(engine: Any, core_plan: Any, plan_with: Callable[..., Any], detail_of: Callable[[int], Any]) -> Any:
    """``core_plan``, computed again with the saved results that no longer fit and the orphans
    that cannot be reverted when there are any (see the module)."""
    persister = engine._persist
    found_orphans = {}
    if persister is not None and core_plan.orphans:
        found_orphans = unrevertable(engine, core_plan, detail_of, persister.resume_record)
    return checked(engine, core_plan, plan_with, detail_of, found_orphans)[0]


def checked(
    engine: Any,
    core_plan: Any,
    plan_with: Callable[..., Any],
    detail_of: Callable[[int], Any],
    found_orphans: dict[int, str] | None = None,
) -> tuple[Any, dict[int, str]]:
    """``(plan, misfits)``: ``core_plan`` computed again by ``plan_with(misfits=...,
    unrevertable=...)`` when saved results no longer fit (or ``found_orphans`` cannot be
    reverted), else itself. What `compute` and the engine's prepare both do, so that the plan
    shown is the plan run."""
    found_misfits = misfits(engine, core_plan, detail_of)
    if not found_misfits and not found_orphans:
        return core_plan, found_misfits
    return plan_with(misfits=found_misfits, unrevertable=found_orphans or {}), found_misfits


def pending_reverts(flow_meta: dict[str, Any]) -> dict[str, Any] | None:
    """The reverts recorded in a flow detail's meta that were not finished."""
    record = flow_meta.get(PENDING_REVERTS)
    return record if isinstance(record, dict) and (record.get("revert") or record.get("rerun")) else None


def dumps(plan: ResumePlan) -> str:
    """The plan as JSON text."""
    return json.dumps(
        {"flow_uuid": plan.flow_uuid, "flow_name": plan.flow_name, "entries": plan.to_json()},
        indent=2,
        ensure_ascii=False,
    )


#: Fewest consecutive entries `ResumePlan.format_table` folds into one line.
FOLD_RUN = 3

_FIELDS = operator.itemgetter(0, 1, 2, 3, 4, 5)
_SAME = operator.itemgetter(1, 2, 3, 4, 5)  # what entries folded together share
_HEADERS = ("NAME", "SAVED STATE", "SAVED VERSION", "VERSION", "ACTION", "REASON")


def _folded(segments: list[tuple[int, int]], picked: list[tuple]) -> list[Sequence[Any]]:
    """The columns of the folded table (see `ResumePlan.format_table`): ``segments`` as
    ``ResumePlan.fold_runs`` gives them, ``picked`` the entries they show (a run's first and last
    entry, any other entry alone), in that order."""
    names: list[str] = []
    others: list[tuple] = []
    position = 0
    for start, end in segments:
        first = picked[position]
        if end - start > 1:
            last = picked[position + 1]
            position += 2
            names.append(f"{first[0]} … {last[0]} ({end - start} atoms)")
        else:
            position += 1
            names.append(first[0])
        others.append(_SAME(first))
    return [names, *zip(*others, strict=True)] if names else [()] * len(_HEADERS)


def _table(columns: Sequence[Sequence[Any]], escape: Callable[[str], str] | None) -> str:
    """Columns (``None`` printed ``-``) as aligned text under `_HEADERS`, the last column unpadded."""
    texts = []
    for column in columns:
        if None in column:
            column = ["-" if value is None else value for value in column]
        if not all(type(value) is str for value in column):
            column = list(map(str, column))
        if escape is not None and not "".join(column).isprintable():
            column = list(map(escape, column))
        texts.append(column)
    widths = [
        max(len(header), max(map(len, column), default=0)) for header, column in zip(_HEADERS, texts, strict=True)
    ]
    line = "  ".join(f"{{:<{width}}}" for width in widths[:-1]) + "  {}"
    return "\n".join([line.format(*_HEADERS), *map(line.format, *texts)])


__all__ = ["PlanEntry", "ResumePlan", "compute"]
