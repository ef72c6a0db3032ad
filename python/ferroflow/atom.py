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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from types import FunctionType, MethodType
from typing import Any, NamedTuple

from ferroflow.types.sets import OrderedSet

# Arguments the engine passes to ``revert`` itself; never looked up in storage.
_DEFAULT_REVERT_ARGS = ("result", "flow_failures")


class FrozenOrderedDict(collections.OrderedDict):
    """A read-only :class:`~collections.OrderedDict`: reads behave exactly as an OrderedDict's (order,
    ``==`` with another OrderedDict is order-sensitive); every change raises ``TypeError``.

    Atoms built with the same arguments share their mappings (see :class:`Atom`), so one atom changing
    one would change them all. ``copy()`` and ``|`` give a plain, changeable OrderedDict; pickling and
    ``copy.deepcopy`` give a plain OrderedDict too.
    """

    __slots__ = ()

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        if self:
            raise TypeError("FrozenOrderedDict is read-only")
        if isinstance(items, Mapping):
            items = items.items()
        setitem = collections.OrderedDict.__setitem__
        for key, value in items:
            setitem(self, key, value)

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "an atom's argument and result mappings are read-only (atoms share them); assign a new mapping instead"
        )

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = move_to_end = _read_only

    def copy(self) -> collections.OrderedDict:  # type: ignore[override]
        """A changeable copy (a plain OrderedDict)."""
        return collections.OrderedDict(self)

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        merged = collections.OrderedDict(self)
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        merged = collections.OrderedDict(other)
        merged.update(self)
        return merged

    def __reduce__(self) -> tuple:
        return collections.OrderedDict, (list(self.items()),)


#: The empty mapping and set every atom without arguments (or results) shares.
_EMPTY_MAPPING = FrozenOrderedDict()
_EMPTY_SET = OrderedSet()


_od_setitem = collections.OrderedDict.__setitem__


def _frozen_mapping(mapping: Mapping) -> FrozenOrderedDict:
    """``mapping`` as a FrozenOrderedDict (the shared empty one when it is empty)."""
    if not mapping:
        return _EMPTY_MAPPING
    frozen = FrozenOrderedDict.__new__(FrozenOrderedDict)  # (the constructor's checks are not needed)
    for key, value in mapping.items():
        _od_setitem(frozen, key, value)
    return frozen


def _ordered_set(items: Collection[Any]) -> OrderedSet:
    """``items`` as an OrderedSet (the shared empty one when there are none)."""
    return OrderedSet(items) if items else _EMPTY_SET


def _save_as_to_mapping(save_as: Any) -> FrozenOrderedDict:
    """``provides`` -> mapping of storage name -> how to pick it out of the result.

    ``str``: the whole result (``None``); list/tuple: ``result[i]``; set: ``result[name]``.
    """
    if save_as is None:
        return _EMPTY_MAPPING
    if isinstance(save_as, str):
        return _frozen_mapping({save_as: None})
    if isinstance(save_as, (list, tuple, Sequence)):
        return _frozen_mapping({key: index for index, key in enumerate(save_as)})
    if isinstance(save_as, (set, AbstractSet)):
        # No reliable position in an unordered set: results are picked by key.
        return _frozen_mapping({key: key for key in save_as})
    raise TypeError(f"Atom provides parameter should be str, set or tuple/list, not {save_as!r}")


def _build_rebind_dict(req_args: Sequence[str], rebind_args: Any) -> Mapping[str, str]:
    """``rebind`` (list matched by position, or dict) -> mapping of argument -> storage name."""
    if rebind_args is None:
        return {}
    if isinstance(rebind_args, (list, tuple)):
        rebind = dict(zip(req_args, rebind_args, strict=False))
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
# function. Bound methods drop their first parameter, so they have their own cache. Plain dicts (faster
# than weak ones), emptied when full so that short-lived functions (lambdas of functor tasks) cannot
# make them grow without end.
_FUNCTION_PARAMS: dict[FunctionType, _Params] = {}
_METHOD_PARAMS: dict[FunctionType, _Params] = {}
_PARAMS_MAX = 4096


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
    kind = type(function)
    if kind is MethodType and type(function.__func__) is FunctionType:
        cache, key = _METHOD_PARAMS, function.__func__
    elif kind is FunctionType:
        cache, key = _FUNCTION_PARAMS, function
    else:
        return _inspect_params(function)
    params = cache.get(key)
    if params is None:
        params = _inspect_params(function)
        if len(cache) >= _PARAMS_MAX:
            cache.clear()
        cache[key] = params
    return params


