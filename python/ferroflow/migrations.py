"""Resuming a saved flow whose code changed: version policies and declarative migrations.

TaskFlow matches saved atom details to atoms by name only and ignores versions (see its resumption
docs). ferroflow keeps that behaviour by default and adds, per atom and per load:

**Version policies** — what resuming does with an atom that *completed* under another ``version``
(the saved detail's version differs from the atom's). Set on the atom
(``MyTask(..., on_version_change="rerun")``, or as a class attribute) or for the whole load
(``engines.load(..., on_version_change=...)``); the atom's own setting wins:

- ``"reuse"`` (:data:`REUSE`, **the default**): keep the saved result. This is TaskFlow's
  behaviour, so a program moved from TaskFlow resumes exactly as before, and
  :meth:`~ferroflow.engines.ActionEngine.plan` shows every mismatch so that nothing is hidden.
- ``"rerun"``: run the atom again (its saved result is dropped; nothing is undone).
- ``"revert_then_rerun"``: revert it with its saved result (using the new code's ``revert``),
  then run it again.
- ``"fail"``: refuse to run the flow: :class:`VersionMismatch` names the atom and both versions.
- a callable ``migrate(old_version, old_result) -> new_result``: the saved result is replaced
  (and saved with the new version) before the run.

Only completed atoms (SUCCESS) are concerned: an atom that had not completed simply runs with
the current code. The same policy decides for a completed atom whose saved result no longer fits
what it ``provides`` (its provides changed: a list, tuple or set whose items the saved result
lacks), whatever its version: ``rerun``, ``revert_then_rerun`` and a migrate callable apply, while
``reuse`` (which cannot keep such a result) and ``fail`` refuse the resume with
:class:`ProvidesMismatch` before anything is written; the plan shows it. A policy applies to its
atom only: atoms downstream keep their results (use ``engine.rewind(to=...)`` to run a whole tail
again), and they run after it, as the graph orders them.

**Provider changes** — an atom that completed when its inputs came from other atoms than they
would now (links added or removed, atoms moved between subflows, ...) is reported by the plan;
``provider_change="keep"`` (default) keeps its result, ``"rerun"`` runs it again.

**Declarative migrations** — given when loading (``load_from_factory(..., migrations=[...])``,
``load_from_detail(...)``, ``load(...)``) and applied to the saved details before the run, in one
transaction, recorded in the flow detail's ``meta["migrations"]`` (what, when, by which factory)
and never applied twice (a resume attempted again after a crash skips what is recorded):

- :class:`Rename` ``(old, new)``: the detail of ``old`` becomes ``new``'s (state, result, all).
- :class:`Split` ``(old, [new1, new2], fn)``: ``fn(old_result)`` gives the new atoms' results (a
  sequence in the order of the names, or a dict by name); if ``old`` had not finished (or there is
  no ``fn``) the new atoms simply run.
- :class:`Merge` ``([old1, old2], new, fn)``: ``fn({old1: result1, old2: result2})`` gives the new
  result, once every old atom had finished; otherwise ``new`` runs.

Details replaced by a split or merge are kept (marked ``meta["ferroflow"]["migrated"]``) and never
reverted themselves: the atoms that took their place are. Inconsistent migrations (unknown names,
a target that already has a detail, renames in a cycle or a chain) are refused with
:class:`MigrationError` before anything is written. Migrations given when the flow detail has no
saved atoms yet (a new flow) are recorded as not needed, so the same list can always be passed.
"""

from __future__ import annotations

import datetime
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ferroflow import exceptions, states
from ferroflow.persistence import models

__all__ = [
    "DEFAULT_PROVIDER_POLICY",
    "DEFAULT_VERSION_POLICY",
    "FAIL",
    "KEEP",
    "RERUN",
    "REUSE",
    "REVERT_THEN_RERUN",
    "Merge",
    "Migration",
    "MigrationError",
    "OrphanRevertError",
    "ProvidesMismatch",
    "Rename",
    "Split",
    "VersionMismatch",
]

REUSE = "reuse"
RERUN = "rerun"
REVERT_THEN_RERUN = "revert_then_rerun"
FAIL = "fail"
KEEP = "keep"
#: Version policy used when neither the atom nor the load sets one (TaskFlow's behaviour).
DEFAULT_VERSION_POLICY = REUSE
#: Provider policy used when the load does not set one.
DEFAULT_PROVIDER_POLICY = KEEP
VERSION_POLICIES = (REUSE, RERUN, REVERT_THEN_RERUN, FAIL)
PROVIDER_POLICIES = (KEEP, RERUN)

