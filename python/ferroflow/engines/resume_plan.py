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
stops because of it: version policy ``fail``, a failed revert, a task/retry clash).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, overload

from ferroflow import _core, exceptions, states
from ferroflow import migrations as mig

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
        self._entries: list[PlanEntry] | None = None
        self._by_name: dict[str, PlanEntry] | None = None

    @property
    def entries(self) -> list[PlanEntry]:
        """Every entry, built on first use."""
        if self._entries is None:
            # Plain tuples of strings cannot form cycles: the collector has nothing to find among
            # them, and walking a large flow's heap on each of their allocations would dominate.
            enabled = gc.isenabled()
            gc.disable()
            try:
                self._entries = [PlanEntry(*raw[:6]) for raw in self._core.entries()]
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
        """How many entries take each action."""
        return collections.Counter(entry.action for entry in self.entries)

    def orphans(self) -> list[str]:
        """Names of saved details whose atom is no longer in the flow."""
        return [entry.name for entry in self.entries if entry.action == "orphan"]

    def to_json(self) -> list[dict[str, Any]]:
        """The entries as dicts (for tools)."""
        return [entry._asdict() for entry in self.entries]

    def format_table(self) -> str:
        """A plain-text table: one line per entry."""
        headers = ("NAME", "SAVED STATE", "SAVED VERSION", "VERSION", "ACTION", "REASON")
        rows = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in entry] for entry in self.entries]
        widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            for row in rows
        )

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
    default = mig.validate_version_policy(engine.options.get("on_version_change"), "the load")
    policies = {}
    for index, atom in enumerate(engine.compilation.atoms):
        own = getattr(atom, "on_version_change", None)
        if own is not None:
            mig.validate_version_policy(own, f"atom {atom.name!r}")
            policies[index] = "migrate" if callable(own) else own
    pending: list[Any] = []
    if with_pending:
        applied = mig.applied_ids(flow_meta)
        given = mig.check_migrations(engine.options.get("migrations"))
        pending = [m.as_tuple() for m in given if m.id not in applied]
    return {
        "policies": policies,
        "default_policy": "migrate" if callable(default) else (default or mig.DEFAULT_VERSION_POLICY),
        "provider_policy": mig.validate_provider_policy(engine.options.get("provider_change")),
        "flow_reverted": flow_state == states.REVERTED,
        "pending": pending,
        "applied": mig.applied_tuples(flow_meta),
        "reverts": None
        if not reverts
        else (reverts.get("reason", ""), list(reverts.get("revert", ())), list(reverts.get("rerun", ()))),
    }


def rewind_reverts(engine: Any, to: str) -> dict[str, Any]:
    """The pending-reverts record of a rewind to atom ``to``."""
    index = engine.storage.index_of(to)
    atoms = engine.compilation.atoms
    names = [atoms[i].name for i in _core.rewind_order(engine.compilation.compiled, index)]
    return {"reason": f"rewind to {to}", "revert": names, "rerun": names}


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
    if stored is not None:
        core_plan = _core.resume_plan_stored(stored, fd.uuid, compiled, **options)
    else:
        core_plan = _core.resume_plan(
            compiled, [saved_tuple(ad, recorded.get(ad.uuid)) for ad in details or ()], **options
        )
    if core_plan.problems:
        raise mig.MigrationError("Cannot apply the migrations: " + "; ".join(core_plan.problems))
    return ResumePlan(core_plan, engine.storage.flow_uuid, engine.storage.flow_name)


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


__all__ = ["PlanEntry", "ResumePlan", "compute"]
