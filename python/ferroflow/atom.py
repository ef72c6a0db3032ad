"""The unit of work of a flow (``taskflow.atom``): argument mapping, result naming, hooks.

How an atom's inputs are found (TaskFlow's rules, kept exactly):

- With ``auto_extract`` (the default) the arguments of ``execute`` without a default are *required*,
  and those with a default are *optional* (passed only when a value can be found).
- ``requires`` adds more required names; accepting names that are not parameters needs ``**kwargs``
  (otherwise ``ValueError('Extra arguments …')``).
- ``rebind`` maps arguments to other storage names: a list is matched by position against the required
  arguments (extra items are taken 1:1), a dict maps argument -> storage name. Rebinding an argument
  that has a default makes it required.
- A required argument left without a mapping raises ``ValueError('Missing arguments …')``.
- ``revert`` gets its own mapping from its own signature (``revert_rebind``/``revert_requires``, falling
  back to ``rebind``/``requires``), ignoring ``result`` and ``flow_failures``, which the engine always
  passes to ``revert``.
- ``inject`` values (keyed by *storage* name) are supplied by the atom itself, so those names are
  removed from :attr:`Atom.requires` and :attr:`Atom.optional`.
"""

from __future__ import annotations

import abc
import collections
import inspect
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from types import FunctionType
from typing import Any, NamedTuple

from ferroflow.types.sets import OrderedSet

# Arguments the engine passes to ``revert`` itself; never looked up in storage.
_DEFAULT_REVERT_ARGS = ("result", "flow_failures")


def _save_as_to_mapping(save_as: Any) -> collections.OrderedDict:
    """``provides`` -> OrderedDict of storage name -> how to pick it out of the result.

    ``str``: the whole result (``None``); list/tuple: ``result[i]``; set: ``result[name]``.
    """
    if save_as is None:
        return collections.OrderedDict()
    if isinstance(save_as, str):
        return collections.OrderedDict([(save_as, None)])
    if isinstance(save_as, (list, tuple, Sequence)):
        return collections.OrderedDict((key, index) for index, key in enumerate(save_as))
    if isinstance(save_as, (set, AbstractSet)):
        # No reliable position in an unordered set: results are picked by key.
        return collections.OrderedDict((key, key) for key in save_as)
    raise TypeError(f"Atom provides parameter should be str, set or tuple/list, not {save_as!r}")


def _build_rebind_dict(req_args: Sequence[str], rebind_args: Any) -> Mapping[str, str]:
    """``rebind`` (list matched by position, or dict) -> mapping of argument -> storage name."""
    if rebind_args is None:
        return collections.OrderedDict()
    if isinstance(rebind_args, (list, tuple)):
        rebind = collections.OrderedDict(zip(req_args, rebind_args, strict=False))
        # More names than required arguments: they feed *args/**kwargs, bound 1:1.
        rebind.update((a, a) for a in rebind_args[len(req_args) :])
        return rebind
    if isinstance(rebind_args, dict):
        return rebind_args
    raise TypeError(f"Invalid rebind value '{rebind_args}' ({type(rebind_args)})")


class _Params(NamedTuple):
    required: tuple[str, ...]  #: parameters without a default (no *args/**kwargs)
    every: tuple[str, ...]  #: all named parameters
    accepts_kwargs: bool


# inspect.signature is slow; atoms of one class share their methods' signatures, so cache them per
# function (weakly: functors may be short-lived lambdas). Bound methods drop their first parameter.
_FUNCTION_PARAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_METHOD_PARAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _inspect_params(function: Callable) -> _Params:
    required, every, accepts_kwargs = [], [], False
    for name, param in inspect.signature(function).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_kwargs = True
        elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
            every.append(name)
            if param.default is inspect.Parameter.empty:
                required.append(name)
    return _Params(tuple(required), tuple(every), accepts_kwargs)


def _callable_params(function: Callable) -> _Params:
    """The parameters of ``function`` as the argument mapping sees them (cached per function)."""
    if inspect.ismethod(function) and isinstance(function.__func__, FunctionType):
        cache, key = _METHOD_PARAMS, function.__func__
    elif isinstance(function, FunctionType):
        cache, key = _FUNCTION_PARAMS, function
    else:
        return _inspect_params(function)
    params = cache.get(key)
    if params is None:
        params = cache[key] = _inspect_params(function)
    return params