#: Flow detail meta key holding the record of applied migrations.
MIGRATIONS_META = "migrations"
#: Atom detail meta key under which ferroflow keeps what resumption needs.
ATOM_META = "ferroflow"


class MigrationError(exceptions.InvalidState):
    """Migrations that cannot be applied to the saved flow (nothing was written)."""


class VersionMismatch(exceptions.InvalidState):
    """An atom completed under another version and its policy is ``"fail"``.

    :ivar atom_name: the atom.
    :ivar saved_version: the version its saved result was produced by.
    :ivar version: the version of the current code.
    """

    def __init__(self, atom_name: str, saved_version: str | None, version: str | None) -> None:
        super().__init__(
            f"Atom {atom_name!r} completed under version {saved_version} but its code is now version {version} "
            "and its on_version_change policy is 'fail'; choose reuse, rerun, revert_then_rerun or a migrate "
            "callable for it"
        )
        self.atom_name = atom_name
        self.saved_version = saved_version
        self.version = version


class ProvidesMismatch(exceptions.InvalidState):
    """A completed atom's saved result cannot give every name the atom now ``provides`` and its
    version policy keeps results (``reuse``, the default, or ``fail``): the resume is refused
    before anything is written (as TaskFlow, which fails looking the names up).

    :ivar atom_name: the atom.
    :ivar problem: what the saved result lacks.
    """

    def __init__(self, atom_name: str, problem: str, flow: str = "") -> None:
        where = f" of flow {flow}" if flow else ""
        super().__init__(
            f"Atom {atom_name!r}{where} completed, but {problem}: its saved result no longer fits what it provides "
            f"(its provides changed). Nothing was written. Give it on_version_change='rerun' (on the atom or the "
            "load) to run it again, 'revert_then_rerun', or a migrate(old_version, old_result) callable that "
            "converts the saved result"
        )
        self.atom_name = atom_name
        self.problem = problem


class OrphanRevertError(exceptions.ExecutionFailure):
    """A rollback could not revert a completed atom that is no longer in the flow.

    :ivar atom_name: the orphan's name.
    """

    def __init__(self, atom_name: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(f"Cannot revert orphan {atom_name!r} (its atom is no longer in the flow): {message}", cause)
        self.atom_name = atom_name


def validate_version_policy(policy: Any, where: str) -> Any:
    """``policy`` if it is a known policy name or a callable; ValueError naming ``where`` if not."""
    if policy is None or callable(policy) or policy in VERSION_POLICIES:
        return policy
    raise ValueError(
        f"Unknown on_version_change {policy!r} for {where}; use one of {', '.join(VERSION_POLICIES)} "
        "or a callable migrate(old_version, old_result) -> new_result"
    )


def validate_provider_policy(policy: Any) -> str:
    if policy is None:
        return DEFAULT_PROVIDER_POLICY
    if policy in PROVIDER_POLICIES:
        return policy
    raise ValueError(f"Unknown provider_change {policy!r}; use one of {', '.join(PROVIDER_POLICIES)}")


# -- declarative migrations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """Base of :class:`Rename`, :class:`Split` and :class:`Merge` (not used directly)."""

    kind: str = field(init=False, default="")

    @property
    def sources(self) -> tuple[str, ...]:
        """Names of the saved details the migration consumes."""
        raise NotImplementedError

    @property
    def targets(self) -> tuple[str, ...]:
        """Names of the atoms whose details it produces."""
        raise NotImplementedError

    @property
    def mapped(self) -> bool:
        """Whether results are carried over (a rename, or a split/merge with a function)."""
        return True

    @property
    def id(self) -> str:
        """A stable identity, recorded when applied: the same migration is never applied twice."""
        return f"{self.kind}:{','.join(self.sources)}>{','.join(self.targets)}"

    def describe(self) -> str:
        """``Rename(b → b2)`` (the form the plan uses)."""
        return f"{self.kind.capitalize()}({', '.join(self.sources)} → {', '.join(self.targets)})"

    def as_tuple(self) -> tuple[str, list[str], list[str], bool]:
        """The form the Rust core takes."""
        return (self.kind, list(self.sources), list(self.targets), self.mapped)

    def _apply(self, by_name: Mapping[str, models.AtomDetail], targets: Mapping[str, tuple[bool, str]]) -> list[Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Rename(Migration):
    """The saved detail of atom ``old`` now belongs to atom ``new`` (state, result, everything)."""

    old: str
    new: str
    kind: str = field(init=False, default="rename")

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.old,)

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.new,)

    def _apply(self, by_name: Mapping[str, models.AtomDetail], targets: Mapping[str, tuple[bool, str]]) -> list[Any]:
        old = by_name[self.old]
        # A copy under the new name (every backend can insert a detail; not all can rename one),
        # the old detail kept and retired.
        renamed = type(old).from_dict({**old.to_dict(), "name": self.new, "uuid": str(uuid_mod.uuid4())})
        renamed.meta = dict(old.meta or {})
        return [renamed, _retired(old, self)]


