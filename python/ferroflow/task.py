"""Tasks: atoms that do work and can undo it (``taskflow.task``)."""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ferroflow import atom
from ferroflow.types import notifier

LOG = logging.getLogger(__name__)

#: Keyword argument of ``revert`` holding the ``execute`` result (or its Failure).
REVERT_RESULT = "result"
#: Keyword argument of ``revert`` holding ``{atom name: Failure}`` of the flow's execute failures.
REVERT_FLOW_FAILURES = "flow_failures"

#: Event a task's :attr:`~Task.notifier` emits from :meth:`~Task.update_progress`.
EVENT_UPDATE_PROGRESS = "update_progress"

#: While a serial engine's Rust lane runs on this thread, ``LANE.sink`` is its progress sink
#: (``_core.ProgressSink``): ``update_progress`` of the task it runs reports through it.
LANE = threading.local()
#: How many tasks have made their own notifier (engines skip looking for progress listeners
#: while none has).
_notifiers_made = 0


def notifiers_made() -> int:
    """How many tasks have made their own notifier so far (in this process)."""
    return _notifiers_made


#: How many Task subclasses override `Task.update_progress` (the engine then calls it at each step,
#: as TaskFlow's does, even when nothing listens to the task's notifier).
_progress_overrides = 0


def progress_overrides() -> int:
    """How many Task subclasses (so far, in this process) override ``update_progress``."""
    return _progress_overrides


def _next_init(cls: type, after: type) -> type | None:
    """The class whose ``__init__`` ``super().__init__`` in ``after`` reaches for instances of ``cls``."""
    mro = cls.__mro__
    for base in mro[mro.index(after) + 1 :]:
        if "__init__" in base.__dict__:
            return base
    return None


def _callable_name(function: Callable) -> str:
    """A best-effort fully qualified name for a callable (``module.qualname``)."""
    if inspect.ismethod(function):
        owner = function.__self__
        cls = owner if isinstance(owner, type) else type(owner)
        try:
            return f"{cls.__module__}.{function.__qualname__}"
        except AttributeError:
            return f"{cls.__module__}.{cls.__name__}.{function.__name__}"
    if inspect.isfunction(function):
        return f"{function.__module__}.{function.__qualname__}"
    cls = function if type(function) is type else type(function)
    return f"{cls.__module__}.{getattr(cls, '__qualname__', cls.__name__)}"


def _is_iterable(obj: Any) -> bool:
    return not isinstance(obj, str) and isinstance(obj, Iterable)


class _TaskNotifier(notifier.RestrictedNotifier):
    """A task's own notifier: an ``update_progress`` event, whether sent by `Task.update_progress`
    or notified directly with details (``{'progress': p, ...}``), is also reported to the engine
    running the task (TaskFlow's engine listens to it for the task's progress and its details)."""

    def __init__(self, task: Task, watchable_events: Iterable[str]) -> None:
        super().__init__(watchable_events)
        self._task = task

    def notify(self, event_type: str, details: dict | None) -> None:
        if event_type == EVENT_UPDATE_PROGRESS and details and "progress" in details:
            extra = {k: v for k, v in details.items() if k != "progress"}
            self._task._report_progress(details["progress"], extra or None)
        super().notify(event_type, details)