def _build_arg_mapping(
    atom_name: str | None,
    reqs: Any,
    rebind_args: Any,
    function: Callable,
    do_infer: bool,
    ignore_list: Iterable[str] | None = None,
) -> tuple[collections.OrderedDict, collections.OrderedDict]:
    """Maps ``function``'s arguments to storage names.

    Returns ``(required, optional)``: OrderedDicts of argument name -> storage name.
    """
    params = _callable_params(function)
    ignore = list(ignore_list) if ignore_list else []
    req_args = [a for a in params.required if a not in ignore]

    required: collections.OrderedDict = collections.OrderedDict()
    if do_infer:
        required.update((a, a) for a in req_args)
    if reqs:
        if isinstance(reqs, str):
            required[reqs] = reqs
        else:
            required.update((a, a) for a in reqs)
    required.update(_build_rebind_dict(req_args, rebind_args))

    optional: collections.OrderedDict = collections.OrderedDict()
    if do_infer:
        optional.update((a, a) for a in params.every if a not in required and a not in ignore)

    if not params.accepts_kwargs:
        extra = [a for a in required if a not in params.every]
        if extra:
            raise ValueError(f"Extra arguments given to atom {atom_name}: {extra}")
    missing = [a for a in req_args if a not in required]
    if missing:
        raise ValueError(f"Missing arguments for atom {atom_name}: {missing}")
    return required, optional


def get_version_string(obj: Any) -> str | None:
    """The ``version`` attribute of ``obj`` as a string: ``(1, 0)`` -> ``"1.0"``; ``None`` if absent."""
    version = getattr(obj, "version", None)
    if isinstance(version, (list, tuple)):
        return ".".join(str(item) for item in version)
    if version is not None and not isinstance(version, str):
        return str(version)
    return version


def _class_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    if cls.__module__ in ("builtins", "__builtin__", "__builtins__", "exceptions"):
        return cls.__name__
    return f"{cls.__module__}.{cls.__name__}"