@dataclass(frozen=True)
class Split(Migration):
    """Atom ``old`` became the atoms ``new``; ``fn(old_result)`` gives their results (a sequence in
    the order of ``new``, or a dict by name). Without ``fn``, or if ``old`` had not finished, the
    new atoms run."""

    old: str
    new: Sequence[str]
    fn: Callable[[Any], Any] | None = None
    kind: str = field(init=False, default="split")

    def __post_init__(self) -> None:
        object.__setattr__(self, "new", tuple(self.new))

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.old,)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.new)

    @property
    def mapped(self) -> bool:
        return self.fn is not None

    def _apply(self, by_name: Mapping[str, models.AtomDetail], targets: Mapping[str, tuple[bool, str]]) -> list[Any]:
        old = by_name[self.old]
        results: Mapping[str, Any] | None = None
        if self.fn is not None and _finished(old):
            results = _by_name(self, self.fn(old.results), self.targets)
        created = [_new_detail(name, targets[name], results) for name in self.targets]
        return [*created, _retired(old, self)]


@dataclass(frozen=True)
class Merge(Migration):
    """Atoms ``old`` became atom ``new``; ``fn({old_name: old_result, ...})`` gives its result. Without
    ``fn``, or if some old atom had not finished, ``new`` runs."""

    old: Sequence[str]
    new: str
    fn: Callable[[dict[str, Any]], Any] | None = None
    kind: str = field(init=False, default="merge")

    def __post_init__(self) -> None:
        object.__setattr__(self, "old", tuple(self.old))

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.old)

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.new,)

    @property
    def mapped(self) -> bool:
        return self.fn is not None

    def _apply(self, by_name: Mapping[str, models.AtomDetail], targets: Mapping[str, tuple[bool, str]]) -> list[Any]:
        olds = [by_name[name] for name in self.sources]
        results = None
        if self.fn is not None and all(_finished(ad) for ad in olds):
            results = {self.new: self.fn({ad.name: ad.results for ad in olds})}
        created = _new_detail(self.new, targets[self.new], results)
        return [created, *(_retired(ad, self) for ad in olds)]


def _finished(ad: models.AtomDetail) -> bool:
    return ad.state == states.SUCCESS and (ad.intention or states.EXECUTE) == states.EXECUTE


def _by_name(migration: Migration, value: Any, names: Sequence[str]) -> dict[str, Any]:
    """The split function's value as ``{target name: result}``."""
    if isinstance(value, Mapping):
        missing = [name for name in names if name not in value]
        if missing:
            raise MigrationError(f"{migration.describe()}: its function gave no result for {missing}")
        return {name: value[name] for name in names}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    raise MigrationError(
        f"{migration.describe()}: its function must return {len(names)} results (a sequence in the order "
        f"of {list(names)} or a dict by name), not {value!r}"
    )


def _new_detail(name: str, target: tuple[bool, str], results: Mapping[str, Any] | None) -> models.AtomDetail:
    is_retry, version = target
    ad: models.AtomDetail = models.RetryDetail(name) if is_retry else models.TaskDetail(name)
    ad.intention = states.EXECUTE
    ad.version = version or None
    if results is None:
        ad.state = states.PENDING
    else:
        ad.state = states.SUCCESS
        ad.results = [(results[name], {})] if is_retry else results[name]
    return ad