class Task(atom.Atom):
    """An atom that does work in :meth:`execute` and can undo it in :meth:`revert`.

    Takes the same arguments as :class:`~ferroflow.atom.Atom`; the name defaults to the fully qualified
    class name (``"module.ClassName"``).
    """

    #: Events a task's :attr:`notifier` accepts registrations for (plus ``'*'``).
    TASK_EVENTS: tuple[str, ...] = (EVENT_UPDATE_PROGRESS,)

    def __init__(
        self,
        name: str | None = None,
        provides: Any = None,
        requires: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        inject: dict[str, Any] | None = None,
        ignore_list: list[str] | None = None,
        revert_rebind: Any = None,
        revert_requires: Any = None,
        *,
        on_version_change: Any = None,
    ) -> None:
        if name is None:
            name = atom._class_name(self)
        # ignore_list is accepted for signature compatibility but, as in TaskFlow, not applied to tasks.
        if self._atom_init_next:
            # (what Atom.__init__ does, without its call: about a third of building a plain task)
            atom._init_atom(
                self,
                name,
                provides,
                requires,
                auto_extract,
                rebind,
                inject,
                None,
                revert_rebind,
                revert_requires,
                on_version_change,
            )
            return
        super().__init__(
            name,
            provides=provides,
            requires=requires,
            auto_extract=auto_extract,
            rebind=rebind,
            inject=inject,
            revert_rebind=revert_rebind,
            revert_requires=revert_requires,
            on_version_change=on_version_change,
        )

    #: The task's own notifier, made on first use (most tasks never need one).
    _notifier: _TaskNotifier | None = None
    #: Set by the engine while it runs this task, so reported progress is stored without
    #: registering (and deregistering) a listener around every call.
    _progress_sink: Callable[[float, Any], None] | None = None

    @property
    def notifier(self) -> _TaskNotifier:
        """Dispatches the task's own events (``update_progress``) to registered callbacks."""
        events = self._notifier
        if events is None:
            global _notifiers_made
            _notifiers_made += 1
            events = self._notifier = _TaskNotifier(self, self.TASK_EVENTS)
        return events

    #: Whether the ``__init__`` after `Task`'s in the class's MRO is `Atom`'s (no class between
    #: them defines one), so that `Task.__init__` may do its work without calling it.
    _atom_init_next: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._atom_init_next = _next_init(cls, Task) is atom.Atom
        if cls.update_progress is not Task.update_progress:
            global _progress_overrides
            _progress_overrides += 1

    def has_progress_listeners(self) -> bool:
        """Whether anything listens to this task's own events (cheap: no notifier is made), or
        its class overrides ``update_progress`` (which the engine then calls at each step)."""
        events = self._notifier
        if events is not None and events.has_listeners():
            return True
        return _progress_overrides > 0 and type(self).update_progress is not Task.update_progress

    def copy(self, retain_listeners: bool = True) -> Task:
        """A shallow copy, with a copy of the notifier (emptied unless ``retain_listeners``)."""
        clone = copy.copy(self)
        clone._notifier = self.notifier.copy()
        clone._notifier._task = clone
        if not retain_listeners:
            clone._notifier.reset()
        return clone

    def update_progress(self, progress: float) -> None:
        """Reports progress (clamped to [0.0, 1.0]) to the ``update_progress`` listeners."""
        clamped = min(max(progress, 0.0), 1.0)
        if clamped != progress:
            LOG.warning(
                "Progress value must be greater or equal to 0.0 or less than or equal to 1.0 instead of being '%s'",
                progress,
            )
        events = self._notifier
        if events is not None:
            events.notify(EVENT_UPDATE_PROGRESS, {"progress": clamped})  # (reports it, see _TaskNotifier)
        else:
            self._report_progress(clamped, None)

    def _report_progress(self, progress: float, details: dict[str, Any] | None) -> None:
        """Hands reported progress (and details) to the engine running this task, if any."""
        sink = self._progress_sink
        if sink is not None:
            sink(progress, details)
        else:
            lane_sink = getattr(LANE, "sink", None)
            if lane_sink is not None:
                lane_sink.report(self, progress if not details else (progress, details))