def _build_arg_mapping(
    atom_name: str | None,
    reqs: Any,
    rebind_args: Any,
    function: Callable,
    do_infer: bool,
    ignore_list: Iterable[str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Maps ``function``'s arguments to storage names.

    Returns ``(required, optional)``: dicts (insertion-ordered) of argument name -> storage name; no
    argument is in both.
    """
    params = _callable_params(function)
    if ignore_list:
        ignore = frozenset(ignore_list)
        req_args: Sequence[str] = [a for a in params.required if a not in ignore]
        every = [a for a in params.every if a not in ignore]
    else:
        req_args, every = params.required, params.every

    required: dict[str, str] = dict(zip(req_args, req_args, strict=True)) if do_infer and req_args else {}
    if reqs:
        if isinstance(reqs, str):
            required[reqs] = reqs
        else:
            names = reqs if type(reqs) is list or type(reqs) is tuple else list(reqs)
            required.update(zip(names, names, strict=True))
    if rebind_args is not None:
        required.update(_build_rebind_dict(req_args, rebind_args))

    optional: dict[str, str] = {}
    if do_infer and len(every) > len(req_args):  # (only then has it parameters with defaults)
        optional = {a: a for a in every if a not in required}

    if required and not params.accepts_kwargs:
        extra = [a for a in required if a not in params.every]
        if extra:
            raise ValueError(f"Extra arguments given to atom {atom_name}: {extra}")
    if req_args:
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


# Atoms built alike get equal mappings, so they are computed once and shared (they are read-only):
# ``provides`` -> (save_as, provides), and the execute/revert functions plus the other mapping arguments
# -> (rebind, optional, revert_rebind, revert_optional, requires, simple). Keys hold the arguments in a
# hashable form. Bounded (emptied when full) so that atoms with distinct arguments, or short-lived
# classes, cannot make them grow without end.
#
# ``simple``: no optional argument, nothing injected, and revert maps as execute does. Then the names
# lowering gives the Rust compiler (spec_names) are all in ``requires``: it reads that one set instead
# of walking the mappings (see ferroflow._lower).
_SpecNames = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_ResultMappings = tuple[FrozenOrderedDict, OrderedSet]
_ArgMappings = tuple[FrozenOrderedDict, OrderedSet, FrozenOrderedDict, OrderedSet, OrderedSet, bool]
_RESULT_MAPPINGS: dict[Any, _ResultMappings] = {}
_ARG_MAPPINGS: dict[tuple, _ArgMappings] = {}
_CACHE_MAX = 4096
_UNCACHEABLE = object()


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a mapping argument that determines how it is read (by type and items, in
    iteration order); ``_UNCACHEABLE`` for kinds that could be read differently twice (iterators, …)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value
    if kind is list or kind is tuple:
        return (list, *value)  # lists and tuples are read alike everywhere
    if kind is dict:
        return (dict, *value.items())
    if kind is set or kind is frozenset or kind is OrderedSet:
        return (kind, *value)
    return _UNCACHEABLE


def _cache_get(cache: dict, key: Any) -> Any:
    """``cache[key]``; ``None`` if absent or if ``key`` cannot be hashed."""
    try:
        return cache.get(key)
    except TypeError:  # an unhashable item
        return None


def _cache_put(cache: dict, key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    try:
        cache[key] = value
    except TypeError:  # an unhashable item
        pass


def _result_mappings(provides: Any) -> _ResultMappings:
    """``(save_as, provides)`` for the ``provides`` argument (shared between atoms)."""
    key = _freeze(provides)
    found = None if key is _UNCACHEABLE else _cache_get(_RESULT_MAPPINGS, key)
    if found is None:
        save_as = _save_as_to_mapping(provides)
        found = (save_as, _ordered_set(save_as))
        if key is not _UNCACHEABLE:
            _cache_put(_RESULT_MAPPINGS, key, found)
    return found


def _arg_mappings_key(
    atom: Atom,
    requires: Any,
    auto_extract: Any,
    rebind: Any,
    inject: Mapping[str, Any] | None,
    ignore_list: list[str] | None,
    revert_rebind: Any,
    revert_requires: Any,
) -> tuple | None:
    """The cache key of an atom's argument mappings, or ``None`` when they cannot be shared."""
    if type(atom)._build_arg_mapping is not Atom._build_arg_mapping:
        return None
    execute, revert = atom.execute, atom.revert
    if type(execute) is not MethodType or type(revert) is not MethodType:
        return None
    execute, revert = execute.__func__, revert.__func__
    if type(execute) is not FunctionType or type(revert) is not FunctionType:
        return None
    if rebind is None and not inject and ignore_list is None and revert_rebind is None and revert_requires is None:
        # The common case, in a shorter key (keys of different lengths never match).
        key: tuple = (execute, revert, _freeze(requires), auto_extract)
    else:
        key = (
            execute,
            revert,
            _freeze(requires),
            auto_extract,
            _freeze(rebind),
            frozenset(inject) if inject else None,
            _freeze(ignore_list),
            _freeze(revert_rebind),
            _freeze(revert_requires),
        )
    return None if _UNCACHEABLE in key else key


def _arg_mappings(
    atom: Atom,
    requires: Any,
    auto_extract: Any,
    rebind: Any,
    inject: Mapping[str, Any] | None,
    ignore_list: list[str] | None,
    revert_rebind: Any,
    revert_requires: Any,
) -> _ArgMappings:
    """``(rebind, optional, revert_rebind, revert_optional, requires, simple)`` of an atom, shared with
    the atoms built alike before it when possible (``simple``: see ``_ArgMappings``)."""
    key = _arg_mappings_key(atom, requires, auto_extract, rebind, inject, ignore_list, revert_rebind, revert_requires)
    if key is not None:
        found = _cache_get(_ARG_MAPPINGS, key)
        if found is not None:
            return found
    computed = _compute_arg_mappings(atom, requires, auto_extract, rebind, ignore_list, revert_rebind, revert_requires)
    rebind_, optional, revert_rebind_, revert_optional, requires_ = computed
    simple = not inject and not optional and revert_rebind_ is rebind_ and revert_optional is optional
    if simple and type(atom)._build_arg_mapping is not Atom._build_arg_mapping:
        # (the default mapping makes requires the rebind's storage names, without repeats; check others)
        simple = tuple(requires_) == tuple(dict.fromkeys(rebind_.values()))
    mappings = (*computed, simple)
    if key is not None:
        _cache_put(_ARG_MAPPINGS, key, mappings)
    return mappings


# -- the per-class plan: what an atom's mappings depend on that only its class decides --------------
#
# Building an atom with the common arguments (``requires`` None, a str, a list or tuple of names;
# ``provides`` None or a str; no ``rebind``/``inject``/``ignore_list``/``revert_*``; ``auto_extract``)
# needs only its class's execute/revert signatures, which `_ClassPlan` holds, computed once per class.
# The mappings are then made directly (every argument maps to itself), as `_compute_arg_mappings`
# would make them; atoms with other arguments, or whose class overrides ``_build_arg_mapping``, take
# that general path.


class _Side(NamedTuple):
    """One function's parameters as the fast path reads them."""

    required: tuple[str, ...]  #: parameters without a default (ignored ones left out)
    defaults: tuple[str, ...]  #: parameters with a default, in order (ignored ones left out)
    every: tuple[str, ...]  #: all named parameters (for the "extra arguments" check, as the general path)
    accepts_kwargs: bool


def _side(params: _Params, ignore: Collection[str] = ()) -> _Side:
    required = tuple(a for a in params.required if a not in ignore)
    defaults = tuple(a for a in params.every if a not in ignore and a not in params.required)
    return _Side(required, defaults, params.every, params.accepts_kwargs)


class _ClassPlan:
    """What the mappings of a class's atoms (or of functor tasks of the same functions) depend on
    besides their arguments (see above)."""

    __slots__ = (
        "default_args",
        "execute",
        "fast",
        "names_only",
        "revert",
        "revert_side",
        "same_revert",
        "side",
        "strict",
        "strict_sides",
    )

    def __init__(self, execute: Any, revert: Any, fast: bool) -> None:
        self.execute, self.revert = execute, revert
        self.default_args: _ArgMappings | None = None  # (``requires`` None: made by the general path)
        self.fast = fast
        self.names_only = False

    @classmethod
    def of_class(cls, atom_class: type, instance: Atom) -> _ClassPlan:
        plan = cls(atom_class.execute, atom_class.revert, False)
        execute, revert = instance.execute, instance.revert
        plan.fast = (
            atom_class._build_arg_mapping is Atom._build_arg_mapping
            and type(execute) is MethodType
            and type(revert) is MethodType
            and type(execute.__func__) is FunctionType
            and type(revert.__func__) is FunctionType
            # (a class that sets one of the mapping attributes itself reads it, as before: no lazy path)
            and all(isinstance(getattr(atom_class, attr, None), _LazyMappings) for attr in _MAPPING_ATTRS)
        )
        if plan.fast:
            same_revert = _same_revert_mapping(instance, [], execute, revert)
            revert_params = None if same_revert else _callable_params(revert)
            plan._sides(_callable_params(execute), revert_params)
        return plan

    def _sides(self, params: _Params, revert_params: _Params | None) -> None:
        """``revert_params`` None: revert maps as execute does."""
        self.side = _side(params)
        self.same_revert = revert_params is None
        self.revert_side = self.side if revert_params is None else _side(revert_params, _DEFAULT_REVERT_ARGS)
        sides = (self.side,) if self.same_revert else (self.side, self.revert_side)
        strict = [side.every for side in sides if not side.accepts_kwargs]
        self.strict = frozenset(strict[0]).intersection(*strict[1:]) if strict else None
        #: ``(how many required parameters, every parameter)`` of the functions without ``**kwargs``.
        self.strict_sides = [(len(side.required), frozenset(side.every)) for side in sides if not side.accepts_kwargs]
        #: The mappings are the ``requires`` names alone: revert maps as execute, which takes
        #: ``**kwargs`` and no named parameter.
        side = self.side
        self.names_only = self.same_revert and side.accepts_kwargs and not side.every

    def accepts_rebind(self, rebind: tuple) -> bool:
        """Whether ``rebind`` (see `rebind_spec`) maps only parameters of the functions without
        ``**kwargs`` (list items beyond the required parameters are bound 1:1), to hashable names."""
        kind, items = rebind
        try:
            if kind is dict:
                for _arg, name in items:
                    hash(name)
                args: Any = [arg for arg, _name in items]
            else:
                for name in items:
                    hash(name)
                args = None
            for required, every in self.strict_sides:
                for arg in args if args is not None else items[required:]:
                    if arg not in every:
                        return False
        except TypeError:
            return False
        return True

    def accepts(self, names: tuple) -> bool:
        """Whether atoms built with ``requires=names`` get their mappings from this plan without error
        (every name hashable and, where the functions take no ``**kwargs``, a parameter of both);
        otherwise the general path makes them, and raises what it raises."""
        strict = self.strict
        try:
            if strict is None:
                for name in names:
                    hash(name)
            else:
                for name in names:
                    if name not in strict:
                        return False
        except TypeError:
            return False
        return True


_CLASS_PLANS: dict[type, _ClassPlan] = {}
_FUNCTION_PLANS: dict[tuple, _ClassPlan] = {}
#: ``(plan, *requires names)`` -> the mappings (shared by the atoms built alike, as `_ARG_MAPPINGS`).
_FAST_ARGS: dict[tuple, _ArgMappings] = {}


def _class_plan(atom: Atom) -> _ClassPlan:
    cls = type(atom)
    plan = _CLASS_PLANS.get(cls)
    if plan is None or plan.execute is not cls.execute or plan.revert is not cls.revert:
        plan = _ClassPlan.of_class(cls, atom)
        if len(_CLASS_PLANS) >= _CACHE_MAX:
            _CLASS_PLANS.clear()
        _CLASS_PLANS[cls] = plan
    return plan


def _plain_function(function: Any) -> bool:
    kind = type(function)
    return kind is FunctionType or (kind is MethodType and type(function.__func__) is FunctionType)


def functions_plan(execute: Callable, revert: Callable | None) -> _ClassPlan | None:
    """The plan of functor tasks of ``execute`` and ``revert`` (``None`` when they are not plain
    functions or methods): ``revert`` maps the same ``requires`` with its own parameters, ignoring
    ``result`` and ``flow_failures``; no ``revert`` maps as ``execute``."""
    key = (execute, revert)
    try:
        plan = _FUNCTION_PLANS.get(key)
    except TypeError:
        return None
    if plan is None:
        if not _plain_function(execute) or (revert is not None and not _plain_function(revert)):
            return None
        plan = _ClassPlan(execute, revert, True)
        plan._sides(_callable_params(execute), None if revert is None else _callable_params(revert))
        if len(_FUNCTION_PLANS) >= _CACHE_MAX:
            _FUNCTION_PLANS.clear()
        _FUNCTION_PLANS[key] = plan
    return plan


def _identity_mapping(keys: Iterable[str], more: Iterable[str] = ()) -> FrozenOrderedDict:
    """``{k: k}`` for ``keys`` then ``more``, read-only."""
    frozen = FrozenOrderedDict.__new__(FrozenOrderedDict)
    for key in keys:
        _od_setitem(frozen, key, key)
    for key in more:
        _od_setitem(frozen, key, key)
    return frozen


def _set_of_keys(keys: dict[str, None]) -> OrderedSet:
    """An OrderedSet holding ``keys`` (a ``dict.fromkeys``, taken as is)."""
    if not keys:
        return _EMPTY_SET
    made = OrderedSet.__new__(OrderedSet)
    made._data = keys
    return made


def _fast_side(
    side: _Side, names: Sequence[str], atom_name: Any, rebind: tuple | None = None
) -> tuple[FrozenOrderedDict, OrderedSet, OrderedSet]:
    """``(rebind, requires, optional)`` of one function for ``names`` (``requires``) and ``rebind``
    (see `rebind_spec`): what `_build_arg_mapping` and `Atom._build_arg_mapping` give then."""
    if rebind is not None:
        return _fast_side_rebound(side, names, atom_name, rebind)
    if side.required:
        keys = dict.fromkeys(side.required)
        if names:
            keys.update(dict.fromkeys(names))
    else:
        keys = dict.fromkeys(names)
    if keys and not side.accepts_kwargs:
        every = side.every
        extra = [a for a in keys if a not in every]
        if extra:
            raise ValueError(f"Extra arguments given to atom {atom_name}: {extra}")
    optional = [a for a in side.defaults if a not in keys] if side.defaults else ()
    if not keys and not optional:
        return _EMPTY_MAPPING, _EMPTY_SET, _EMPTY_SET
    return _identity_mapping(keys, optional), _set_of_keys(keys), _ordered_set(optional)


def _fast_side_rebound(
    side: _Side, names: Sequence[str], atom_name: Any, rebind: tuple
) -> tuple[FrozenOrderedDict, OrderedSet, OrderedSet]:
    required: dict[str, str] = {arg: arg for arg in side.required}
    for name in names:
        required[name] = name
    kind, items = rebind
    if kind is dict:
        required.update(items)
    else:  # (a list: by position against the required parameters, the rest 1:1)
        required.update(zip(side.required, items, strict=False))
        for arg in items[len(side.required) :]:
            required[arg] = arg
    if required and not side.accepts_kwargs:
        every = side.every
        extra = [a for a in required if a not in every]
        if extra:
            raise ValueError(f"Extra arguments given to atom {atom_name}: {extra}")
    optional = [a for a in side.defaults if a not in required] if side.defaults else ()
    if not required and not optional:
        return _EMPTY_MAPPING, _EMPTY_SET, _EMPTY_SET
    mapping = FrozenOrderedDict.__new__(FrozenOrderedDict)
    for arg, name in required.items():
        _od_setitem(mapping, arg, name)
    for arg in optional:
        _od_setitem(mapping, arg, arg)
    return mapping, _ordered_set(required.values()), _ordered_set(optional)


def rebind_spec(rebind: Any) -> tuple | None:
    """``rebind`` in the hashable form the fast path keys on: ``(dict, ((arg, name), ...))`` or
    ``(list, (name, ...))``; ``None`` for other kinds (the general path reads those)."""
    kind = type(rebind)
    if kind is dict:
        return dict, tuple(rebind.items())
    if kind is list or kind is tuple:
        return list, tuple(rebind)
    return None


#: Marks the cache keys of atoms built with a ``rebind`` (see `_fast_args`).
_REBOUND = object()


def _str_result_mappings(provides: str) -> _ResultMappings:
    """`_result_mappings` of a ``str`` ``provides``."""
    save_as = FrozenOrderedDict.__new__(FrozenOrderedDict)
    _od_setitem(save_as, provides, None)
    found = (save_as, _set_of_keys({provides: None}))
    _cache_put(_RESULT_MAPPINGS, provides, found)
    return found


def _fast_args(
    plan: _ClassPlan, requires: str | list | tuple, atom_name: Any, rebind: tuple | None = None
) -> _ArgMappings | None:
    """The shared mappings of an atom of ``plan`` built with ``requires`` (a str, list or tuple),
    ``rebind`` (see `rebind_spec`) and the defaults; ``None`` when an item cannot be hashed (the
    general path then reports it)."""
    if rebind is not None:
        key: tuple = (plan, _REBOUND, rebind, *requires)
    else:
        key = (plan, requires) if type(requires) is str else (plan, *requires)
    try:
        found = _FAST_ARGS.get(key)
    except TypeError:
        return None
    if found is None:
        names = (requires,) if type(requires) is str else requires
        found = _fast_arg_mappings(plan, names, atom_name, rebind)
        if len(_FAST_ARGS) >= _CACHE_MAX:
            _FAST_ARGS.clear()
        _FAST_ARGS[key] = found
    return found


def _fast_arg_mappings(
    plan: _ClassPlan, names: Sequence[str], atom_name: Any, rebind_: tuple | None = None
) -> _ArgMappings:
    """`_arg_mappings` for an atom of a fast plan built with ``requires=names``, ``rebind`` (see
    `rebind_spec`) and the defaults."""
    if plan.names_only and names and rebind_ is None:
        # (the common case, inlined: every argument is one of the names, nothing optional)
        keys = dict.fromkeys(names)
        rebind = FrozenOrderedDict.__new__(FrozenOrderedDict)
        for key in keys:
            _od_setitem(rebind, key, key)
        requires = OrderedSet.__new__(OrderedSet)
        requires._data = keys
        return rebind, _EMPTY_SET, rebind, _EMPTY_SET, requires, True
    rebind, requires, optional = _fast_side(plan.side, names, atom_name, rebind_)
    if plan.same_revert:
        return rebind, optional, rebind, optional, requires, not optional
    revert_rebind, revert_requires, revert_optional = _fast_side(plan.revert_side, names, atom_name, rebind_)
    if revert_rebind == rebind:  # (OrderedDict equality is order-sensitive)
        revert_rebind = rebind
    if revert_optional is not optional and tuple(revert_optional) == tuple(optional):
        revert_optional = optional
    if not all(name in requires for name in revert_requires):
        requires = requires.union(revert_requires)
    simple = not optional and revert_rebind is rebind and revert_optional is optional
    return rebind, optional, revert_rebind, revert_optional, requires, simple


def split_args(
    rebind: Mapping[str, str], optional: Collection[str], inject: Mapping[str, Any] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Storage names of the required and optional arguments of ``rebind``, injected ones left out,
    without repeats."""
    if not optional and not inject:  # the common case, done in C
        return tuple(dict.fromkeys(rebind.values())), ()
    required: list[str] = []
    maybe: list[str] = []
    for arg, name in rebind.items():
        if inject and name in inject:
            continue
        # Optional arguments are never rebound, so the argument name is also the name in ``optional``.
        bucket = maybe if arg in optional else required
        if name not in bucket:
            bucket.append(name)
    return tuple(required), tuple(maybe)


def spec_names(
    rebind: Mapping[str, str],
    optional: Collection[str],
    revert_rebind: Mapping[str, str],
    revert_optional: Collection[str],
    inject: Mapping[str, Any] | None,
) -> _SpecNames:
    """The storage names lowering gives the Rust compiler: ``(requires, optional, revert_requires,
    revert_optional)`` (see :mod:`ferroflow._lower`)."""
    requires, maybe = split_args(rebind, optional, inject)
    if revert_rebind is rebind and revert_optional is optional:
        return requires, maybe, requires, maybe
    return (requires, maybe, *split_args(revert_rebind, revert_optional, inject))


def _same_revert_mapping(atom: Atom, ignore_list: list[str], execute: Callable, revert: Callable) -> bool:
    """Whether ``revert`` gets the mapping ``execute`` gets when given the same requires/rebind: equal
    parameters, none of them ignored (``ignore_list`` or the revert-only arguments)."""
    if type(atom)._build_arg_mapping is not Atom._build_arg_mapping:
        return False
    params = _callable_params(execute)
    if params != _callable_params(revert):
        return False
    every = params.every
    return not every or not any(name in every for name in (*ignore_list, *_DEFAULT_REVERT_ARGS))


def _compute_arg_mappings(
    atom: Atom,
    requires: Any,
    auto_extract: Any,
    rebind: Any,
    ignore_list: list[str] | None,
    revert_rebind: Any,
    revert_requires: Any,
) -> _ArgMappings:
    if ignore_list is None:
        ignore_list = []
    execute, revert = atom.execute, atom.revert
    exec_rebind, exec_requires, optional = atom._build_arg_mapping(
        execute, requires=requires, rebind=rebind, auto_extract=auto_extract, ignore_list=ignore_list
    )
    revert_requires = revert_requires or requires
    revert_rebind = revert_rebind or rebind
    if (
        revert_requires is requires
        and revert_rebind is rebind
        and _same_revert_mapping(atom, ignore_list, execute, revert)
    ):
        return exec_rebind, optional, exec_rebind, optional, exec_requires
    revert_rebind_, revert_only_requires, revert_optional = atom._build_arg_mapping(
        revert,
        requires=revert_requires,
        rebind=revert_rebind,
        auto_extract=auto_extract,
        ignore_list=[*ignore_list, *_DEFAULT_REVERT_ARGS],
    )
    # Revert mappings equal (in order) to the execute ones are the execute ones.
    if revert_rebind_ == exec_rebind:  # (OrderedDict equality is order-sensitive)
        revert_rebind_ = exec_rebind
    if revert_optional is not optional and tuple(revert_optional) == tuple(optional):
        revert_optional = optional
    if all(name in exec_requires for name in revert_only_requires):
        all_requires = exec_requires
    else:
        all_requires = exec_requires.union(revert_only_requires)
    return exec_rebind, optional, revert_rebind_, revert_optional, all_requires


def _new_keeping_arguments(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``__new__`` of the atom classes that override ``revert``: keeps the constructor arguments."""
    self = object.__new__(cls)
    self._constructor_arguments = (args, kwargs)
    return self


_MAPPING_ATTRS = ("save_as", "provides", "rebind", "optional", "revert_rebind", "revert_optional", "requires")


_RESULT_ATTRS = frozenset(("save_as", "provides"))
_ARG_ATTRS = ("rebind", "optional", "revert_rebind", "revert_optional", "requires")
_ARG_INDEX = {name: index for index, name in enumerate(_ARG_ATTRS)}
_LAZY_KEYS = ("_lazy_args", "_lazy_provides")


def _make_mapping(atom: Atom, attr: str) -> None:
    """Makes mapping attribute ``attr`` of an atom built with the common arguments (from
    ``atom._lazy_provides`` or ``atom._lazy_args``), and only it: an engine reads ``rebind`` and
    ``save_as``, and the other mappings cost nothing until read. The argument mappings are taken
    from one tuple (``_shared_args``, made with the first of them), so they are shared, as the
    constructor shares them."""
    state = atom.__dict__
    if attr in _RESULT_ATTRS:
        provides = state.get("_lazy_provides")
        if provides is not None:
            found = _RESULT_MAPPINGS.get(provides)
            if found is None:
                found = _str_result_mappings(provides)
            state[attr] = found[0] if attr == "save_as" else found[1]
        if attr == "save_as" and "rebind" not in state and state.get("_lazy_args") is not None:
            # An engine reads save_as when it compiles and rebind when it runs: rebind is made
            # with save_as, so that running makes nothing.
            _make_mapping(atom, "rebind")
        return
    lazy = state.get("_lazy_args")
    if lazy is None:
        return
    args = state.get("_shared_args")
    if args is None:
        plan, names, rebind = lazy
        args = _fast_args(plan, names, state.get("name"), rebind)
        assert args is not None  # (hashable: checked by the constructor)
        state["_shared_args"] = args
    if attr != "_shared_args":
        state[attr] = args[_ARG_INDEX[attr]]


def _make_all_mappings(atom: Atom) -> dict[str, Any]:
    """Makes every mapping attribute not made (nor assigned) yet; returns the atom's state without
    what it was built from (as a constructor that made them would have left it)."""
    state = atom.__dict__
    for attr in _MAPPING_ATTRS:
        if attr not in state:
            _make_mapping(atom, attr)
    return {key: value for key, value in state.items() if key not in _LAZY_KEYS}


def lazy_arg_names(atom: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """``(requires, optional)`` storage names of an atom whose argument mappings are not made yet
    (built with the common arguments, none of them read or assigned since, nothing injected), when
    its revert maps as its execute: what lowering needs, without making the mappings. ``None``
    otherwise (read the attributes)."""
    state = getattr(atom, "__dict__", None)
    lazy = state.get("_lazy_args") if state is not None else None
    if lazy is None or state.get("inject"):
        return None
    plan, names, rebind = lazy
    if rebind is not None or not plan.same_revert or any(attr in state for attr in _ARG_ATTRS):
        return None
    side = plan.side
    keys = dict.fromkeys(side.required) if side.required else {}
    keys.update(dict.fromkeys(names))
    optional = tuple(a for a in side.defaults if a not in keys) if side.defaults else ()
    return tuple(keys), optional


def identity_arg_names(atom: Any) -> tuple[str, ...] | None:
    """The argument names of an atom whose argument mappings are not made yet and map each argument
    to the storage name it has (built with ``requires`` alone, for functions taking ``**kwargs`` and
    no named parameter, revert mapping as execute; nothing injected, rebound or optional, none of
    the mappings read or assigned since): what an engine needs to fetch its arguments, without
    making the mappings, which would then stay on the atom. ``None`` otherwise (read the
    attributes)."""
    state = getattr(atom, "__dict__", None)
    lazy = state.get("_lazy_args") if state is not None else None
    if lazy is None or state.get("inject"):
        return None
    plan, names, rebind = lazy
    if rebind is not None or not plan.names_only or not state.keys().isdisjoint(_ARG_ATTRS):
        return None
    if not names:
        return None if type(names) is str else ()  # (built with ``requires=[]``: no argument)
    # (the keys `_fast_arg_mappings` gives the rebind: the names, without repeats)
    return (names,) if type(names) is str else tuple(dict.fromkeys(names))


def provided_names(node: Any) -> tuple[str, ...]:
    """``tuple(node.provides)``, without making the mappings of an atom that has not made them."""
    state = getattr(node, "__dict__", None)
    if state is not None:
        provides = state.get("_lazy_provides")
        if provides is not None and "provides" not in state:
            return (provides,)
    return tuple(node.provides)


def required_names(node: Any) -> tuple[str, ...]:
    """``tuple(node.requires)``, without making the mappings of an atom that has not made them."""
    lazy = lazy_arg_names(node)
    return lazy[0] if lazy is not None else tuple(node.requires)


class _LazyMappings:
    """An atom's mapping attribute (``rebind``, ``requires``, …), made on first read.

    Atoms built with the common arguments (see `_ClassPlan`) keep only those (``_lazy_provides``,
    ``_lazy_args``) until one of their mappings is read: then it is made, as the constructor would
    have made it, and stored on the atom, where later reads find it directly. Assigning the
    attribute stores the new value on that atom only (this is not a data descriptor).
    """

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, atom: Any, owner: type | None = None) -> Any:
        if atom is None:
            return self
        _make_mapping(atom, self.name)
        try:
            return atom.__dict__[self.name]
        except KeyError:
            if self.name == "_shared_args":
                return None
            raise AttributeError(f"{type(atom).__name__!r} object has no attribute {self.name!r}") from None


def requires_names(requires: Any) -> tuple | None:
    """``requires`` as a tuple of names when it is None, a str, a list or a tuple; else ``None``."""
    if requires is None:
        return ()
    kind = type(requires)
    if kind is str:
        return (requires,)
    if kind is tuple:
        return requires
    if kind is list:
        return tuple(requires)  # (a copy: the caller may change the list)
    return None


def _init_atom(
    atom: Atom,
    name: Any,
    provides: Any,
    requires: Any,
    auto_extract: Any,
    rebind: Any,
    inject: Any,
    ignore_list: Any,
    revert_rebind: Any,
    revert_requires: Any,
    on_version_change: Any,
    plan: _ClassPlan | None = None,
) -> bool:
    """`Atom.__init__`; ``plan``: the mappings come from it (a functor task's, see `functions_plan`).
    Returns whether the mappings were made (from ``plan`` or the class's), ``False`` when ``plan``
    was given but the arguments need the general path (the caller makes them)."""
    if provides is None:
        provides = atom.default_provides
    atom.name = name
    if on_version_change is not None:
        atom.on_version_change = on_version_change
    atom.inject = inject
    lazy_provides = None
    own_plan = plan is not None
    if provides is None:
        atom.save_as, atom.provides = _EMPTY_MAPPING, _EMPTY_SET
    elif type(provides) is str:
        lazy_provides = provides
    else:
        atom.save_as, atom.provides = _result_mappings(provides)
    rebound = None
    if rebind is not None:
        rebound = rebind_spec(rebind)
    if (
        (rebind is None or rebound is not None)
        and not inject
        and not ignore_list
        and revert_rebind is None
        and revert_requires is None
        and auto_extract
    ):
        if plan is None:
            cls = type(atom)
            plan = _CLASS_PLANS.get(cls)
            if plan is None or plan.execute is not cls.execute or plan.revert is not cls.revert:
                plan = _class_plan(atom)
        if plan.fast and (rebound is None or plan.accepts_rebind(rebound)):
            if requires is None and rebound is None:
                args = plan.default_args
                if args is None:
                    if own_plan:
                        args = _fast_arg_mappings(plan, (), name)
                    else:
                        args = _arg_mappings(atom, None, True, None, None, None, None, None)
                    plan.default_args = args
                if lazy_provides is not None:
                    atom._lazy_provides = lazy_provides
                atom._set_mappings(args)
                return True
            names = requires_names(requires)
            if names is not None and plan.accepts(names):
                if lazy_provides is not None:
                    atom._lazy_provides = lazy_provides
                atom._lazy_args = (plan, names, rebound)
                return True
    if lazy_provides is not None:
        atom.save_as, atom.provides = _result_mappings(lazy_provides)
    if own_plan:
        return False
    args = _arg_mappings(atom, requires, auto_extract, rebind, inject, ignore_list, revert_rebind, revert_requires)
    atom._set_mappings(args)
    return True


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

    :ivar version: the class attribute :attr:`version` (``(1, 0)`` unless a subclass sets another)
        unless changed on the instance; persisted as ``"1.0"`` (:func:`get_version_string`).
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

    The mappings (``save_as``, ``rebind``, ``revert_rebind``) are read-only
    :class:`FrozenOrderedDict` s and the sets are (immutable) OrderedSets, because atoms share them:
    atoms of one class built with equal mapping arguments (``provides``, ``requires``, ``rebind``, …,
    the names of ``inject``) get the very same objects, an empty one is a shared singleton, and
    ``revert_rebind``/``revert_optional`` are ``rebind``/``optional`` when they are equal. Assigning
    new objects to these attributes is fine (the engine reads them when it compiles and runs).
    """

    #: Among atoms ready at the same time, higher priorities are scheduled first.
    priority = 0
    #: The version of the atom's code (a tuple, string or number), saved with its result; a
    #: subclass versions its code by setting it (``version = (2, 0)``), and an instance may set its
    #: own. Read from the class until an instance sets one: building an atom costs nothing for it.
    #: See :attr:`on_version_change` for what resuming does when it changed.
    version: Any = (1, 0)
    #: ``provides`` used when none is given to the constructor.
    default_provides: Any = None
    #: What resuming does when this atom completed under another :attr:`version` (ferroflow):
    #: ``"reuse"``, ``"rerun"``, ``"revert_then_rerun"``, ``"fail"``, or a callable
    #: ``migrate(old_version, old_result) -> new_result``; ``None`` defers to the engine's
    #: ``on_version_change`` option (see :mod:`ferroflow.migrations`). Settable per class too.
    on_version_change: Any = None
    #: ``(args, kwargs)`` this atom was constructed with (only atoms that override ``revert``).
    _constructor_arguments: tuple[tuple[Any, ...], dict[str, Any]]

    # The mapping attributes are set by the constructor, or (common arguments, see `_LazyMappings`)
    # made on first read.
    save_as = _LazyMappings()
    provides = _LazyMappings()
    rebind = _LazyMappings()
    optional = _LazyMappings()
    revert_rebind = _LazyMappings()
    revert_optional = _LazyMappings()
    requires = _LazyMappings()
    #: The shared tuple the constructor assigned the argument mappings from (see ``_arg_mappings``);
    #: lowering uses it while the attributes are still those (``None`` if the constructor did not run).
    _shared_args = _LazyMappings()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The constructor arguments of an atom that can undo something are kept so that, once
        # its code is removed from its flow, a saved detail can still rebuild it to revert it
        # (see ferroflow.engines.revert_refs). Only those classes pay for a __new__.
        # (``_arguments_unused``, set in a class's own body: its references are never made, see
        # revert_refs: ferroflow's own classes, which a reference may not name)
        if (
            cls.revert is not Atom.revert
            and "__new__" not in cls.__dict__
            and cls.__new__ is object.__new__
            and not cls.__dict__.get("_arguments_unused")
        ):
            cls.__new__ = staticmethod(_new_keeping_arguments)  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        # (pickled and copied with its mappings made: a copy never depends on the class plan cache)
        state = self.__dict__
        if state.get("_lazy_args") is not None or state.get("_lazy_provides") is not None:
            return _make_all_mappings(self)
        return state

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
        _init_atom(
            self,
            name,
            provides,
            requires,
            auto_extract,
            rebind,
            inject,
            ignore_list,
            revert_rebind,
            revert_requires,
            on_version_change,
        )

    def _set_mappings(self, args: _ArgMappings) -> None:
        self._shared_args = args
        (
            self.rebind,
            self.optional,
            self.revert_rebind,
            self.revert_optional,
            #: OrderedSet of storage names needed by ``execute`` or ``revert`` (injected ones removed).
            self.requires,
            _,
        ) = args

    def _build_arg_mapping(
        self,
        executor: Callable,
        requires: Any = None,
        rebind: Any = None,
        auto_extract: bool = True,
        ignore_list: list[str] | None = None,
    ) -> tuple[FrozenOrderedDict, OrderedSet, OrderedSet]:
        """Returns ``(rebind, requires, optional)`` for ``executor`` (see the class docstring)."""
        required, optional = _build_arg_mapping(
            self.name, requires, rebind, executor, auto_extract, ignore_list=ignore_list
        )
        # (no argument is both required and optional)
        arg_to_storage = {**required, **optional} if optional else required
        needed: Collection[str] = required.values()
        maybe: Collection[str] = optional.values()
        inject = self.inject
        if inject:
            needed = [name for name in needed if name not in inject]
            maybe = [name for name in maybe if name not in inject]
        return _frozen_mapping(arg_to_storage), _ordered_set(needed), _ordered_set(maybe)

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