def _retired(ad: models.AtomDetail, migration: Migration) -> models.AtomDetail:
    ad.meta = dict(ad.meta or {})
    ad.meta[ATOM_META] = {
        **ad.meta.get(ATOM_META, {}),
        "migrated": {"migration": migration.describe(), "into": list(migration.targets)},
    }
    return ad


def is_retired(ad: models.AtomDetail) -> bool:
    """Whether a migration replaced this detail (it never matches an atom again)."""
    meta = ad.meta.get(ATOM_META) if ad.meta else None
    return isinstance(meta, dict) and "migrated" in meta


def applied_ids(flow_meta: Mapping[str, Any]) -> set[str]:
    """Ids of the migrations recorded in a flow detail's meta."""
    records = flow_meta.get(MIGRATIONS_META) or ()
    return {str(record["id"]) for record in records if isinstance(record, dict) and "id" in record}


def applied_tuples(flow_meta: Mapping[str, Any]) -> list[tuple[str, list[str], list[str], bool]]:
    """The recorded migrations in the Rust core's form (for provider aliases)."""
    found = []
    for record in flow_meta.get(MIGRATIONS_META) or ():
        if isinstance(record, dict) and record.get("kind") in ("rename", "split", "merge"):
            found.append((record["kind"], list(record.get("sources", ())), list(record.get("targets", ())), True))
    return found


def check_migrations(given: Iterable[Any]) -> list[Migration]:
    """``given`` as a list, TypeError naming anything that is not a migration."""
    migrations = list(given or ())
    for migration in migrations:
        if not isinstance(migration, Rename | Split | Merge):
            raise TypeError(f"{migration!r} is not a migration (use Rename, Split or Merge from ferroflow.migrations)")
    return migrations


class Applied(NamedTuple):
    """What applying migrations in memory produced (nothing is written yet)."""

    #: Details to write: copies under new names, new details, retired old ones.
    changed: list[models.AtomDetail]
    #: Records to append to the flow detail's ``meta["migrations"]``.
    records: list[dict[str, Any]]
    #: ``(old uuid, new uuid)`` of renamed details: what the backend keeps beside the old one
    #: (its resume record) belongs to the new one too.
    copies: list[tuple[str, str]]


def apply(
    pending: Sequence[Migration],
    saved: Sequence[models.AtomDetail],
    targets: Mapping[str, tuple[bool, str]],
    factory: str | None,
) -> Applied:
    """Applies ``pending`` (already checked by the core) to ``saved``, in memory.

    ``targets`` maps each atom name of the flow to ``(is_retry, version)``. User functions run
    here, so an exception leaves nothing half done.
    """
    by_name = {ad.name: ad for ad in saved if not is_retired(ad)}
    changed: dict[str, models.AtomDetail] = {}
    records = []
    copies = []
    now = _now()
    for migration in pending:
        if isinstance(migration, Rename):
            copies.append((by_name[migration.old].uuid, migration.new))
        try:
            details = migration._apply(by_name, targets)
        except MigrationError:
            raise
        except Exception as exc:
            raise MigrationError(
                f"{migration.describe()}: its function raised {type(exc).__name__}: {exc}", cause=exc
            ) from exc
        for name in migration.sources:
            by_name.pop(name, None)
        for ad in details:
            changed[ad.uuid] = ad
            if not is_retired(ad):
                by_name[ad.name] = ad
        carried = migration.mapped and all(_finished(ad) for ad in details if not is_retired(ad))
        records.append(_record(migration, now, factory, "carried over" if carried else "run again"))
    copies = [(old_uuid, by_name[new_name].uuid) for old_uuid, new_name in copies]
    return Applied(list(changed.values()), records, copies)


def not_needed(pending: Sequence[Migration], factory: str | None) -> list[dict[str, Any]]:
    """Records for migrations given with a flow that has no saved atoms yet."""
    now = _now()
    return [_record(m, now, factory, "not needed: the flow had no saved atoms") for m in pending]


def _record(migration: Migration, when: str, factory: str | None, outcome: str) -> dict[str, Any]:
    return {
        "id": migration.id,
        "kind": migration.kind,
        "description": migration.describe(),
        "sources": list(migration.sources),
        "targets": list(migration.targets),
        "applied_at": when,
        "factory": factory,
        "results": outcome,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()
