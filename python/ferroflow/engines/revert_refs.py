"""Revert references: how to revert an atom whose code was removed from its flow (an *orphan*).

When an atom completes, its detail records (in its resume record, see below) enough to revert it
later without the flow that ran it:

- ``{"kind": "noop"}`` — its ``revert`` does nothing (not overridden, or a functor task without a
  revert function);
- ``{"kind": "class", "name": "pkg.mod.MyTask", "args": [...], "kwargs": {...},
  "revert_kwargs": {...}}`` — the atom's importable class, the arguments it was constructed with
  (callables among them saved by importable name) and the arguments its ``revert`` got from
  storage when it completed (``result`` and ``flow_failures`` are supplied at revert time);
- ``{"kind": "unavailable", "why": "..."}`` — what made a reference impossible (a class defined in
  a function, arguments that cannot be saved...).

The reference is part of the detail's *resume record* (`encode_record`), kept beside the detail
rather than in its meta, by every built-in backend: the SQLite store in a column of the detail's
row, ``dir://`` and ``memory://`` in the detail's record (a ``resume`` key beside TaskFlow's
``atom`` and ``type``). A detail saved without one (by TaskFlow, or by a backend that keeps
none) has no reference. `rebuild` makes the atom again from its reference, ready to revert;
anything that prevents it raises `ferroflow.migrations.OrphanRevertError` naming the orphan — a
rollback never silently skips an orphan.

A reference read back from the store names code, so its class and callable arguments are
resolved only through trust (`ferroflow.trust`): an Atom subclass (or a callable) defined in a
trusted module, never the standard library or builtins. `trust_for` gives an engine's trust: its
``trusted_modules`` option (or ``$FERROFLOW_TRUSTED_MODULES``), else the default — the package of
the flow's saved factory and those of the atoms it runs. An untrusted reference is an
`OrphanRevertError` carrying the `ferroflow.exceptions.UntrustedCode` reason.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from ferroflow import atom as atom_mod
from ferroflow import codec, exceptions, trust
from ferroflow.engines import actions
from ferroflow.migrations import OrphanRevertError
from ferroflow.trust import import_by_name

NOOP: dict[str, Any] = {"kind": "noop"}
_CALLABLE = "$callable"
_PLAIN = (str, int, float, bool, type(None))
#: Per atom class: ``(kind, name or why)`` (see `_describe_class`).
_CLASS_CACHE: dict[type, tuple[str, str]] = {}


def reference(engine: Any, index: int) -> dict[str, Any]:
    """The revert reference of compiled atom ``index`` of ``engine``, as it completes."""
    atom = engine.compilation.atoms[index]
    kind, text = _class_reference(atom)
    if kind == "noop":
        return NOOP
    if kind == "unavailable":
        return {"kind": "unavailable", "why": text}
    args, kwargs = getattr(atom, "_constructor_arguments", ((), {}))
    try:
        saved_args = [_encode(value) for value in args]
        saved_kwargs = {key: _encode(value) for key, value in kwargs.items()}
        revert_kwargs = {key: _encode(value) for key, value in engine._arguments(index, revert=True).items()}
    except (TypeError, ValueError) as exc:
        return {"kind": "unavailable", "why": str(exc)}
    except Exception as exc:  # revert arguments that storage cannot give (yet)
        return {"kind": "unavailable", "why": f"its revert arguments are not available: {exc}"}
    return {"kind": "class", "name": text, "args": saved_args, "kwargs": saved_kwargs, "revert_kwargs": revert_kwargs}


#: Separates the fields of a resume record (``rust/store``'s ``RESUME_FIELD_END``).
FIELD_END = "\x1d"
_NOOP_FIELDS = f"noop{FIELD_END}{FIELD_END}"


def encode_record(inputs: str, reference: dict[str, Any]) -> str:
    """A resume record: the input fingerprint, then the reference's kind, name and other fields
    (JSON). Short on purpose: it is written for every atom that completes."""
    if reference is NOOP:
        return f"{inputs}{FIELD_END}{_NOOP_FIELDS}"
    rest = {key: value for key, value in reference.items() if key not in ("kind", "name")}
    details = json.dumps(rest, separators=(",", ":"), ensure_ascii=False) if rest else ""
    return FIELD_END.join((inputs, reference.get("kind", ""), reference.get("name", ""), details))


def decode_record(text: str | None) -> dict[str, Any]:
    """``{"inputs": ..., "revert": reference}`` from a resume record (empty when there is none,
    or when it cannot be read)."""
    if not text:
        return {}
    fields = text.split(FIELD_END, 3)
    if len(fields) != 4:
        return {}
    inputs, kind, name, details = fields
    try:
        reference = {**(json.loads(details) if details else {}), "kind": kind}
    except ValueError:
        return {"inputs": inputs}
    if name:
        reference["name"] = name
    return {"inputs": inputs, "revert": reference}


def reverts_as_noop(atom: Any) -> bool:
    """Whether every atom of ``atom``'s class reverts as a no-op, so that its revert reference is
    `NOOP` whatever the instance (a functor task's depends on the instance: False)."""
    cls = type(atom)
    cached = _CLASS_CACHE.get(cls)
    if cached is None:
        cached = _CLASS_CACHE[cls] = _describe_class(cls)
    return cached[0] == "noop"


def _class_reference(atom: Any) -> tuple[str, str]:
    cls = type(atom)
    cached = _CLASS_CACHE.get(cls)
    if cached is None:
        cached = _CLASS_CACHE[cls] = _describe_class(cls)
    if cached[0] == "functor" and atom._revert is None:  # a functor task without a revert function
        return "noop", ""
    return ("class", cached[1]) if cached[0] == "functor" else cached


def _describe_class(cls: type) -> tuple[str, str]:
    """``(kind, name or why)``; kind ``functor`` is a functor task class (its instances decide)."""
    from ferroflow.retry import Retry
    from ferroflow.task import FunctorTask

    if getattr(cls, "revert", None) in (atom_mod.Atom.revert, Retry.revert):
        return "noop", ""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if "<" in cls.__qualname__ or cls.__module__ == "__main__":
        return "unavailable", f"class {name} cannot be imported by another process"
    if trust.is_ferroflow_internal(name, (*trust.FERROFLOW_FACTORY_MODULES, *trust.FERROFLOW_ATOM_MODULES)):
        return "unavailable", f"class {name} is part of ferroflow, which a revert reference may not name"
    try:
        imported = import_by_name(name)
    except ImportError as exc:
        return "unavailable", f"class {name} is not importable: {exc}"
    if imported is not cls:
        return "unavailable", f"{name} names another object than the atom's class"
    return ("functor" if issubclass(cls, FunctorTask) else "class"), name


def _encode(value: Any) -> Any:
    """``value`` as JSON-saveable data; importable callables become ``{"$callable": name}``."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        if _CALLABLE in value:
            raise TypeError(f"a dict with a {_CALLABLE!r} key cannot be saved in a revert reference")
        return {key: _encode(item) for key, item in value.items()}
    if callable(value) and (inspect.isfunction(value) or inspect.isbuiltin(value) or isinstance(value, type)):
        name = f"{value.__module__}.{value.__qualname__}"
        if trust.is_stdlib(name) and not (isinstance(value, type) and issubclass(value, BaseException)):
            raise TypeError(f"{name} is in the standard library or builtins, which a revert reference never imports")
        if trust.is_ferroflow_internal(name):
            raise TypeError(f"{name} is part of ferroflow, which a revert reference never imports")
        try:
            same = import_by_name(name) is value
        except ImportError:
            same = False
        if not same or "<" in value.__qualname__:
            raise TypeError(f"{value!r} cannot be imported back by name")
        return {_CALLABLE: name}
    codec.JSON.dumps(value)  # raises a TypeError naming the type when JSON cannot hold it
    return value


def _decode(value: Any, trusted: trust.TrustedModules, flow: str) -> Any:
    if isinstance(value, list):
        return [_decode(item, trusted, flow) for item in value]
    if isinstance(value, dict):
        if set(value) == {_CALLABLE}:
            return trust.resolve_callable(value[_CALLABLE], trusted, flow)
        return {key: _decode(item, trusted, flow) for key, item in value.items()}
    return value


def trust_for(engine: Any) -> trust.TrustedModules:
    """The trust ``engine`` resolves revert references with: its ``trusted_modules`` option,
    else ``$FERROFLOW_TRUSTED_MODULES``, else the default — the top-level package of the flow's
    saved factory and those of the atoms (classes and functor callables) of the flow it runs."""
    given = engine.options.get("trusted_modules")
    if isinstance(given, trust.TrustedModules):
        return given
    meta = getattr(getattr(engine, "_flow_detail", None), "meta", None)
    factory = meta.get("factory") if isinstance(meta, dict) else None
    saved = factory.get("name") if isinstance(factory, dict) else None
    code: set[str | None] = set()
    for atom in engine.compilation.atoms:
        code.add(type(atom).__module__)
        for attribute in ("_execute", "_revert"):
            code.add(getattr(getattr(atom, attribute, None), "__module__", None))
    return trust.trusted_from(given, saved_factory=saved, code_modules=sorted(name for name in code if name))


def resolve(
    name: str, ref: Any, trusted: trust.TrustedModules | None = None, flow: str = ""
) -> tuple[type, list[Any], dict[str, Any], dict[str, Any]] | None:
    """What the reference of orphan ``name`` names, resolved under trust but not called:
    ``(class, args, kwargs, revert_kwargs)``, or None when its revert does nothing. Importing
    trusted modules is all it runs (`rebuild` then constructs the atom); the plan uses it to tell
    an orphan a rollback cannot revert.

    :raises OrphanRevertError: as `rebuild`, for everything but a failing constructor.
    """
    if not isinstance(ref, dict):
        raise OrphanRevertError(
            name,
            "its detail has no revert reference (it completed before ferroflow recorded them, or under another engine)",
        )
    kind = ref.get("kind")
    if kind == "noop":
        return None
    if kind != "class":
        raise OrphanRevertError(name, f"no revert reference could be saved when it completed: {ref.get('why')}")
    if trusted is None:
        trusted = trust.trusted_from()
    try:
        cls = trust.resolve_atom_class(ref.get("name"), trusted, flow)
        args = _decode(ref.get("args", []), trusted, flow)
        kwargs = _decode(ref.get("kwargs", {}), trusted, flow)
        revert_kwargs = _decode(ref.get("revert_kwargs", {}), trusted, flow)
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not isinstance(revert_kwargs, dict):
            raise TypeError("its saved arguments are malformed")
    except (ImportError, TypeError, exceptions.UntrustedCode) as exc:
        raise OrphanRevertError(
            name, f"its revert reference {ref.get('name')!r} cannot be imported: {exc}", cause=exc
        ) from exc
    return cls, args, kwargs, revert_kwargs


def rebuild(
    name: str, ref: Any, trusted: trust.TrustedModules | None = None, flow: str = ""
) -> Callable[[Any, dict[str, Any]], tuple[bool, Any]]:
    """The revert of orphan ``name`` rebuilt from its reference: call it with the orphan's saved
    result and the flow's failures; it returns ``(ok, revert result or Failure)``.

    :param trusted: the modules the reference may name (`trust_for`); ``None``: only
        ``$FERROFLOW_TRUSTED_MODULES`` (and ferroflow's own atom classes).
    :param flow: the flow, for messages.
    :raises OrphanRevertError: no usable reference (missing, unavailable, class or arguments not
        trusted or no longer importable, constructor failing); an untrusted name is its cause
        (`ferroflow.exceptions.UntrustedCode`) and nothing of it is imported.
    """
    resolved = resolve(name, ref, trusted, flow)
    if resolved is None:
        return lambda result, flow_failures: (True, None)
    cls, args, kwargs, revert_kwargs = resolved
    try:
        atom = cls(*args, **kwargs)
    except Exception as exc:
        raise OrphanRevertError(
            name, f"{ref['name']} could not be rebuilt from its saved arguments: {exc}", cause=exc
        ) from exc
    from ferroflow.retry import History, Retry

    def revert(result: Any, flow_failures: dict[str, Any]) -> tuple[bool, Any]:
        if isinstance(atom, Retry):
            history = History([(value, dict(failures)) for value, failures in (result or [])])
            return actions.revert_retry(atom, revert_kwargs, history, flow_failures)
        return actions.revert_task(atom, revert_kwargs, result, flow_failures)

    return revert
