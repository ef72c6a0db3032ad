"""The engines: TaskFlow's ``Engine`` API over the Rust scheduler.

One engine runs one flow detail. ``compile()`` lowers the flow and compiles it in Rust,
``prepare()`` binds atoms to storage (and, with a backend, to their saved details),
``validate()`` checks every required argument has a source, and ``run()`` / ``run_iter()`` drive
the poll/complete loop: ask the scheduler what is ready, run it (inline or on an executor), report
outcomes back, persist and notify every transition the scheduler made.

When nothing observes a serial run (no store, no listeners, no reported progress, not stepping)
its plain rounds run in the Rust lane (``_core.Lane``): the same steps without a Python frame per
step; whatever it cannot do comes back to this loop at the atom where it stopped.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import itertools
import operator
import queue
import threading
import time
import weakref
from collections.abc import Generator, Iterable, Iterator
from concurrent import futures
from typing import Any

from ferroflow import _core, exceptions, states
from ferroflow import atom as atom_mod
from ferroflow import task as task_mod
from ferroflow._lower import lower
from ferroflow.engines import actions, persist
from ferroflow.engines.resumption import ResumptionMixin
from ferroflow.engines.storage import STATE_CODES, STATE_NAMES, Storage
from ferroflow.engines.workers import WorkerPool
from ferroflow.flow import Flow, paused_gc
from ferroflow.types.failure import Failure
from ferroflow.types.graph import DiGraph
from ferroflow.types.notifier import Notifier

_EXECUTE, _REVERT, _DECIDE = 0, 1, 2
_RESOLVE_REVERT, _RESOLVE_RETRY, _RESOLVE_REVERT_ALL = 0, 1, 2
_SUCCESS = STATE_CODES[states.SUCCESS]
_FAILURE = STATE_CODES[states.FAILURE]
_REVERTED = STATE_CODES[states.REVERTED]
_REVERT_FAILURE = STATE_CODES[states.REVERT_FAILURE]
_PENDING = STATE_CODES[states.PENDING]
_STATE_IGNORE = STATE_CODES[states.IGNORE]
#: A state whose transition writes every field of an atom (results, failures, meta).
_SAVE_ALL = STATE_CODES[states.PENDING]
_RESULT_READABLE = frozenset({_SUCCESS, _FAILURE, STATE_CODES[states.REVERTING]})
_ENGINE_PROGRESS = {
    STATE_CODES[states.RUNNING]: 0.0,
    STATE_CODES[states.REVERTING]: 0.0,
    STATE_CODES[states.SUCCESS]: 1.0,
    STATE_CODES[states.REVERTED]: 1.0,
}
#: Result types every codec saves as they are (the common no-value / flag / count results).
_ALWAYS_SAVEABLE = frozenset({bool, int})
_NO_RERAISE = frozenset({states.SUCCESS, states.SUSPENDED})
#: Failures engines of this process recorded with a backend, by (atom uuid, execute/revert), for as
#: long as something else holds them (see `ActionEngine._adopt_live_failures`).
_LIVE_FAILURES: weakref.WeakValueDictionary[tuple[str, int], Failure] = weakref.WeakValueDictionary()


def _memory_backend_of(engine_ref: weakref.ref[ActionEngine]) -> Any:
    engine = engine_ref()
    return None if engine is None else persist.attach_memory_backend(engine)


_INJECT = operator.attrgetter("inject")
#: What a prepare reads of every atom object, for `_core.indices_having`.
_PREPARE_ATTRIBUTES = ("inject", "on_version_change")
#: Flows of at least this many atoms are prepared with the collector paused (see `paused_gc`); a
#: smaller one makes too few objects for a collection to matter (resuming many small flows).
_PAUSED_GC_FROM = 1000


class Compilation:
    """What ``compile()`` produced: the atoms by index and the Rust execution graph."""

    def __init__(self, atoms: list[Any], compiled: Any, spec_atoms: _core.AtomSpecs, deciders: list[Any]) -> None:
        self.atoms = atoms
        self.compiled = compiled
        self.spec_atoms = spec_atoms
        self.deciders = deciders
        #: The atoms' version policies as `resume_plan` decided them, with the options it was
        #: given: kept for the next engine resuming on this compilation.
        self.resume_policies: Any = None
        #: The atoms whose saved result can fail to fit their provides (`resume_plan`), once found.
        self.structured_provides: list[int] | None = None
        #: The atoms with a version policy of their own, when a prepare read them with what the
        #: atoms inject (one pass over the atom objects) for `resume_plan` to decide the policies.
        self.own_policy_atoms: list[int] | None = None

    @property
    def execution_graph(self) -> DiGraph:
        """The atoms (nodes, with their ``kind``) and what runs before what (edges), as TaskFlow's
        ``compilation.execution_graph``; a copy made on each access (the scheduler's is in Rust)."""
        graph = DiGraph(name="execution")
        atoms = self.atoms
        for atom, is_retry in zip(atoms, self.spec_atoms.retry_flags(), strict=True):
            graph.add_node(atom, kind="retry" if is_retry else "task")
        for u, v in self.compiled.atom_edges():
            graph.add_edge(atoms[u], atoms[v])
        return graph

    def visible_providers(self, index: int) -> dict[str, int | None]:
        """``{stored name: provider}`` of what atom ``index`` requires (execute and revert)."""
        compiled = self.compiled
        spec = self.spec_atoms[index]
        visible = dict(zip(spec[6] + spec[7], compiled.revert_providers(index), strict=True))
        visible.update(zip(spec[4] + spec[5], compiled.providers(index), strict=True))
        return visible


def _taskflow_order(flow: Flow, atoms: list[Any]) -> list[int]:
    """Indices of ``atoms`` (compiled from ``flow``) in the order TaskFlow's compiler lists atoms:
    a flow's retry, then its children as the flow iterates them (graph flows in topological
    order), depth first."""
    position = {id(atom): i for i, atom in enumerate(atoms)}
    order: list[int] = []
    stack = [flow]
    while stack:
        node = stack.pop()
        if isinstance(node, Flow):
            stack.extend(reversed(list(node)))
            if node.retry is not None:
                stack.append(node.retry)
        elif id(node) in position:
            order.append(position.pop(id(node)))
    order.extend(sorted(position.values()))  # (anything the walk did not reach keeps its place)
    return order


class ActionEngine(ResumptionMixin):
    """Base engine: TaskFlow's ``compile`` / ``prepare`` / ``validate`` / ``run`` / ``run_iter``."""

    #: Upper bound of atoms handed out per scheduling round.
    _batch_size = 1 << 30

    def __init__(self, flow: Any, flow_detail: Any = None, backend: Any = None, options: dict | None = None):
        self._flow = flow
        self._flow_detail = flow_detail
        self._backend = backend
        self._options: dict[str, Any] = dict(options or {})
        flow_uuid = getattr(flow_detail, "uuid", None)
        # (A flow that is not a flow or an atom is refused by compile(), as TaskFlow does.)
        flow_name = getattr(flow_detail, "name", None) or getattr(flow, "name", None)
        self._storage = Storage(flow_name, flow_uuid, backend)
        if backend is None:
            self._storage.backend_maker = functools.partial(_memory_backend_of, weakref.ref(self))
        self.notifier = Notifier()
        self.atom_notifier = Notifier()
        self._compilation: Compilation | None = None
        self._scheduler: Any = None
        self._atoms: list[Any] = []
        self._retry_flags: list[bool] = []
        #: Each atom's ``save_as`` (storage name -> key into its result), flat for the hot path.
        self._save_as: list[Any] = []
        self._progress_watched: frozenset[int] = frozenset()
        self._stepping = False
        self._prepared = False
        self._validated = False
        self._suspend_flag = _core.Flag()
        self._lock = threading.RLock()
        self._statistics: dict[str, Any] = {}
        self._never_resolve = _truthy(self._options.get("never_resolve", False))
        self._defer_reverts = _truthy(self._options.get("defer_reverts", False))
        self._persist: Any = None
        self._grouped: list[Any] | None = None
        self._completed = 0
        self._discarded_failures = 0
        self._gates: dict[int, list[tuple[Any, list[int], list[int]]]] = {}
        #: An exception a ``run_iter()`` consumer threw in (the run ends FAILURE and re-raises it).
        self._thrown: Failure | None = None

    # -- properties ------------------------------------------------------------------------------
    @property
    def _suspend_requested(self) -> bool:
        """Whether a suspend was asked for: kept in a flag the Rust lane reads between atoms."""
        return bool(self._suspend_flag)

    @_suspend_requested.setter
    def _suspend_requested(self, value: bool) -> None:
        self._suspend_flag.set(value)

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def options(self) -> dict[str, Any]:
        return self._options

    @property
    def statistics(self) -> dict[str, Any]:
        return self._statistics

    @property
    def compilation(self) -> Compilation:
        if self._compilation is None:
            raise exceptions.InvalidState("Can not access compilation before the engine has been compiled")
        return self._compilation

    # -- phases ----------------------------------------------------------------------------------
    def compile(self) -> None:
        """Lowers the flow and compiles it in Rust (idempotent)."""
        if self._compilation is not None:
            return
        # (what is made here is acyclic and lasts: see paused_gc; a collection walking the flow's
        # atoms on each allocation threshold would cost more than the compile)
        with paused_gc():
            lowered = lower(self._flow)
            compiled = _core.compile(lowered.spec_atoms, lowered.root)
            self._retry_flags = lowered.spec_atoms.retry_flags()
            self._save_as = lowered.save_as
        self._gates = {}
        for decider_id, history, entries, targets, _depth in compiled.deciders():
            for entry in entries:
                self._gates.setdefault(entry, []).append((lowered.deciders[decider_id], history, targets))
        self._bind(Compilation(lowered.atoms, compiled, lowered.spec_atoms, lowered.deciders))

    def _compile_like(self, template: ActionEngine) -> None:
        """Takes the compilation of ``template``, an engine compiled from this engine's very flow
        object (`ferroflow.engines.many` resumes many flows built alike on one compilation)."""
        if template._flow is not self._flow or template._compilation is None:
            raise ValueError("an engine compiles like another only on the same flow object, once compiled")
        if self._compilation is not None:
            return
        self._retry_flags = template._retry_flags
        self._save_as = template._save_as
        self._gates = template._gates
        self._bind(template._compilation)

    def _bind(self, compilation: Compilation) -> None:
        self._compilation = compilation
        self._storage.bind_atoms(compilation.atoms)
        # (functions of the compilation, not methods of the engine: a storage holding its engine
        # would make a reference cycle, and each engine garbage for the cyclic collector)
        self._storage.visible_providers = compilation.visible_providers
        self._storage.atom_order = functools.partial(_taskflow_order, self._flow, compilation.atoms)
        self._atoms = compilation.atoms
        self._scheduler = _core.Scheduler(compilation.compiled)

    def prepare(self) -> None:
        """Binds atoms to storage (and saved details when a backend is attached)."""
        if self._compilation is None:
            raise exceptions.InvalidState("Can not prepare an engine which has not been compiled")
        if self._prepared:
            # A flow that rolled back completely runs again from the start (as TaskFlow's does).
            if self._storage.get_flow_state() == states.REVERTED:
                self.reset()
            return
        compilation = self._compilation
        atoms = compilation.atoms
        may_inject = None  # (the atoms whose `inject` is not None, when read with their policies)
        if self._persist is not None:
            if compilation.resume_policies is None:
                # (the first resumable prepare of a compilation also needs the atoms' own version
                # policies: read in the same pass, one cache miss per atom object instead of two)
                may_inject, compilation.own_policy_atoms = _core.indices_having(atoms, _PREPARE_ATTRIBUTES)
            self._persist.acquire()  # before anything is written: the flow may be someone else's
            try:
                # Loading a big saved flow makes many acyclic objects: full collections over every
                # live object would cost more than the load itself.
                if len(self._atoms) >= _PAUSED_GC_FROM:
                    with paused_gc():
                        self._persist.prepare(self)  # loads the saved flow state first: RUNNING → RESUMING is real
                else:
                    self._persist.prepare(self)
            except BaseException:
                self._persist.release()  # a refused prepare (versions, migrations...) keeps nothing
                raise
            finally:
                compilation.own_policy_atoms = None  # (valid for this prepare only)
            self._adopt_live_failures()
        self._change_flow_state(states.RESUMING)
        injecting: Iterable[Any] = (
            itertools.compress(atoms, map(_INJECT, atoms))  # (the few that inject, at C speed)
            if may_inject is None
            else [atom for atom in map(atoms.__getitem__, may_inject) if atom.inject]
        )
        for atom in injecting:
            self._storage.inject_atom_args(atom.name, atom.inject)
        self._change_flow_state(states.SUSPENDED)
        self._prepared = True
        if self._storage.get_flow_state() == states.REVERTED:
            self.reset()

    def validate(self) -> None:
        """Raises `MissingDependencies` when some required argument has no source."""
        if not self._prepared:
            raise exceptions.InvalidState("Can not validate an engine which has not been prepared")
        available = self._storage.injected_names()
        missing = self.compilation.compiled.unsatisfied(available)
        if missing:
            # Each atom's own error, chained (the last one is the cause), as TaskFlow reports it.
            cause = None
            for name, names in missing:
                cause = exceptions.MissingDependencies(f"atom {name!r} of flow {self._flow.name!r}", names, cause=cause)
            who = "; ".join(f"atom {name!r} of flow {self._flow.name!r} (needs {names})" for name, names in missing)
            all_names = sorted({n for _, names in missing for n in names})
            raise exceptions.MissingDependencies(who, all_names, cause=cause)
        self._validated = True

    def reset(self) -> None:
        """Every atom back to PENDING / EXECUTE, the flow back to PENDING."""
        if self._scheduler is None:
            raise exceptions.InvalidState("Can not reset an engine which has not been compiled")
        transitions = self._scheduler.reset()
        self._apply(transitions)
        self._storage.failures.clear()
        self._storage.revert_failures.clear()
        self._storage.revert_results.clear()
        self._storage.retry_histories.clear()
        self._change_flow_state(states.PENDING)

    def suspend(self) -> None:
        """Running atoms finish; nothing new starts; the flow ends SUSPENDED."""
        self._suspend_requested = True
        self._change_flow_state(states.SUSPENDING)

    def run(self, timeout: float | None = None) -> None:
        """Runs the flow to its end (SUCCESS, REVERTED, FAILURE or SUSPENDED)."""
        self._take_run_lock()  # (not `_run_lock`: a generator context per run, for many small flows)
        try:
            self._stepping = False
            for _ in self._run_iter(timeout):
                pass
        finally:
            self._lock.release()

    def run_iter(self, timeout: float | None = None) -> Generator[str, Any, None]:
        """Runs step by step, yielding engine states; ``send(True)`` asks to suspend."""
        with self._run_lock():
            # Control leaves the engine at every yield: nothing completed may wait uncommitted.
            self._stepping = True
            closed = False
            it = self._run_iter(timeout)
            for state in it:
                if closed:
                    continue
                try:
                    try_suspend = yield state
                except GeneratorExit:
                    closed = True
                    self.suspend()
                except Exception:
                    # Thrown in by the consumer: running atoms finish, nothing new starts, and
                    # the flow ends FAILURE re-raising it (as TaskFlow's engine does).
                    closed = True
                    self._thrown = Failure()
                    self.suspend()
                else:
                    if try_suspend:
                        self.suspend()

    @contextlib.contextmanager
    def _run_lock(self) -> Iterator[None]:
        self._take_run_lock()
        try:
            yield
        finally:
            self._lock.release()

    def _take_run_lock(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise exceptions.ExecutionFailure("Engine currently locked, please try again later")

    # -- the loop --------------------------------------------------------------------------------
    def _run_iter(self, timeout: float | None) -> Iterator[str]:
        self.compile()
        self.prepare()
        self.validate()
        self._suspend_requested = False
        self._thrown = None
        self._completed = self._discarded_failures = 0
        # Tasks whose own notifier has listeners get the engine's 0.0 / 1.0 progress events
        # (listeners are expected to be registered before the run, as with TaskFlow's engine).
        self._progress_watched = (
            frozenset(
                i for i, atom in enumerate(self._atoms) if not self._retry_flags[i] and atom.has_progress_listeners()
            )
            if task_mod.notifiers_made() or task_mod.progress_overrides()
            else frozenset()
        )
        started = time.monotonic()
        persister = self._persist
        if persister is not None:
            persister.acquire()
        # The flow's own objects (atoms, plans, results of a resumed run) live as long as the run:
        # keeping them out of the collector's full passes removes a cost that grows with the flow.
        gc.freeze()
        try:
            self._before_run()
            self._change_flow_state(states.RUNNING)
            yield states.RESUMING
            sched = self._scheduler
            with self._group():
                self._take_storage_changes()
                for atom in sched.start():
                    self._resolve(atom, self._storage.failures.get(atom) or _saved_failure(self, atom))
                self._apply(sched.take_transitions())
            idle = True
            for state in self._loop(timeout):
                idle = False
                yield state
            if idle and self._stepping:
                # Nothing to run: the engine still schedules, waits and analyses once (TaskFlow).
                yield states.SCHEDULING
                yield states.WAITING
                yield states.ANALYZING
            outcome = self._after_loop(sched.outcome())
            final = outcome if outcome is not None else states.SUSPENDED
            if self._thrown is not None:
                final = states.FAILURE
            self._statistics = self._gather_statistics(time.monotonic() - started)
            yield final
            # (the run's last write: with nobody told of it and nothing grouped, the lease is
            # given up in the same transaction)
            self._change_flow_state(final, release=self._grouped is None and not self.notifier.has_listeners())
        finally:
            try:
                self._flush_group()
            finally:
                gc.unfreeze()
                if persister is not None:
                    persister.release()
        if self._thrown is not None:
            thrown, self._thrown = self._thrown, None
            thrown.reraise()
        if final not in _NO_RERAISE:
            # As TaskFlow: a failed revert is what stopped the flow, so it is what is raised;
            # otherwise the execute failures that made the flow revert (or stop, never_resolve).
            storage = self._storage
            failures = list(storage.revert_failures.values()) or list(storage.failures.values())
            Failure.reraise_if_any(failures or self._orphan_failures())

    def _loop(self, timeout: float | None) -> Iterator[str]:
        raise NotImplementedError

    def _adopt_live_failures(self) -> None:
        """Failures read back from the store have lost their traceback (and so, re-raised, their
        type). Where this process still holds the original of one (an engine here recorded it and
        it is still referenced), the original is used: it is what gets re-raised, as TaskFlow does
        when a program hands the flow detail of one engine to the next."""
        storage = self._storage
        if not (storage.failures or storage.revert_failures):
            return
        for failures, kind in ((storage.failures, _EXECUTE), (storage.revert_failures, _REVERT)):
            for index, failure in failures.items():
                if failure.exc_info is None:
                    original = _LIVE_FAILURES.get((storage.atom_uuid(index), kind))
                    if original is not None and original.matches(failure):
                        failures[index] = original

    def _orphan_failures(self) -> list[Failure]:
        """Failures of saved details whose atom is gone (orphans): what made a resumed flow roll
        back when nothing it runs failed (TaskFlow re-raises the failure of every detail). The
        original exception where this process still holds it (`_adopt_live_failures`)."""
        found = []
        for ad in self._persist.orphans if self._persist is not None else ():
            failure = ad.failure
            if failure is None:
                continue
            original = _LIVE_FAILURES.get((ad.uuid, _EXECUTE)) if failure.exc_info is None else None
            found.append(original if original is not None and original.matches(failure) else failure)
        return found

    def _take_storage_changes(self) -> None:
        """States, intentions and results a program set through ``engine.storage`` since the last
        run (TaskFlow's way to prepare or repair a flow before running it): the scheduler starts
        from them, and they are saved."""
        storage = self._storage
        if not storage.changed:
            return
        changed, storage.changed = sorted(storage.changed), set()
        self._scheduler.restore([(atom, storage.states[atom], storage.intentions[atom]) for atom in changed])
        if self._persist is not None:
            self._persist.save(self, [(atom, _SAVE_ALL, 0) for atom in changed])

    def _schedule(self, limit: int) -> list[tuple[int, int]]:
        """Hands out the next round, published (persisted, notified) and gated by deciders."""
        return self._start_round(*self._next_round(limit), limit)

    def _next_round(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
        """The next round and its RUNNING / REVERTING transitions, not yet published."""
        if self._suspend_requested:
            return [], []
        return self._scheduler.schedule(limit)

    def _start_round(
        self, ready: list[tuple[int, int]], marked: list[tuple[int, int, int]], limit: int
    ) -> list[tuple[int, int]]:
        """Publishes a round fetched earlier — or gives it back if a suspend came in between."""
        if ready and self._persist is None and self._grouped is None and not self._suspend_requested:
            if marked:  # nothing to commit, so nothing to give back on an error
                self._apply(marked)
            return self._gate(ready, limit)
        try:
            if not ready:
                if marked:
                    self._apply(marked)
                return ready
            if self._suspend_requested:
                self._scheduler.unschedule([atom for atom, kind in ready if kind != _DECIDE])
                return []
            if self._persist is not None:
                self._persist.keep_lease()
            if marked:
                self._apply(marked)
        finally:
            self._flush_group()
        return self._gate(ready, limit)

    def _flush_group(self) -> None:
        """Publishes a group left open by `_complete` (see there)."""
        grouped, self._grouped = self._grouped, None
        if grouped:
            self._publish(grouped)

    def _gate(self, ready: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
        """Consults deciders for gated atoms among ``ready``; returns the actions to run."""
        while True:
            for _, kind in ready:
                if kind == _DECIDE:
                    break
            else:
                return ready
            for index, kind in ready:
                if kind == _DECIDE:
                    self._decide(index)
            ready = [(index, kind) for index, kind in ready if kind != _DECIDE]
            if ready:
                return ready
            ready, transitions = self._scheduler.schedule(limit)
            if transitions:
                self._apply(transitions)

    def _decide(self, index: int) -> None:
        """Consults the deciders on the links into ``index``; a "no" ignores their targets."""
        storage = self._storage
        atoms = self.compilation.atoms
        ignored = _STATE_IGNORE
        gates = [gate for gate in self._gates.get(index, ()) if all(storage.states[h] != ignored for h in gate[1])]
        history = {atoms[h].name: storage.results[h] for gate in gates for h in gate[1]}
        targets: set[int] = set()
        for decider, _history_atoms, gate_targets in gates:
            if not decider(history=dict(history)):
                targets.update(gate_targets)
        if targets:
            self._apply(self._scheduler.ignore(sorted(targets)))
        if index not in targets:
            self._scheduler.decided(index)

    # -- one atom --------------------------------------------------------------------------------
    def _is_retry(self, atom_index: int) -> bool:
        return self._retry_flags[atom_index]

    def _arguments(self, index: int, revert: bool = False) -> dict[str, Any]:
        """The keyword arguments of an atom's ``execute`` (or ``revert``), found in one pass.

        Rust resolved *who* provides each name (TaskFlow's visibility rules) at compile time;
        here each ``(argument, storage name)`` of the atom's rebind is looked up with TaskFlow's
        precedence: atom ``inject`` -> flow-level store -> the visible provider's result. Nothing
        is cached per atom: an atom's arguments are normally fetched once, and objects kept per
        atom would cost memory and collector time that grow with the flow.
        """
        atom = self._atoms[index]
        # An atom built with ``requires`` alone maps each argument to itself: its names are read
        # without making its mappings (which would stay on the atom: see the docstring).
        identity = atom_mod.identity_arg_names(atom)
        if identity is not None:
            pairs: Any = tuple(zip(identity, identity, strict=True))
            plain = True
        else:
            rebind = atom.revert_rebind if revert else atom.rebind
            if not rebind:
                return {}
            pairs = rebind.items()
            plain = not atom.inject and not (atom.revert_optional if revert else atom.optional)
        compilation = self._compilation
        providers = compilation.compiled.revert_providers(index) if revert else compilation.compiled.providers(index)
        if plain and len(providers) == len(pairs):
            # The common case: the compiled names are the rebind's storage names, in order.
            sources = zip(pairs, providers, strict=True)
        else:
            spec = compilation.spec_atoms[index]
            names = spec[6] + spec[7] if revert else spec[4] + spec[5]
            by_name = dict(zip(names, providers, strict=True))
            sources = (((arg, name), by_name.get(name)) for arg, name in pairs)
        storage = self._storage
        injected = storage.atom_injected(atom.name) if storage.has_atom_injected() else None
        store, transient = storage.injected, storage.transient
        states_, results, failures = storage.states, storage.results, storage.failures
        save_as = self._save_as
        kwargs: dict[str, Any] = {}
        for (arg, name), provider in sources:
            if injected and name in injected:
                kwargs[arg] = injected[name]
            elif transient and name in transient:
                kwargs[arg] = transient[name]
            elif store and name in store:
                kwargs[arg] = store[name]
            elif provider is not None and states_[provider] in _RESULT_READABLE and provider not in failures:
                value = results[provider]
                key = save_as[provider].get(name)
                if key is not None:
                    try:
                        value = value[key]
                    except (LookupError, TypeError):
                        if self._is_optional(atom, arg, name, revert):
                            continue
                        storage.value_from(provider, name)  # raises NotFound with the details
                kwargs[arg] = value
            elif (
                provider is not None
                and states_[provider] == _STATE_IGNORE
                and (fallback := self._fallback(index, name)) is not None
            ):
                # Its provider was skipped by a decider: the next one in scope (TaskFlow's lookup).
                kwargs[arg] = storage.value_from(fallback, name)
            elif not self._is_optional(atom, arg, name, revert):
                raise exceptions.NotFound(
                    f"Atom {atom.name!r} of flow {self._flow.name!r} requires {name!r} (argument "
                    f"{arg!r}) but no provider, store value or injected value has it"
                )
        return kwargs

    def _fallback(self, index: int, name: str) -> int | None:
        """The provider of ``name`` for atom ``index`` when the one it sees was ignored: among the
        atoms that run before it, provide ``name`` and have a result, the nearest (latest in
        topological order). Only reached when a decider skipped a provider."""
        storage = self._storage
        compiled = self.compilation.compiled
        before: dict[int, list[int]] = {}
        for u, v in compiled.atom_edges():
            before.setdefault(v, []).append(u)
        ancestors: set[int] = set()
        stack = list(before.get(index, ()))
        while stack:
            atom = stack.pop()
            if atom not in ancestors:
                ancestors.add(atom)
                stack.extend(before.get(atom, ()))
        position = {atom: i for i, atom in enumerate(compiled.topo)}
        candidates = [
            p
            for p in storage.providers_of(name)
            if p in ancestors and storage.states[p] in _RESULT_READABLE and p not in storage.failures
        ]
        return max(candidates, key=position.__getitem__, default=None)

    @staticmethod
    def _is_optional(atom: Any, arg: str, name: str, revert: bool) -> bool:
        optional = atom.revert_optional if revert else atom.optional
        return name in optional or arg in optional

    def _call(self, index: int, kind: int) -> tuple[bool, Any]:
        """Runs an atom's execute or revert; any error (even fetching arguments) is a Failure."""
        persist = self._persist
        if persist is not None:
            persist.keep_lease()  # an engine that lost its flow starts nothing more
        atom = self._atoms[index]
        storage = self._storage
        try:
            kwargs = self._arguments(index, revert=kind == _REVERT)
        except Exception:
            return False, Failure()
        if self._retry_flags[index]:
            history = storage.retry_history(index)
            if kind == _EXECUTE:
                return actions.execute_retry(atom, kwargs, history)
            return actions.revert_retry(atom, kwargs, history, storage.get_execute_failures())
        # Made per call, never kept: objects that outlive a step make the collector's full passes
        # (which the run's gc.freeze() does not cover) grow with the flow.
        atom._progress_sink = functools.partial(storage.report_progress, index)
        try:
            if kind == _EXECUTE:
                return actions.execute_task(atom, kwargs)
            result = storage.failures.get(index)
            if result is None:
                result = storage.interrupted.get(index, storage.results[index])
            return actions.revert_task(atom, kwargs, result, storage.get_execute_failures())
        finally:
            atom._progress_sink = None

    def _complete(
        self, index: int, kind: int, ok: bool, value: Any, then_schedule: int = 0
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
        """Records an outcome, tells the scheduler, persists and notifies what changed; with
        ``then_schedule`` > 0, also fetches that many next actions in the same call and returns
        them with their transitions, unpublished (see `_start_round`)."""
        storage = self._storage
        self._completed += 1
        if kind == _EXECUTE:
            if ok and self._persist is not None:
                ok, value = self._check_serializable(index, value)
            if ok:
                storage.results[index] = value
                if storage.failures:
                    storage.failures.pop(index, None)
                if self._retry_flags[index]:
                    storage.retry_histories.setdefault(index, []).append((value, {}))
            else:
                storage.failures[index] = value
                if self._persist is not None:
                    _LIVE_FAILURES[(storage.atom_uuid(index), _EXECUTE)] = value
        elif ok:
            storage.revert_results[index] = value
        else:
            storage.revert_failures[index] = value
            if self._persist is not None:
                _LIVE_FAILURES[(storage.atom_uuid(index), _REVERT)] = value
        if then_schedule and (self._suspend_requested or self.atom_notifier._topics):
            # A listener told of this completion may suspend the engine: the next round is
            # fetched after the notifications, never handed out and then taken back.
            then_schedule = 0
        unresolved, ready, completed, marked = self._scheduler.complete(index, kind, ok, then_schedule)
        if (
            ready
            and self._persist is not None
            and self._grouped is None
            and not self._stepping
            and not self._observed()
        ):
            # Nobody watches the events: the completion is committed together with the next
            # round's RUNNING marks (one transaction per atom on a chain), in `_start_round`.
            self._grouped = []
        self._apply(completed, (index, value))
        if unresolved:
            self._resolve(index, value)
        return ready, marked

    def _check_serializable(self, index: int, value: Any) -> tuple[bool, Any]:
        """A result a durable backend cannot save becomes the atom's failure (never half a row)."""
        if value is None or type(value) in _ALWAYS_SAVEABLE:
            return True, value
        try:
            persist.check_serializable(self.compilation.atoms[index].name, value)
        except TypeError:
            return False, Failure()
        return True, value

    # -- failure resolution (TaskFlow's retry chain) ---------------------------------------------
    def _resolve(self, index: int, failure: Failure) -> None:
        if self._never_resolve:
            self._scheduler.halt()
            return
        self._discarded_failures += 1
        kind, retry = self._determine(index, failure)
        self._apply(self._scheduler.resolve(kind, retry))

    def _determine(self, index: int, failure: Failure) -> tuple[int, int | None]:
        compiled = self.compilation.compiled
        retry = compiled.retry_of(index)
        if retry is None:
            return _RESOLVE_REVERT_ALL, None
        decision = self._ask_retry(retry, index, failure)
        if decision == "RETRY":
            return _RESOLVE_RETRY, retry
        if decision == "REVERT_ALL":
            return _RESOLVE_REVERT_ALL, None
        if decision != "REVERT":
            atom = self.compilation.atoms[retry]
            raise ValueError(f"Unknown atom failure resolution {decision!r} from retry {atom.name!r}")
        parent_kind, parent_retry = self._determine(retry, failure)
        if self._defer_reverts:
            return parent_kind, parent_retry
        if parent_retry is not None and parent_kind != _RESOLVE_REVERT:
            return parent_kind, parent_retry
        return _RESOLVE_REVERT, retry

    def _persist_atom(self, atom: int) -> None:
        """Saves an atom whose data (not state) changed, in the open group's transaction if any —
        so a retry's history never reaches the store before the failure it records."""
        if self._persist is None:
            return
        state = self._storage.states[atom]
        if self._grouped is not None:
            self._grouped.append(([(atom, state, self._storage.intentions[atom])], [state], None))
        else:
            self._persist.save_atom(self, atom)

    def _ask_retry(self, retry: int, failed: int, failure: Failure) -> str:
        storage = self._storage
        atoms = self.compilation.atoms
        history = storage.retry_histories.setdefault(retry, [])
        if not history:
            history.append((None, {}))
        history[-1][1][atoms[failed].name] = failure
        self._persist_atom(retry)
        kwargs = self._arguments(retry)
        kwargs[actions.HISTORY] = storage.retry_history(retry)
        return str(atoms[retry].on_failure(**kwargs))

    # -- transitions: persist, then notify -------------------------------------------------------
    def _apply(self, transitions: list[tuple[int, int, int]], outcome: tuple[int, Any] | None = None) -> None:
        """Mirrors the scheduler's transitions into storage, then persists and notifies them —
        at once, or when the current `_group` ends. ``outcome`` is ``(atom, result)`` of the atom
        whose completion made these transitions (its result goes into the notification)."""
        if not transitions:
            return
        storage = self._storage
        st, it = storage.states, storage.intentions
        if self._grouped is None and self._persist is None and not self._observed():
            # Nobody sees these transitions: mirror them, nothing else.
            for atom, state, intention in transitions:
                if state == _PENDING or state == _REVERTED:
                    self._mirror_reset(atom, state)
                st[atom] = state
                it[atom] = intention
            return
        old_states = []
        for atom, state, intention in transitions:
            old = st[atom]
            old_states.append(old)  # chained: an atom may change twice in one batch
            if state == _PENDING or state == _REVERTED:
                self._mirror_reset(atom, state)
            st[atom] = state
            it[atom] = intention
        if self._grouped is not None:
            self._grouped.append((transitions, old_states, outcome))
        else:
            self._publish([(transitions, old_states, outcome)])

    def _mirror_reset(self, atom: int, state: int) -> None:
        """What a transition to PENDING (results forgotten) or REVERTED (a retry's history starts
        over) does to storage, before the state itself is mirrored."""
        storage = self._storage
        if state == _PENDING:
            if storage.states[atom] != _PENDING:
                storage.reset_results(atom)
        elif self._retry_flags[atom]:
            storage.retry_histories[atom] = []  # a reverted retry starts its history over

    def _observed(self) -> bool:
        """Whether anything outside the engine sees transitions (listeners, reported progress)."""
        # The notifier's topic dict, read directly: this runs for every atom.
        return bool(self._storage.progress or self._progress_watched or self.atom_notifier._topics)

    def _group(self) -> _Group:
        """Transitions made inside are committed together (one transaction), then notified."""
        return _Group(self)

    def _publish(self, batches: list[tuple[list[tuple[int, int, int]], list[int], tuple[int, Any] | None]]) -> None:
        """Persists a group of transitions (one transaction), then notifies them in order."""
        reported = self._storage.progress
        if reported:  # a task's own progress gives way to the engine's 0.0 / 1.0 at each step
            for transitions, _, _ in batches:
                for atom, state, _ in transitions:
                    if state in _ENGINE_PROGRESS:
                        reported.pop(atom, None)
        if self._persist is not None:
            self._persist.save(self, [t for transitions, _, _ in batches for t in transitions])
        listeners = self.atom_notifier.has_listeners()
        watched = self._progress_watched
        if not listeners and not watched:
            return
        atoms = self._atoms
        for transitions, old_states, outcome in batches:
            for (atom, state, _), old in zip(transitions, old_states, strict=True):
                if state == old:
                    continue
                if listeners:
                    self._notify_atom(atom, state, old, outcome)
                if atom in watched and state in _ENGINE_PROGRESS:
                    atoms[atom].update_progress(_ENGINE_PROGRESS[state])

    def _notify_atom(self, atom: int, state: int, old: int, outcome: tuple[int, Any] | None) -> None:
        compiled_atom = self.compilation.atoms[atom]
        storage = self._storage
        is_retry = self._is_retry(atom)
        prefix = "retry" if is_retry else "task"
        details: dict[str, Any] = {
            f"{prefix}_name": compiled_atom.name,
            f"{prefix}_uuid": storage.atom_uuid(atom),
            "old_state": STATE_NAMES[old],
        }
        if outcome is not None and outcome[0] == atom and state in (_SUCCESS, _FAILURE, _REVERTED, _REVERT_FAILURE):
            details["result"] = outcome[1]
        self.atom_notifier.notify(STATE_NAMES[state], details)

    def _change_flow_state(self, state: str, release: bool = False) -> None:
        """Sets and saves the flow's state; with ``release``, the flow's lease may be given up in
        the same write (the run's last)."""
        storage = self._storage
        old = storage.get_flow_state()
        if not states.check_flow_transition(old, state):
            return
        storage.set_flow_state(state)
        if self._persist is not None:
            self._persist.save_flow_state(self, state, release)
        if self.notifier.has_listeners():  # (nobody listening: no details to make)
            details = {"engine": self, "flow_name": storage.flow_name, "flow_uuid": storage.flow_uuid, "old_state": old}
            self.notifier.notify(state, details)

    def _gather_statistics(self, active_for: float) -> dict[str, Any]:
        """TaskFlow's keys: atom completions (executions and reverts) and resolved failures."""
        return {
            "active_for": active_for,
            "completed": self._completed,
            "incomplete": self._scheduler.in_flight,
            "awaiting": 0,
            "discarded_failures": self._discarded_failures,
            "seconds_per_state": {},
        }


class _Group:
    """`ActionEngine._group`: opens the engine's group unless one is open, and publishes it on the
    way out (a class rather than a generator context: every run opens one, and a small flow's run
    is short enough for a generator's frames to show)."""

    __slots__ = ("_engine", "_opened")

    def __init__(self, engine: ActionEngine) -> None:
        self._engine = engine
        self._opened = False

    def __enter__(self) -> None:
        engine = self._engine
        if engine._grouped is None:
            engine._grouped = []
            self._opened = True

    def __exit__(self, *exc_info: object) -> None:
        if self._opened:
            self._engine._flush_group()


class SerialActionEngine(ActionEngine):
    """Runs atoms one after another on the caller's thread."""

    _lane: Any = None
    #: What the lane writes persisted steps with (`Persister.lane_writer`), for this run.
    _lane_writer: Any = None

    def _loop(self, timeout: float | None) -> Iterator[str]:
        try:
            yield from self._rounds()
        finally:
            # The lane refers back to this engine: kept past the run, the pair would live until
            # a collection found the cycle, so every engine a process runs would outlast its run.
            self._lane = self._lane_writer = None

    def _rounds(self) -> Iterator[str]:
        call, complete, limit = self._call, self._complete, self._batch_size
        # run() consumes no engine states: only run_iter() gets the per-round ones.
        stepping = self._stepping
        self._lane = None
        persist = self._persist
        self._lane_writer = persist.lane_writer(self) if persist is not None else None
        ready, marked, published = self._fetch(limit)
        while ready or marked:
            # TaskFlow yields SCHEDULING before it schedules: a run_iter() consumer that asks to
            # suspend here gets the fetched round back, unpublished.
            if stepping:
                yield states.SCHEDULING
            ready = self._gate(ready, limit) if published else self._start_round(ready, marked, limit)
            if not ready:
                ready, marked, published = self._fetch(limit)
                if ready or marked:
                    continue
                return
            # Each outcome is completed (and committed) as soon as its atom returns, so a crash
            # never loses work already done; the last completion of a round fetches the next.
            last = len(ready) - 1
            for index, kind in ready[:last]:
                ok, value = call(index, kind)
                complete(index, kind, ok, value)
            index, kind = ready[last]
            ok, value = call(index, kind)
            if stepping:
                yield states.WAITING
                yield states.ANALYZING
            if self._lane_open():
                complete(index, kind, ok, value)
                ready, marked, published = self._fetch(limit)
                continue
            ready, marked = complete(index, kind, ok, value, limit)
            published = False
            if not ready and not marked:
                ready, marked, published = self._fetch(limit)

    def _fetch(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]], bool]:
        """The next round to run here, its transitions, and whether it is already published.

        While nothing observes the run and nothing has failed, the Rust lane (`_core.Lane`)
        runs the rounds of executes first (plain tasks itself, the others through `_step`) and
        gives back what it stopped at: actions already handed out and mirrored (all that
        publishing is without observers), to run, never to take back.
        """
        while self._lane_open():
            lane = self._lane
            if lane is None:
                lane = self._lane = self._make_lane()
            outer = getattr(task_mod.LANE, "sink", None)  # (an engine run from inside a task)
            task_mod.LANE.sink = lane.sink
            try:
                completed, rest, failed, unfinished = lane.run(self._scheduler)
            finally:
                task_mod.LANE.sink = outer
            self._completed += completed
            if completed and self._lane_writer is not None:
                self._persist.lane_wrote()
            if unfinished is not None:  # ran in the lane; completed (checked, written) here
                index, value = unfinished
                self._complete(index, _EXECUTE, True, value)
            if failed is not None:
                index, exc = failed
                self._complete(index, _EXECUTE, False, Failure.from_exception(exc))
            if rest:
                return rest, [], True
            if failed is None and unfinished is None:
                break  # nothing ready, or the lane closed: the general path decides
        return *self._next_round(limit), False

    def _step(self, index: int) -> bool:
        """Runs and completes one execute the lane hands over (a retry, a hooked task, arguments
        its fast lookup cannot decide); returns whether the lane may go on."""
        ok, value = self._call(index, _EXECUTE)
        self._complete(index, _EXECUTE, ok, value)
        return self._lane_open()

    def _lane_open(self) -> bool:
        """Whether the lane may run: nothing to persist (unless the lane writes the steps itself:
        `Persister.lane_writer`), notify or step through, no failure to resolve, no suspend asked
        for, no values injected for single atoms."""
        storage = self._storage
        return not (
            self._stepping
            or (self._persist is not None and self._lane_writer is None)
            or self._grouped is not None
            or self._suspend_requested
            or storage.failures
            or storage.has_atom_injected()
            or self._observed()
        )

    def _make_lane(self) -> Any:
        storage = self._storage
        return _core.Lane(
            self,
            self._atoms,
            storage.results,
            storage.states,
            storage.intentions,
            self._save_as,
            storage.injected,
            storage.transient,
            storage.progress,
            self.atom_notifier,
            storage.report_progress,
            actions.has_execute_hooks,
            self._batch_size,
            self._lane_writer,
            atom_mod.identity_arg_names,
        )


class ParallelActionEngine(ActionEngine):
    """Runs independent atoms concurrently on threads, or in processes.

    ``executor`` may be a `concurrent.futures.Executor` (owned by the caller: never shut down here),
    one of the strings ``thread``/``threads``/``threaded`` (the default), or one of
    ``process``/``processes``/``processpool`` (`PROCESS_KINDS`: a `concurrent.futures.ProcessPoolExecutor`,
    as TaskFlow's examples use ``executor='processes'``); ``max_workers`` sizes the pool the engine
    creates itself. Retries run on the engine thread, as in TaskFlow.

    On threads, ready atoms go to the workers in chunks that adapt to the atoms' pace (quick atoms
    hundreds at a time, slow ones one by one: `ferroflow.engines.workers`), and their outcomes come
    back through one queue; a caller's executor gets a *runner* per worker thread, not a future per
    atom. Outcomes that arrive together are analysed together, in the order their atoms were handed
    out, and committed in one transaction.

    In processes (CPU-bound atoms): each task is pickled, with its arguments, into a worker process
    that runs it and sends back its result, so its tasks must pickle (classes defined at module
    level, no lambdas); compiling checks this and raises `~ferroflow.exceptions.CompilationFailure`
    naming the atom and the flow. Changes a task makes to itself in the worker stay there. Progress a
    task reports there (``update_progress``, or its notifier's ``update_progress`` event) reaches the
    engine, the task's notifier listeners and storage when the task completes, in order, not live.
    """

    def compile(self) -> None:
        compiled_before = self._compilation is not None
        super().compile()
        if not compiled_before and self._in_processes():
            self._check_picklable()

    def _in_processes(self) -> bool:
        executor = self._options.get("executor")
        if isinstance(executor, futures.ProcessPoolExecutor):
            return True
        return isinstance(executor, str) and executor.lower() in PROCESS_KINDS

    def _check_picklable(self) -> None:
        """Every task of the flow pickles (retries run on the engine thread)."""
        import pickle

        for index, atom in enumerate(self._atoms):
            if self._retry_flags[index]:
                continue
            try:
                pickle.dumps(_for_process(atom))
            except Exception as exc:
                raise exceptions.CompilationFailure(
                    f"Atom {atom.name!r} of flow {self._flow.name!r} cannot run in a process executor: "
                    f"it cannot be pickled ({type(exc).__name__}: {exc}). Define its class (and the "
                    "functions it calls) at module level and keep unpicklable objects (locks, "
                    "connections, lambdas) out of its attributes, or use executor='threads'"
                ) from exc

    def _make_executor(self) -> tuple[futures.Executor | None, bool]:
        executor = self._options.get("executor")
        max_workers = self._options.get("max_workers")
        if max_workers is not None:
            max_workers = int(max_workers)
        if isinstance(executor, futures.Executor):
            return executor, False
        if executor is None or (isinstance(executor, str) and executor.lower() in _THREAD_KINDS):
            if max_workers is not None and max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
            return None, True  # the engine's own threads (a `WorkerPool`)
        if isinstance(executor, str) and executor.lower() in PROCESS_KINDS:
            return futures.ProcessPoolExecutor(max_workers=max_workers), True
        if isinstance(executor, str):
            raise ValueError(
                f"Unknown executor kind {executor!r}; use one of {sorted(_THREAD_KINDS | PROCESS_KINDS)} or "
                "pass a concurrent.futures.Executor instance"
            )
        raise TypeError(f"executor must be a concurrent.futures.Executor or a string, not {type(executor).__name__}")

    def _submit_to_process(self, executor: futures.Executor, index: int, kind: int) -> futures.Future:
        """Submits a task to a worker process: its arguments are fetched here (a failure to fetch them
        is the task's failure, as on threads)."""
        persist = self._persist
        if persist is not None:
            persist.keep_lease()
        atom = _for_process(self._atoms[index])
        storage = self._storage
        try:
            kwargs = self._arguments(index, revert=kind == _REVERT)
            if kind == _EXECUTE:
                return executor.submit(_run_in_process, atom, kind, kwargs, None, None)
            result = storage.failures.get(index)
            if result is None:
                result = storage.interrupted.get(index, storage.results[index])
            return executor.submit(_run_in_process, atom, kind, kwargs, result, storage.get_execute_failures())
        except Exception:
            done: futures.Future = futures.Future()
            done.set_result((False, Failure(), ()))
            return done

    def _replay_progress(self, index: int, reported: tuple) -> None:
        """Progress a task reported in its worker process, as it would have arrived on a thread."""
        if not reported:
            return
        atom = self._atoms[index]
        storage = self._storage
        events = getattr(atom, "_notifier", None)
        if events is None:
            for progress, details in reported:
                storage.report_progress(index, progress, details)
            return
        atom._progress_sink = functools.partial(storage.report_progress, index)
        try:
            for progress, details in reported:
                events.notify(task_mod.EVENT_UPDATE_PROGRESS, {**(details or {}), "progress": progress})
        finally:
            atom._progress_sink = None

    def _loop(self, timeout: float | None) -> Iterator[str]:
        executor, owned = self._make_executor()
        # Outcomes arrive in `done` as (seq, index, kind, ok, value): from the workers of a
        # `WorkerPool` (the engine's threads, or runners in a caller's executor), or with ok None
        # and the future as value from a process future's done-callback.
        done: queue.SimpleQueue = queue.SimpleQueue()
        pool: WorkerPool | None = None
        in_processes = isinstance(executor, futures.ProcessPoolExecutor)
        if not in_processes:
            pool = WorkerPool(self._call, done, self._max_workers() if owned else None, executor)
        in_flight = 0
        seq = 0
        finished = False
        try:
            while True:
                ready = self._schedule(self._batch_size)
                if ready:
                    yield states.SCHEDULING
                    jobs: list[tuple[int, int]] = []
                    for action in ready:
                        if self._is_retry(action[0]):
                            # Retries run here, once the actions before them are handed out.
                            seq = self._hand_out(executor, pool, done, jobs, seq)
                            in_flight += len(jobs)
                            jobs = []
                            ok, value = self._call(*action)
                            self._complete(action[0], action[1], ok, value)
                        else:
                            jobs.append(action)
                    seq = self._hand_out(executor, pool, done, jobs, seq)
                    in_flight += len(jobs)
                if not in_flight:
                    if ready:
                        continue
                    finished = True
                    return
                yield states.WAITING
                batch = _take_outcomes(done, timeout)
                in_flight -= len(batch)
                # Completions that arrived together are analysed together, in submission order,
                # and committed in one transaction.
                with self._group():
                    for _, index, kind, ok, value in batch:
                        if ok is None:
                            ok, value = self._outcome_of(index, value)
                        self._complete(index, kind, ok, value)
                yield states.ANALYZING
        finally:
            if pool is not None:
                pool.shutdown(cancel=not finished)  # (a caller's executor is left as it is)
            elif owned and executor is not None:
                executor.shutdown(wait=True)

    def _max_workers(self) -> int | None:
        max_workers = self._options.get("max_workers")
        return None if max_workers is None else int(max_workers)

    def _hand_out(
        self,
        executor: futures.Executor | None,
        pool: WorkerPool | None,
        done: queue.SimpleQueue,
        jobs: list[tuple[int, int]],
        seq: int,
    ) -> int:
        """Hands ``jobs`` to the pool, or to worker processes (a future each, reported into
        ``done`` by a done-callback); returns the next seq."""
        if pool is not None:
            pool.submit(jobs)
            return seq + len(jobs)
        assert executor is not None
        put = done.put
        for index, kind in jobs:
            future = self._submit_to_process(executor, index, kind)
            future.add_done_callback(functools.partial(_report_future, put, seq, index, kind))
            seq += 1
        return seq

    def _outcome_of(self, index: int, reported: Any) -> tuple[bool, Any]:
        """``(ok, value)`` of a process future, replaying the progress its task reported; an error
        raised by a worker thread (not by the task: the engine's own code) is raised here."""
        if not isinstance(reported, futures.Future):
            raise reported
        try:
            ok, value, progress = reported.result()
        except Exception:  # the worker died, or the result did not pickle
            ok, value, progress = False, Failure(), ()
        self._replay_progress(index, progress)
        return ok, value


_SEQ = operator.itemgetter(0)


def _report_future(put: Any, seq: int, index: int, kind: int, future: futures.Future) -> None:
    put((seq, index, kind, None, future))


def _take_outcomes(done: queue.SimpleQueue, timeout: float | None) -> list[tuple]:
    """Waits (up to ``timeout``) for an outcome, then takes all that arrived, in submission order."""
    try:
        batch = [done.get(timeout=timeout)]
    except queue.Empty:
        return []
    get = done.get_nowait
    append = batch.append
    try:
        while True:
            append(get())
    except queue.Empty:
        pass
    if len(batch) > 1:
        batch.sort(key=_SEQ)
    return batch


def _for_process(atom: Any) -> Any:
    """What is sent to a worker process: the task, without its notifier (whose listeners stay
    here: what the task reports is replayed to them, see `ParallelActionEngine._replay_progress`)."""
    if getattr(atom, "_notifier", None) is None:
        return atom
    clone = copy.copy(atom)
    clone._notifier = None
    return clone


def _run_in_process(atom: Any, kind: int, kwargs: dict[str, Any], result: Any, failures: Any) -> tuple:
    """Runs a task's execute (or revert) in a worker process: ``(ok, value, progress reported)``."""
    reported: list[tuple[Any, Any]] = []
    atom._progress_sink = lambda progress, details: reported.append((progress, details))
    if kind == _EXECUTE:
        ok, value = actions.execute_task(atom, kwargs)
    else:
        ok, value = actions.revert_task(atom, kwargs, result, failures)
    return ok, value, tuple(reported)


THREAD_KINDS = frozenset({"thread", "threads", "threaded"})
_THREAD_KINDS = THREAD_KINDS
#: ``executor`` strings that run tasks in worker processes (TaskFlow's spellings).
PROCESS_KINDS = frozenset({"process", "processes", "processpool"})

# TaskFlow programs import (and print) the engines from ``engines.action_engine.engine``: their
# public home, so that is the module their repr, pickling and reflection name.
for _cls in (ActionEngine, SerialActionEngine, ParallelActionEngine):
    _cls.__module__ = "ferroflow.engines.action_engine.engine"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _saved_failure(engine: ActionEngine, atom: int) -> Failure:
    name = engine.compilation.atoms[atom].name
    try:
        raise exceptions.ExecutionFailure(f"Atom {name!r} failed in an earlier run; its failure was not saved")
    except exceptions.ExecutionFailure:
        return Failure()


__all__ = ["ActionEngine", "ParallelActionEngine", "SerialActionEngine"]