class FunctorTask(Task):
    """A task made of callables: ``execute`` and optionally ``revert``.

    The name defaults to the ``execute`` callable's qualified name. ``revert`` gets the same ``requires``
    and ``rebind`` as ``execute``, plus ``result`` and ``flow_failures``.

    Difference from TaskFlow: a ``revert`` callable naming ``result``/``flow_failures`` as parameters does
    not turn them into requirements (TaskFlow listed them in :attr:`requires`, failing validation).
    """

    # Revert references never name ferroflow's own classes (see ferroflow.engines.revert_refs), so
    # this one keeps no constructor arguments; subclasses (importable by name) do.
    _arguments_unused = True

    def __init__(
        self,
        execute: Callable,
        name: str | None = None,
        provides: Any = None,
        requires: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        revert: Callable | None = None,
        version: Any = None,
        inject: dict[str, Any] | None = None,
    ) -> None:
        if not callable(execute):
            raise ValueError("Function to use for executing must be callable")
        if revert is not None and not callable(revert):
            raise ValueError("Function to use for reverting must be callable")
        if name is None:
            name = _callable_name(execute)
        self._execute = execute
        self._revert = revert
        if version is not None:
            self.version = version
        if not inject and auto_extract:
            # The common arguments: the mappings come from the functions' plan (made on first read).
            plan = atom.functions_plan(execute, revert)
            if plan is not None and atom._init_atom(
                self, name, provides, requires, auto_extract, rebind, inject, None, None, None, None, plan
            ):
                return
        super().__init__(name, provides=provides, inject=inject)
        self.rebind, exec_requires, self.optional = self._build_arg_mapping(execute, requires, rebind, auto_extract)
        if revert:
            self.revert_rebind, revert_requires, self.revert_optional = self._build_arg_mapping(
                revert, requires, rebind, auto_extract, ignore_list=list(atom._DEFAULT_REVERT_ARGS)
            )
        else:
            self.revert_rebind, revert_requires, self.revert_optional = (
                self.rebind,
                exec_requires,
                self.optional,
            )
        self.requires = exec_requires.union(revert_requires)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._execute(*args, **kwargs)

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        if self._revert:
            return self._revert(*args, **kwargs)
        return None


def _functor_arity(functor: Callable) -> int:
    return len(atom._callable_params(functor).every)


def _argument_names(task: Task) -> list[str]:
    """The argument names under which ``execute`` receives the values of ``task.requires``, in order.

    TaskFlow reads ``kwargs[storage name]``, which fails once ``rebind`` renames a requirement; reading by
    argument name gives the same values in every case that worked there.
    """
    arg_of: dict[str, str] = {}
    for arg, storage_name in task.rebind.items():
        arg_of.setdefault(storage_name, arg)
    return [arg_of.get(name, name) for name in task.requires]


class _FunctorOverRequires(Task):
    """Shared construction of the map/reduce functor tasks: TaskFlow's checks, same messages."""

    _verb = ""  # "map" / "reduce"
    _arity = 0
    _min_requires = 0

    def __init__(
        self,
        functor: Callable,
        requires: Any,
        name: str | None = None,
        provides: Any = None,
        auto_extract: bool = True,
        rebind: Any = None,
        inject: dict[str, Any] | None = None,
    ) -> None:
        if not callable(functor):
            raise ValueError(f"Function to use for {self._verb} must be callable")
        arity = _functor_arity(functor)
        if arity != self._arity:
            plural = "argument" if self._arity == 1 else "arguments"
            raise ValueError(
                f"{arity} arguments were provided. {self._verb.capitalize()} functor must take exactly "
                f"{self._arity} {plural}."
            )
        if not _is_iterable(requires):
            raise TypeError(f"{type(requires)} type was provided for requires. Requires must be an iterable.")
        if len(requires) < self._min_requires:
            raise ValueError(
                f"{len(requires)} elements were provided. Requires must have at least {self._min_requires} elements."
            )
        if name is None:
            name = _callable_name(functor)
        super().__init__(
            name=name,
            provides=provides,
            inject=inject,
            requires=requires,
            rebind=rebind,
            auto_extract=auto_extract,
        )
        self._functor = functor
        self._arg_names = _argument_names(self)


class ReduceFunctorTask(_FunctorOverRequires):
    """Reduces the values of ``requires`` with a 2-argument ``functor`` (like :func:`functools.reduce`).

    Difference from TaskFlow: a ``rebind`` dict works (TaskFlow looked values up by storage name and failed).
    """

    _verb, _arity, _min_requires = "reduce", 2, 2

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return functools.reduce(self._functor, [kwargs[name] for name in self._arg_names])


class MapFunctorTask(_FunctorOverRequires):
    """Maps a 1-argument ``functor`` over the values of ``requires``; returns the list of results (in
    ``requires`` order, so a list/tuple ``provides`` names each one).

    Difference from TaskFlow: a ``rebind`` dict works (TaskFlow looked values up by storage name and failed).
    """

    _verb, _arity, _min_requires = "map", 1, 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return [self._functor(kwargs[name]) for name in self._arg_names]
