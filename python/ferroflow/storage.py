"""A flow detail's storage on its own, without an engine (TaskFlow's ``taskflow.storage.Storage``).

``Storage(flow_detail, backend=None, scope_fetcher=None)`` reads and writes the atom details of one
flow detail: states, intentions, results, failures, retry histories, progress, metadata and
injected values. With a ``backend`` every change is written to it at once (the flow detail must be
saved there already); without one, only the in-memory flow detail changes.

Engines do not use this class: their storage (``engine.storage``, `ferroflow.engines.storage`)
keeps the same API over per-atom arrays the scheduler fills, and writes through the engine's
persister. This one is for programs and tools that inspect or prepare a flow detail directly.

Failures are kept in memory as they were saved (with their traceback objects); a failure read back
from a backend has lost them, so the cached one is returned while it still matches the saved one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ferroflow import exceptions, states
from ferroflow.atom import get_version_string
from ferroflow.persistence import models
from ferroflow.persistence.models import INJECTOR_NAME
from ferroflow.retry import History
from ferroflow.types.failure import Failure

__all__ = ["INJECTOR_NAME", "Storage"]

LOG = logging.getLogger(__name__)

#: The provider name of values injected with ``transient=True`` (never saved).
_TRANSIENT = object()

_EXECUTE_READABLE = (states.SUCCESS, states.FAILURE, states.REVERTING)
_REVERT_READABLE = (states.REVERTED, states.REVERT_FAILURE, states.REVERTING)
#: Keys of the per-atom failure cache.
_EXECUTE, _REVERT = states.EXECUTE, states.REVERT
_META_INJECTED = "injected"
_META_PROGRESS = "progress"
_META_PROGRESS_DETAILS = "progress_details"


class _Provider:
    """Who provides a name: an atom (by name) or the transient store, and where in its result."""

    __slots__ = ("index", "name")

    def __init__(self, name: Any, index: Any) -> None:
        self.name = name
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Provider) and (self.name, self.index) == (other.name, other.index)

    def __hash__(self) -> int:
        return hash((id(self.name) if self.name is _TRANSIENT else self.name, self.index))

    def __repr__(self) -> str:
        who = "<transient>" if self.name is _TRANSIENT else repr(self.name)
        return f"{who}[{self.index!r}]" if self.index is not None else who


def _item(provider: _Provider, container: Any, looking_for: str) -> Any:
    """The part of ``container`` (a result) that ``provider`` names ``looking_for``."""
    if provider.index is None:
        return container
    try:
        return container[provider.index]
    except (IndexError, KeyError, TypeError):
        raise exceptions.NotFound(
            f"Unable to find result {looking_for!r}, expected to be able to find it created by {provider!r} "
            "but was unable to extract it from that provider's result"
        ) from None


def _pairs(values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    return dict(values.items() if isinstance(values, Mapping) else values)


class Storage:
    """TaskFlow's storage API over ``flow_detail`` (and ``backend``, when given).

    ``scope_fetcher(atom_name)`` returns the scopes an atom sees (an iterable of lists of atom
    names, nearest first) for argument lookup; without it, every provider is visible.
    """

    def __init__(
        self,
        flow_detail: models.FlowDetail,
        backend: Any = None,
        scope_fetcher: Callable[[str], Any] | None = None,
    ) -> None:
        self._flowdetail = flow_detail
        self._backend = backend
        self._scope_fetcher = scope_fetcher or (lambda _atom_name: None)
        self._lock = threading.RLock()
        self._transients: dict[str, Any] = {}
        self._injected_args: dict[str, dict[str, Any]] = {}
        #: Failures as saved (with their tracebacks), per atom name: {EXECUTE: f, REVERT: f}.
        self._failures: dict[str, dict[str, Failure]] = {}
        self._reverse_mapping: dict[str, list[_Provider]] = {}
        self._by_name: dict[str, models.AtomDetail] = {}
        for ad in flow_detail:
            self._by_name[ad.name] = ad
            self._failures[ad.name] = {}
        injector = self._by_name.get(INJECTOR_NAME)
        if injector is not None and injector.results:
            self._set_result_mapping(INJECTOR_NAME, {name: name for name in injector.results})

    # -- properties ------------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        """The persistence backend changes are written to (``None``: in memory only)."""
        return self._backend

    @property
    def lock(self) -> threading.RLock:
        """Held by every read and write of this storage (threads of one process only)."""
        return self._lock

    @property
    def flow_name(self) -> str:
        return self._flowdetail.name

    @property
    def flow_uuid(self) -> str:
        return self._flowdetail.uuid

    @property
    def flow_meta(self) -> dict[str, Any]:
        return self._flowdetail.meta

    # -- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._backend is None:
            yield None
            return
        with contextlib.closing(self._backend.get_connection()) as conn:
            yield conn

    def _save_atom(self, ad: models.AtomDetail) -> None:
        with self._connection() as conn:
            if conn is not None:
                ad.update(conn.update_atom_details(ad))

    def _save_flow(self) -> None:
        with self._connection() as conn:
            if conn is not None:
                self._flowdetail.update(conn.update_flow_details(self._flowdetail))

    def _detail(self, atom_name: str) -> models.AtomDetail:
        try:
            return self._by_name[atom_name]
        except KeyError:
            raise exceptions.NotFound(
                f"Unknown atom name '{atom_name}' in flow detail {self._flowdetail.name!r}; "
                "ensure_atom() registers an atom"
            ) from None

    # -- atoms -----------------------------------------------------------------------------------
    def ensure_atom(self, atom: Any) -> str:
        """Registers ``atom`` (creating its detail, PENDING, if the flow detail has none); its uuid."""
        from ferroflow import retry as retry_mod

        kind = models.RetryDetail if isinstance(atom, retry_mod.Retry) else models.TaskDetail
        with self._lock:
            ad = self._by_name.get(atom.name)
            if ad is None:
                ad = kind(atom.name)
                ad.state = states.PENDING
                ad.version = get_version_string(atom)
                self._flowdetail.add(ad)
                self._by_name[atom.name] = ad
                self._failures[atom.name] = {}
                self._save_flow()
            elif not isinstance(ad, kind):
                raise exceptions.Duplicate(
                    f"Atom detail '{atom.name}' already exists in flow detail {self._flowdetail.name!r} as a "
                    f"{type(ad).__name__}, not a {kind.__name__}; atom names must be unique"
                )
            self._set_result_mapping(atom.name, getattr(atom, "save_as", None) or {})
            return ad.uuid

    def ensure_atoms(self, atoms: Iterable[Any]) -> list[str]:
        return [self.ensure_atom(atom) for atom in atoms]

    def get_atom_uuid(self, atom_name: str) -> str:
        with self._lock:
            return self._detail(atom_name).uuid

    def get_atom_state(self, atom_name: str) -> str | None:
        with self._lock:
            return self._detail(atom_name).state

    def set_atom_state(self, atom_name: str, state: str) -> None:
        with self._lock:
            ad = self._detail(atom_name)
            ad.state = state
            self._save_atom(ad)

    def get_atom_intention(self, atom_name: str) -> str:
        with self._lock:
            return self._detail(atom_name).intention

    def set_atom_intention(self, atom_name: str, intention: str) -> None:
        with self._lock:
            ad = self._detail(atom_name)
            ad.intention = intention
            self._save_atom(ad)

    def get_atoms_states(self, atom_names: Iterable[str]) -> dict[str, tuple[str | None, str]]:
        with self._lock:
            return {name: (self.get_atom_state(name), self.get_atom_intention(name)) for name in atom_names}

    def reset(self, atom_name: str, state: str = states.PENDING) -> None:
        """Forgets an atom's results and failures; it goes back to ``state`` and EXECUTE."""
        if atom_name == INJECTOR_NAME:
            return
        with self._lock:
            ad = self._detail(atom_name)
            if ad.state == state:
                return
            ad.reset(state)
            self._failures[atom_name] = {}
            self._save_atom(ad)

    # -- results -------------------------------------------------------------------------------
    def save(self, atom_name: str, result: Any, state: str = states.SUCCESS) -> None:
        """Records an atom's outcome in ``state``: a result (SUCCESS, REVERTED) or a failure."""
        with self._lock:
            ad = self._detail(atom_name)
            ad.put(state, result)
            if state in (states.FAILURE, states.REVERT_FAILURE) and isinstance(result, Failure):
                self._failures[atom_name][_EXECUTE if state == states.FAILURE else _REVERT] = result
            elif state == states.SUCCESS:
                self._failures[atom_name] = {}
            self._save_atom(ad)
            if state == states.SUCCESS:
                self._warn_unprovided(atom_name, ad.last_results)

    def _warn_unprovided(self, atom_name: str, result: Any) -> None:
        for name, providers in self._reverse_mapping.items():
            for provider in providers:
                if provider.name == atom_name and provider.index is not None:
                    try:
                        _item(provider, result, name)
                    except exceptions.NotFound:
                        LOG.warning(
                            "Atom %r did not supply result with name %r (index %r)", atom_name, name, provider.index
                        )

    def _get(self, atom_name: str, revert: bool) -> Any:
        ad = self._detail(atom_name)
        failure = ad.revert_failure if revert else ad.failure
        if failure is not None:
            cached = self._failures.get(atom_name, {}).get(_REVERT if revert else _EXECUTE)
            if cached is not None and failure.matches(cached):
                return cached
            return failure
        readable = _REVERT_READABLE if revert else _EXECUTE_READABLE
        if ad.state not in readable:
            what = "reversion" if revert else "execution"
            raise exceptions.NotFound(
                f"Result for atom '{atom_name}' {what} is not known (it is in state {ad.state}; results are "
                f"readable in {', '.join(readable)})",
                cause=exceptions.DisallowedAccess(f"atom {atom_name!r} is {ad.state}", state=ad.state),
            )
        return ad.revert_results if revert else ad.results

    def get_execute_result(self, atom_name: str) -> Any:
        """What the atom's execute returned (or its failure)."""
        with self._lock:
            return self._get(atom_name, revert=False)

    get = get_execute_result

    def get_revert_result(self, atom_name: str) -> Any:
        """What the atom's revert returned (or its failure)."""
        with self._lock:
            return self._get(atom_name, revert=True)

    def _failures_of(self, revert: bool) -> dict[str, Failure]:
        found = {}
        for name, ad in self._by_name.items():
            failure = ad.revert_failure if revert else ad.failure
            if failure is not None:
                found[name] = self._get(name, revert)
        return found

    def get_execute_failures(self) -> dict[str, Failure]:
        with self._lock:
            return self._failures_of(revert=False)

    get_failures = get_execute_failures

    def get_revert_failures(self) -> dict[str, Failure]:
        with self._lock:
            return self._failures_of(revert=True)

    def has_failures(self) -> bool:
        with self._lock:
            return any(ad.failure is not None or ad.revert_failure is not None for ad in self._by_name.values())

    # -- retries -------------------------------------------------------------------------------
    def _retry_detail(self, retry_name: str) -> models.RetryDetail:
        ad = self._detail(retry_name)
        if not isinstance(ad, models.RetryDetail):
            raise exceptions.NotFound(f"Atom '{retry_name}' is a task, not a retry: it has no history")
        return ad

    def save_retry_failure(self, retry_name: str, failed_atom_name: str, failure: Failure) -> None:
        """Records that ``failed_atom_name`` failed under the retry's latest attempt."""
        with self._lock:
            ad = self._retry_detail(retry_name)
            if not ad.results:
                ad.results.append((None, {}))
            failures = ad.results[-1][1]
            if failed_atom_name not in failures:
                failures[failed_atom_name] = failure
                self._save_atom(ad)

    def cleanup_retry_history(self, retry_name: str, state: str) -> None:
        """Empties the retry's history and sets its state."""
        with self._lock:
            ad = self._retry_detail(retry_name)
            ad.state = state
            ad.results = []
            self._save_atom(ad)

    def get_retry_history(self, retry_name: str) -> History:
        with self._lock:
            ad = self._retry_detail(retry_name)
            failure = None
            if ad.failure is not None:
                failure = self._get(retry_name, revert=False)
            return History(list(ad.results or []), failure)

    def get_retry_histories(self) -> list[tuple[str, History]]:
        """``(retry name, History)`` of every retry of the flow detail."""
        with self._lock:
            return [
                (name, self.get_retry_history(name))
                for name, ad in self._by_name.items()
                if isinstance(ad, models.RetryDetail)
            ]

    # -- injection -----------------------------------------------------------------------------
    def inject(self, pairs: Mapping[str, Any] | Iterable[tuple[str, Any]], transient: bool = False) -> None:
        """Adds flow-level values: saved in the injector detail, or kept in memory (``transient``)."""
        values = _pairs(pairs)
        with self._lock:
            if transient:
                self._transients.update(values)
                self._set_result_mapping(_TRANSIENT, {name: name for name in values})
                return
            ad = self._by_name.get(INJECTOR_NAME)
            if ad is None:
                ad = models.TaskDetail(INJECTOR_NAME)
                ad.state = states.SUCCESS
                ad.results = dict(values)
                self._flowdetail.add(ad)
                self._by_name[INJECTOR_NAME] = ad
                self._failures[INJECTOR_NAME] = {}
                self._save_flow()
            else:
                ad.results = {**(ad.results or {}), **values}
                self._save_atom(ad)
            self._set_result_mapping(INJECTOR_NAME, {name: name for name in ad.results})

    def inject_atom_args(
        self, atom_name: str, pairs: Mapping[str, Any] | Iterable[tuple[str, Any]], transient: bool = True
    ) -> None:
        """Values for one atom's arguments only (they win over every other source for it)."""
        values = _pairs(pairs)
        with self._lock:
            ad = self._detail(atom_name)
            if transient:
                self._injected_args.setdefault(atom_name, {}).update(values)
            else:
                ad.meta[_META_INJECTED] = {**ad.meta.get(_META_INJECTED, {}), **values}
                self._save_atom(ad)

    def _set_result_mapping(self, provider_name: Any, mapping: Mapping[str, Any]) -> None:
        for name, index in mapping.items():
            entries = self._reverse_mapping.setdefault(name, [])
            provider = _Provider(provider_name, index)
            if provider not in entries:
                entries.append(provider)

    # -- fetching ------------------------------------------------------------------------------
    def _container(self, provider: _Provider) -> Any:
        """The result ``provider`` holds (NotFound when it has none to read)."""
        if provider.name is _TRANSIENT:
            return self._transients
        ad = self._detail(provider.name)
        if ad.failure is not None or ad.state not in _EXECUTE_READABLE:
            raise exceptions.NotFound(f"Atom {provider.name!r} has no result to read (state {ad.state})")
        return ad.last_results

    def fetch(self, name: str, many_handler: Callable[[list[Any]], Any] | None = None) -> Any:
        """The value named ``name``: of its first provider with a result (``many_handler`` picks
        among all of them)."""
        with self._lock:
            providers = self._reverse_mapping.get(name)
            if not providers:
                raise exceptions.NotFound(f"Name {name!r} is not mapped as a produced output by any providers")
            values = []
            for provider in providers:
                try:
                    container = self._container(provider)
                except exceptions.NotFound:
                    continue
                values.append(_item(provider, container, name))
            if not values:
                raise exceptions.NotFound(f"Unable to find result {name!r}, searched {providers}")
            return (many_handler or (lambda vs: vs[0]))(values)

    def fetch_all(self, many_handler: Callable[[list[Any]], Any] | None = None) -> dict[str, Any]:
        """Every name with a value; a name with several values maps to their list."""
        handler = many_handler or (lambda vs: vs if len(vs) > 1 else vs[0])
        found = {}
        with self._lock:
            for name in self._reverse_mapping:
                try:
                    found[name] = self.fetch(name, many_handler=handler)
                except exceptions.NotFound:
                    pass
        return found

    def _atom_args(self, atom_name: str | None) -> list[dict[str, Any]]:
        """Values injected for ``atom_name`` alone: transient first, then saved."""
        if atom_name is None:
            return []
        ad = self._by_name.get(atom_name)
        saved = ad.meta.get(_META_INJECTED, {}) if ad is not None else {}
        return [self._injected_args.get(atom_name, {}), saved]

    def _visible(self, providers: list[_Provider], scope_walker: Any) -> list[_Provider]:
        """Flow-level providers (store, transient) first, in registration order, then the atoms a
        scope walker lets the atom see, nearest scope first (all of them without a walker)."""
        default = [p for p in providers if p.name is _TRANSIENT or p.name == INJECTOR_NAME]
        atoms = [p for p in providers if p not in default]
        if scope_walker is None:
            return default + atoms
        ordered = []
        for scope in scope_walker:
            names = list(scope)
            ordered += sorted((p for p in atoms if p.name in names), key=lambda p: names.index(p.name))
        return default + ordered

    def _scope_walker(self, atom_name: str | None, scope_walker: Any) -> Any:
        if scope_walker is None and atom_name is not None:
            return self._scope_fetcher(atom_name)
        return scope_walker

    def fetch_mapped_args(
        self,
        args_mapping: Mapping[str, str],
        atom_name: str | None = None,
        scope_walker: Any = None,
        optional_args: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """``{argument: value}`` for ``args_mapping`` (argument -> stored name), with TaskFlow's
        precedence: values injected for the atom, the flow-level store, then visible providers."""
        optional = set(optional_args or ())
        with self._lock:
            walker = self._scope_walker(atom_name, scope_walker)
            atom_args = self._atom_args(atom_name)
            mapped = {}
            for bound_name, name in args_mapping.items():
                for injected in atom_args:
                    if name in injected:
                        mapped[bound_name] = injected[name]
                        break
                else:
                    providers = self._visible(self._reverse_mapping.get(name, []), walker)
                    for provider in providers:
                        try:
                            container = self._container(provider)
                            mapped[bound_name] = _item(provider, container, name)
                        except exceptions.NotFound:
                            continue
                        break
                    else:
                        if bound_name in optional or name in optional:
                            continue
                        who = f" of atom '{atom_name}'" if atom_name else ""
                        raise exceptions.NotFound(
                            f"Mapped argument '{bound_name}' <= '{name}'{who} was not produced by any accessible "
                            f"provider ({len(providers)} possible providers were scanned)"
                        )
            return mapped

    def fetch_unsatisfied_args(
        self,
        atom_name: str,
        args_mapping: Mapping[str, str],
        scope_walker: Any = None,
        optional_args: Iterable[str] | None = None,
    ) -> set[str]:
        """The stored names of ``args_mapping`` nothing visible can provide (injected values and
        providers that exist count, whether or not they have run)."""
        optional = set(optional_args or ())
        with self._lock:
            walker = self._scope_walker(atom_name, scope_walker)
            atom_args = self._atom_args(atom_name)
            missing = set()
            for bound_name, name in args_mapping.items():
                if bound_name in optional or any(name in injected for injected in atom_args):
                    continue
                if not self._visible(self._reverse_mapping.get(name, []), walker):
                    missing.add(name)
            return missing

    # -- flow ----------------------------------------------------------------------------------
    def get_flow_state(self) -> str:
        return self._flowdetail.state or states.PENDING

    def set_flow_state(self, state: str) -> None:
        with self._lock:
            self._flowdetail.state = state
            self._save_flow()

    def change_flow_state(self, state: str) -> tuple[bool, str]:
        """Moves the flow to ``state`` if the flow state machine allows it: ``(moved, old state)``."""
        with self._lock:
            old = self.get_flow_state()
            if not states.check_flow_transition(old, state):
                return False, old
            self.set_flow_state(state)
            return True, old

    def update_flow_metadata(self, update_with: Mapping[str, Any] | None) -> None:
        if not update_with:
            return
        with self._lock:
            self._flowdetail.meta.update(update_with)
            self._save_flow()

    def update_atom_metadata(self, atom_name: str, update_with: Mapping[str, Any] | None) -> None:
        if not update_with:
            return
        with self._lock:
            ad = self._detail(atom_name)
            ad.meta.update(update_with)
            self._save_atom(ad)

    def get_atom_metadata(self, atom_name: str) -> dict[str, Any]:
        with self._lock:
            return self._detail(atom_name).meta

    def set_task_progress(self, task_name: str, progress: float, details: Any = None) -> None:
        """Saves a task's progress; ``details`` (if given) are kept with the progress they came at,
        an empty ``details`` clears them."""
        update: dict[str, Any] = {_META_PROGRESS: progress}
        if details is not None:
            update[_META_PROGRESS_DETAILS] = {"at_progress": progress, "details": details} if details else None
        self.update_atom_metadata(task_name, update)

    def get_task_progress(self, task_name: str) -> float:
        with self._lock:
            return self._detail(task_name).meta.get(_META_PROGRESS, 0.0)

    def get_task_progress_details(self, task_name: str) -> Any:
        with self._lock:
            return self._detail(task_name).meta.get(_META_PROGRESS_DETAILS)