class Atom(abc.ABC):
    """A named unit of work that takes named inputs and may produce named outputs.

    :param name: the atom's name, unique within a flow (it identifies the atom's saved state).
    :param provides: names for the result: a ``str`` (the whole result), a list/tuple (``result[i]`` is
        saved as ``provides[i]``) or a set (``result[name]`` is saved as ``name``). Defaults to the class
        attribute :attr:`default_provides`.
    :param requires: more names ``execute`` needs (beyond its signature).
    :param auto_extract: derive required and optional arguments from the ``execute`` signature.
    :param rebind: storage names for arguments (list by position, or dict argument -> storage name).
    :param inject: storage name -> value given to this atom only (wins over every other source).
    :param ignore_list: parameters never looked up (the engine supplies them).
    :param revert_rebind: like ``rebind`` for ``revert`` (defaults to ``rebind``).
    :param revert_requires: like ``requires`` for ``revert`` (defaults to ``requires``).
    :param on_version_change: keyword only; see :attr:`on_version_change`.

    Attributes (all in TaskFlow's form; the engine reads them):

    :ivar version: ``(1, 0)`` unless changed after construction; persisted as ``"1.0"``
        (:func:`get_version_string`).
    :ivar save_as: OrderedDict storage name -> index/key into the result (``None`` = whole result).
    :ivar provides: OrderedSet of storage names the result is saved under.
    :ivar rebind: OrderedDict *argument name* -> *storage name* for every argument ``execute`` gets
        (required and optional, injected ones included).
    :ivar revert_rebind: the same for ``revert`` (without ``result``/``flow_failures``).
    :ivar requires: OrderedSet of *storage names* needed by ``execute`` or ``revert``, minus injected.
    :ivar optional: OrderedSet of names ``execute`` takes only if found, minus injected. Optional arguments
        are never rebound (rebinding one makes it required), so each name here is both the argument name
        and the storage name.
    :ivar revert_optional: the same for ``revert``.
    """

    #: Among atoms ready at the same time, higher priorities are scheduled first.
    priority = 0
    #: ``provides`` used when none is given to the constructor.
    default_provides: Any = None
    #: What resuming does when this atom completed under another :attr:`version` (ferroflow):
    #: ``"reuse"``, ``"rerun"``, ``"revert_then_rerun"``, ``"fail"``, or a callable
    #: ``migrate(old_version, old_result) -> new_result``; ``None`` defers to the engine's
    #: ``on_version_change`` option (see :mod:`ferroflow.migrations`). Settable per class too.
    on_version_change: Any = None
    #: ``(args, kwargs)`` this atom was constructed with (only atoms that override ``revert``).
    _constructor_arguments: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Atom:
        # The constructor arguments of an atom that can undo something are kept so that, once
        # its code is removed from its flow, a saved detail can still rebuild it to revert it
        # (see ferroflow.engines.revert_refs).
        self = super().__new__(cls)
        if cls.revert is not Atom.revert:
            self._constructor_arguments = (args, kwargs)
        return self

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
        if provides is None:
            provides = self.default_provides
        self.name = name
        self.version: Any = (1, 0)
        if on_version_change is not None:
            self.on_version_change = on_version_change
        self.inject = inject
        self.save_as = _save_as_to_mapping(provides)
        self.provides = OrderedSet(self.save_as)

        if ignore_list is None:
            ignore_list = []
        self.rebind, exec_requires, self.optional = self._build_arg_mapping(
            self.execute, requires=requires, rebind=rebind, auto_extract=auto_extract, ignore_list=ignore_list
        )
        self.revert_rebind, revert_only_requires, self.revert_optional = self._build_arg_mapping(
            self.revert,
            requires=revert_requires or requires,
            rebind=revert_rebind or rebind,
            auto_extract=auto_extract,
            ignore_list=[*ignore_list, *_DEFAULT_REVERT_ARGS],
        )
        #: OrderedSet of storage names needed by ``execute`` or ``revert`` (injected ones removed).
        self.requires = exec_requires.union(revert_only_requires)

    def _build_arg_mapping(
        self,
        executor: Callable,
        requires: Any = None,
        rebind: Any = None,
        auto_extract: bool = True,
        ignore_list: list[str] | None = None,
    ) -> tuple[collections.OrderedDict, OrderedSet, OrderedSet]:
        """Returns ``(rebind, requires, optional)`` for ``executor`` (see the class docstring)."""
        required, optional = _build_arg_mapping(
            self.name, requires, rebind, executor, auto_extract, ignore_list=ignore_list
        )
        arg_to_storage: collections.OrderedDict = collections.OrderedDict(required)
        for arg, name in optional.items():
            arg_to_storage.setdefault(arg, name)
        needed = OrderedSet(required.values())
        maybe = OrderedSet(optional.values())
        if self.inject:
            injected = frozenset(self.inject)
            needed = needed.difference(injected)
            maybe = maybe.difference(injected)
        return arg_to_storage, needed, maybe

    def pre_execute(self) -> None:  # noqa: B027 - optional hook
        """Called just before :meth:`execute` (for example from a shared base class)."""

    @abc.abstractmethod
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Does the work; the result (if any) is saved under :attr:`provides` and must be persistable."""

    def post_execute(self) -> None:  # noqa: B027 - optional hook
        """Called just after :meth:`execute`, whether it succeeded or not."""

    def pre_revert(self) -> None:  # noqa: B027 - optional hook
        """Called just before :meth:`revert`."""

    def revert(self, *args: Any, **kwargs: Any) -> Any:  # noqa: B027 - optional
        """Undoes :meth:`execute`. Gets the mapped arguments plus ``result`` (the execute result, or a
        :class:`~ferroflow.types.failure.Failure`) and ``flow_failures`` ({atom name: Failure})."""

    def post_revert(self) -> None:  # noqa: B027 - optional hook
        """Called just after :meth:`revert`."""

    def __str__(self) -> str:
        return f'"{self.name}=={get_version_string(self)}"'

    def __repr__(self) -> str:
        return f"<{_class_name(self)} {self}>"
