"""The engine's storage: atom states, results and failures for one flow detail.

Atom data lives in flat lists indexed by atom (the Rust scheduler owns the authoritative states and
reports every change as a transition, which `apply` mirrors here). ``engine.storage`` exposes the
TaskFlow ``Storage`` API on top of these lists; atom details for a persistence backend are built
only when a backend is attached (see `ferroflow.engines.persist`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ferroflow import exceptions, states
from ferroflow.engines.arguments import extract
from ferroflow.persistence.models import INJECTOR_NAME
from ferroflow.retry import History, Retry
from ferroflow.types.failure import Failure

STATE_NAMES: tuple[str, ...] = (
    states.PENDING,
    states.RUNNING,
    states.SUCCESS,
    states.FAILURE,
    states.REVERTING,
    states.REVERTED,
    states.REVERT_FAILURE,
    states.IGNORE,
    states.RETRYING,
)
INTENTION_NAMES: tuple[str, ...] = (states.EXECUTE, states.REVERT, states.RETRY, states.IGNORE)
STATE_CODES = {name: code for code, name in enumerate(STATE_NAMES)}
INTENTION_CODES = {name: code for code, name in enumerate(INTENTION_NAMES)}

# Execute results are readable in these states, revert results in the second set (TaskFlow).
_EXECUTE_READABLE = frozenset({STATE_CODES[states.SUCCESS], STATE_CODES[states.FAILURE], STATE_CODES[states.REVERTING]})
_REVERT_READABLE = frozenset(
    {STATE_CODES[states.REVERTED], STATE_CODES[states.REVERT_FAILURE], STATE_CODES[states.REVERTING]}
)
_DONE_STATES = frozenset({STATE_CODES[states.SUCCESS], STATE_CODES[states.REVERTED]})
#: Returned by `Storage.lookup_store` when the store has no such name.
NO_VALUE = object()


class Storage:
    """TaskFlow-compatible storage facade over the engine's per-atom arrays."""

    def __init__(self, flow_name: str | None, flow_uuid: str | None = None, backend: Any = None) -> None:
        self._flow_uuid = flow_uuid or str(uuid.uuid4())
        self._flow_name = flow_name if flow_name is not None else self._flow_uuid  # (TaskFlow's fallback)
        self._flow_state: str | None = None
        self._injected: dict[str, Any] = {}
        self._transient: dict[str, Any] = {}
        self._atom_injected: dict[str, dict[str, Any]] = {}
        self._atoms: list[Any] = []
        self._index: dict[str, int] | None = {}
        self.states: list[int] = []
        self.intentions: list[int] = []
        self.results: list[Any] = []
        self.failures: dict[int, Failure] = {}
        self.revert_results: dict[int, Any] = {}
        self.revert_failures: dict[int, Failure] = {}
        #: Atoms a crash interrupted mid-execute while the flow was reverting: what their revert gets.
        self.interrupted: dict[int, Failure] = {}
        self.retry_histories: dict[int, list[tuple[Any, dict[str, Failure]]]] = {}
        #: Progress a task reported itself while running; when absent, progress follows the state
        #: (1.0 once SUCCESS/REVERTED, else 0.0), exactly what TaskFlow's engine writes at each step.
        self.progress: dict[int, tuple[float, Any]] = {}
        #: TaskFlow's ``meta['progress_details']`` of the atoms that have one: ``{'at_progress': p,
        #: 'details': {...}}``, or None once a task reported progress without details.
        self.progress_details: dict[int, Any] = {}
        self._uuids: list[str | None] = []
        self._meta_writer: Any = None
        self._flow_meta: dict[str, Any] = {}
        self._atom_meta: dict[int, dict[str, Any]] = {}
        self._providers_of: dict[str, list[int]] | None = None
        self._backend = backend
        #: Makes the backend when ``backend`` is first asked for and there is none (set by the engine).
        self.backend_maker: Callable[[], Any] | None = None
        #: Atoms whose state, intention or results were set through this API rather than by the
        #: scheduler (a program preparing or repairing a flow): handed to the scheduler when the
        #: next run starts (`ferroflow.engines.engine.ActionEngine`).
        self.changed: set[int] = set()
        #: ``atom index -> {stored name: provider index or None}``: who the compiled flow lets an
        #: atom see (set by the engine once compiled; `fetch_mapped_args` scopes by it).
        self.visible_providers: Callable[[int], dict[str, int | None]] | None = None
        #: The atoms in the order TaskFlow registers them (set by the engine): the order in which
        #: `fetch` looks at providers and `fetch_all` lists names.
        self.atom_order: Callable[[], list[int]] | None = None

    # -- set up by the engine -------------------------------------------------------------------
    def bind_atoms(self, atoms: list[Any]) -> None:
        """Registers the compiled atoms (index order) with fresh PENDING / EXECUTE state."""
        n = len(atoms)
        self._atoms = atoms
        self._index = None  # made on first lookup by name: an engine that only runs needs none
        self.states = [0] * n
        self.intentions = [0] * n
        self.results = [None] * n
        self._uuids = [None] * n
        self._providers_of = None

    def index_of(self, name: str) -> int:
        index = self._index
        if index is None:
            index = self._index = {atom.name: i for i, atom in enumerate(self._atoms)}
        try:
            return index[name]
        except KeyError:
            raise exceptions.NotFound(f"Unknown atom name {name!r} in flow {self._flow_name!r}") from None

    def atom_uuid(self, index: int) -> str:
        value = self._uuids[index]
        if value is None:
            value = self._uuids[index] = str(uuid.uuid4())
        return value

    def known_uuid(self, index: int) -> str | None:
        """The atom's uuid if one was given out or set already (`atom_uuid` makes one)."""
        return self._uuids[index]

    def set_atom_uuid(self, index: int, value: str) -> None:
        self._uuids[index] = value

    @property
    def uuid_column(self) -> list[str | None]:
        """Every atom's uuid (None: not given out yet), in atom order: the list itself, not a copy."""
        return self._uuids

    def set_atom_uuids(self, values: list[str | None]) -> None:
        """Every atom's uuid at once (None: given when first asked), in atom order."""
        self._uuids[:] = values

    # -- flow ----------------------------------------------------------------------------------
    #: The name of the pseudo atom holding flow-level ``store`` values.
    injector_name = INJECTOR_NAME

    @property
    def backend(self) -> Any:
        """The persistence backend the engine writes to. An engine loaded without one makes a
        memory backend of its details when first asked (`ferroflow.engines.persist.attach_memory_backend`)."""
        if self._backend is None and self.backend_maker is not None:
            self._backend = self.backend_maker()
        return self._backend

    @property
    def _flowdetail(self) -> Any:
        """The flow detail this storage writes (TaskFlow's storage attribute, which programs and
        TaskFlow's tests read): its backend's; an engine loaded without a backend makes its memory
        backend first (`backend`). On SQLite's fast path it holds the atom details a run wrote
        only once that run stopped, if it held any before."""
        if self._meta_writer is None:
            self.backend  # noqa: B018 (made on first access, with the flow detail it writes)
        writer = self._meta_writer
        return None if writer is None else writer.flow_detail

    @property
    def flow_name(self) -> str:
        return self._flow_name

    @property
    def flow_uuid(self) -> str:
        return self._flow_uuid

    def get_flow_state(self) -> str:
        return self._flow_state or states.PENDING

    def set_flow_state(self, state: str) -> None:
        self._flow_state = state

    # -- atoms ---------------------------------------------------------------------------------
    def get_atom_uuid(self, atom_name: str) -> str:
        return self.atom_uuid(self.index_of(atom_name))

    def get_atom_state(self, atom_name: str) -> str:
        return STATE_NAMES[self.states[self.index_of(atom_name)]]

    def get_atom_intention(self, atom_name: str) -> str:
        return INTENTION_NAMES[self.intentions[self.index_of(atom_name)]]

    def set_atom_state(self, atom_name: str, state: str) -> None:
        """Sets an atom's state (before a run: the run starts from it)."""
        index = self.index_of(atom_name)
        self.states[index] = STATE_CODES[state]
        self.changed.add(index)

    def set_atom_intention(self, atom_name: str, intention: str) -> None:
        """Sets what the engine is to do with an atom (before a run: the run starts from it)."""
        index = self.index_of(atom_name)
        self.intentions[index] = INTENTION_CODES[intention]
        self.changed.add(index)

    def save(self, atom_name: str, result: Any, state: str = states.SUCCESS) -> None:
        """Records an atom's outcome in ``state`` as the engine would: a result (SUCCESS; appended
        to a retry's history), a revert result (REVERTED) or a failure (FAILURE, REVERT_FAILURE).
        ``save(injector_name, values)`` replaces the flow-level store."""
        if atom_name == INJECTOR_NAME:
            self._injected.clear()
            self._injected.update(result or {})
            self._providers_of = None
            return
        index = self.index_of(atom_name)
        if state == states.FAILURE:
            self.failures[index] = result
        elif state == states.REVERT_FAILURE:
            self.revert_failures[index] = result
        elif state == states.REVERTED:
            self.revert_results[index] = result
            self.revert_failures.pop(index, None)
        else:
            self.results[index] = result
            self.failures.pop(index, None)
            if self._is_retry(index):
                self.retry_histories.setdefault(index, []).append((result, {}))
        self.states[index] = STATE_CODES[state]
        self.changed.add(index)

    def _is_retry(self, index: int) -> bool:
        return isinstance(self._atoms[index], Retry)

    def save_retry_failure(self, retry_name: str, failed_atom_name: str, failure: Failure) -> None:
        """Records in the retry's latest attempt that ``failed_atom_name`` failed."""
        index = self.index_of(retry_name)
        history = self.retry_histories.setdefault(index, [])
        if not history:
            history.append((None, {}))
        history[-1][1].setdefault(failed_atom_name, failure)
        self.changed.add(index)

    def get_retry_histories(self) -> list[tuple[str, History]]:
        """``(retry name, History)`` of every retry of the flow."""
        return [(atom.name, self.retry_history(i)) for i, atom in enumerate(self._atoms) if self._is_retry(i)]

    def get_atoms_states(self, atom_names: Iterable[str]) -> dict[str, tuple[str, str]]:
        return {name: (self.get_atom_state(name), self.get_atom_intention(name)) for name in atom_names}

    def _readable(self, index: int, readable: frozenset[int], kind: str) -> None:
        if self.states[index] not in readable:
            name = self._atoms[index].name
            state = STATE_NAMES[self.states[index]]
            raise exceptions.NotFound(
                f"Result for atom {name!r} {kind} requested but not available: atom is in state {state}"
            )

    def get_execute_result(self, atom_name: str) -> Any:
        index = self.index_of(atom_name)
        self._readable(index, _EXECUTE_READABLE, "execution")
        failure = self.failures.get(index)
        if failure is not None:
            return failure
        history = self.retry_histories.get(index)
        if history is not None:  # a retry's "result" is its history, as TaskFlow stores it
            return [(value, dict(failures)) for value, failures in history]
        return self.results[index]

    get = get_execute_result

    def get_revert_result(self, atom_name: str) -> Any:
        index = self.index_of(atom_name)
        self._readable(index, _REVERT_READABLE, "reversion")
        failure = self.revert_failures.get(index)
        return failure if failure is not None else self.revert_results.get(index)

    def get_execute_failures(self) -> dict[str, Failure]:
        return {self._atoms[i].name: f for i, f in self.failures.items()}

    get_failures = get_execute_failures

    def get_revert_failures(self) -> dict[str, Failure]:
        return {self._atoms[i].name: f for i, f in self.revert_failures.items()}

    def has_failures(self) -> bool:
        return bool(self.failures or self.revert_failures)

    def get_retry_history(self, retry_name: str) -> Any:
        return self.retry_history(self.index_of(retry_name))

    def retry_history(self, index: int) -> History:
        """The `History` of the retry at ``index`` (what the engine passes to it)."""
        contents = self.retry_histories.get(index, [])
        failure = self.failures.get(index)
        return History(list(contents), failure)

    def progress_of(self, index: int) -> tuple[float, Any]:
        """``(progress, details)`` of an atom: the progress it reported, else what its state
        implies, and its ``meta['progress_details']`` (see `progress_details`)."""
        reported = self.progress.get(index)
        progress = reported[0] if reported is not None else 1.0 if self.states[index] in _DONE_STATES else 0.0
        return progress, self.progress_details.get(index)

    def get_task_progress(self, task_name: str) -> float:
        return self.progress_of(self.index_of(task_name))[0]

    def get_task_progress_details(self, task_name: str) -> Any:
        """``{'at_progress': p, 'details': {...}}`` of the last progress reported with details, or None."""
        return self.progress_details.get(self.index_of(task_name))

    def report_progress(self, index: int, progress: Any, details: Any = None) -> None:
        """What a running task reports (``update_progress``, or its notifier's ``update_progress``
        event with details); the Rust lane's sink passes ``(progress, details)`` as ``progress``."""
        if type(progress) is tuple:
            progress, details = progress
        self.progress[index] = (progress, None)
        self.progress_details[index] = {"at_progress": progress, "details": details} if details else None

    def set_task_progress(self, task_name: str, progress: float, details: Any = None) -> None:
        """As TaskFlow: ``details`` are kept with the progress they came at (``{}`` erases them,
        None leaves the last ones)."""
        index = self.index_of(task_name)
        self.progress[index] = (progress, None)
        if details is not None:
            self.progress_details[index] = {"at_progress": progress, "details": details} if details else None

    # -- metadata ----------------------------------------------------------------------------
    def attach_meta_writer(self, writer: Any, flow_meta: dict[str, Any]) -> None:
        """Routes metadata to persisted details (`ferroflow.engines.persist.Persister`)."""
        self._meta_writer = writer
        self._flow_meta = flow_meta

    @property
    def flow_meta(self) -> dict[str, Any]:
        """The flow detail's metadata."""
        if self._meta_writer is not None:
            return self._meta_writer.flow_detail.meta  # the persisted detail's (reloaded on prepare)
        return self._flow_meta

    def update_flow_metadata(self, update_with: Any) -> None:
        """Merges ``update_with`` into the flow detail's meta (written at once with a backend)."""
        update = dict(update_with)
        if not update:
            return
        self.flow_meta.update(update)
        if self._meta_writer is not None:
            self._meta_writer.save_flow_meta()

    def get_atom_metadata(self, atom_name: str) -> dict[str, Any]:
        index = self.index_of(atom_name)
        if self._meta_writer is not None:
            return self._meta_writer.atom_meta(index, self.atom_uuid(index))
        return self._atom_meta.setdefault(index, {})

    def update_atom_metadata(self, atom_name: str, update_with: Any) -> None:
        """Merges ``update_with`` into the atom detail's meta (written at once with a backend)."""
        update = dict(update_with)
        if not update:
            return
        self.get_atom_metadata(atom_name).update(update)
        if self._meta_writer is not None:
            index = self.index_of(atom_name)
            self._meta_writer.save_atom_meta(index, self.atom_uuid(index))

    # -- injection -----------------------------------------------------------------------------
    def inject(self, pairs: dict[str, Any], transient: bool = False) -> None:
        """Adds flow-level values; they win over values produced by atoms (TaskFlow precedence)."""
        target = self._transient if transient else self._injected
        target.update(pairs)
        self._providers_of = None

    def inject_atom_args(self, atom_name: str, pairs: dict[str, Any], transient: bool = True) -> None:
        self._atom_injected.setdefault(atom_name, {}).update(pairs)

    def injected_names(self) -> set[str]:
        return set(self._injected) | set(self._transient)

    def lookup_store(self, name: str) -> Any:
        """A flow-level value, or the module's missing marker."""
        if name in self._transient:
            return self._transient[name]
        return self._injected.get(name, NO_VALUE)

    @property
    def injected(self) -> dict[str, Any]:
        """Flow-level values that persist (``store=`` / ``inject()``)."""
        return self._injected

    @property
    def transient(self) -> dict[str, Any]:
        """Flow-level values injected with ``transient=True`` (never saved)."""
        return self._transient

    # -- fetching ------------------------------------------------------------------------------
    def _providers(self) -> dict[str, list[int]]:
        if self._providers_of is None:
            mapping: dict[str, list[int]] = {}
            atoms = self._atoms
            for i in self.atom_order() if self.atom_order is not None else range(len(atoms)):
                for name in atoms[i].save_as:
                    mapping.setdefault(name, []).append(i)
            self._providers_of = mapping
        return self._providers_of

    def providers_of(self, name: str) -> list[int]:
        """The atoms whose result provides ``name``, in the order TaskFlow registers them."""
        return list(self._providers().get(name, ()))

    def value_from(self, provider: int, name: str) -> Any:
        """The value ``name`` taken from atom ``provider``'s result."""
        atom = self._atoms[provider]
        self._readable(provider, _EXECUTE_READABLE, "execution")
        if provider in self.failures:
            raise exceptions.NotFound(f"Unable to find result {name!r}: atom {atom.name!r} failed")
        return extract(self.results[provider], atom.save_as.get(name), atom.name, name)

    def _all_values(self, name: str) -> list[Any]:
        values = []
        stored = self.lookup_store(name)
        if stored is not NO_VALUE:
            values.append(stored)
        for provider in self._providers().get(name, ()):
            if self.states[provider] in _EXECUTE_READABLE and provider not in self.failures:
                try:
                    values.append(self.value_from(provider, name))
                except exceptions.NotFound:
                    continue
        return values

    def fetch(self, name: str, many_handler: Callable[[list[Any]], Any] | None = None) -> Any:
        """The value of ``name``: the flow-level store first, then the first atom providing it."""
        values = self._all_values(name)
        if not values:
            if self.lookup_store(name) is NO_VALUE and name not in self._providers():
                raise exceptions.NotFound(f"Name {name!r} is not mapped as a produced output by any providers")
            raise exceptions.NotFound(f"Unable to find result {name!r}")
        return (many_handler or (lambda vs: vs[0]))(values)

    def fetch_mapped_args(
        self,
        args_mapping: Any,
        atom_name: str | None = None,
        scope_walker: Any = None,
        optional_args: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """``{argument: value}`` for ``args_mapping`` (argument -> stored name), found as the engine
        finds an atom's arguments: values injected for ``atom_name``, the flow-level store, then
        the provider the compiled flow lets ``atom_name`` see (any provider without an atom name).
        ``scope_walker`` (TaskFlow's) is not needed: the compiled flow knows each atom's scope."""
        optional = set(optional_args or ())
        index = self.index_of(atom_name) if atom_name is not None else None
        injected = self.atom_injected(atom_name) if atom_name is not None else {}
        visible = self.visible_providers(index) if index is not None and self.visible_providers else None
        mapped: dict[str, Any] = {}
        for argument, name in dict(args_mapping).items():
            if name in injected:
                mapped[argument] = injected[name]
                continue
            stored = self.lookup_store(name)
            if stored is not NO_VALUE:
                mapped[argument] = stored
                continue
            candidates: list[int]
            if visible is not None and name in visible:
                seen = visible[name]
                candidates = [seen] if seen is not None else []
            else:
                candidates = list(self._providers().get(name, ()))
            for provider in candidates:
                if self.states[provider] in _EXECUTE_READABLE and provider not in self.failures:
                    try:
                        mapped[argument] = self.value_from(provider, name)
                    except exceptions.NotFound:
                        continue
                    break
            else:
                if argument in optional or name in optional:
                    continue
                who = f" of atom {atom_name!r}" if atom_name is not None else ""
                raise exceptions.NotFound(
                    f"Mapped argument {argument!r} <= {name!r}{who} was not produced by any accessible provider "
                    f"({len(candidates)} possible providers were scanned)"
                )
        return mapped

    def fetch_all(self, many_handler: Callable[[list[Any]], Any] | None = None) -> dict[str, Any]:
        """Every named value; a name with several providers maps to the list of their values."""
        handler = many_handler or (lambda vs: vs if len(vs) > 1 else vs[0])
        names = list(self._injected) + [n for n in self._transient if n not in self._injected]
        names += [n for n in self._providers() if n not in self._injected and n not in self._transient]
        result: dict[str, Any] = {}
        for name in names:
            values = self._all_values(name)
            if values:
                result[name] = handler(values)
        return result

    def atom_injected(self, atom_name: str) -> dict[str, Any]:
        return self._atom_injected.get(atom_name, {})

    def has_atom_injected(self) -> bool:
        """Whether any atom has values injected for it alone (most flows have none)."""
        return bool(self._atom_injected)

    def reset_results(self, index: int) -> None:
        """Forgets an atom's results (it goes back to PENDING)."""
        self.results[index] = None
        self.failures.pop(index, None)
        self.interrupted.pop(index, None)
        self.revert_results.pop(index, None)
        self.revert_failures.pop(index, None)
