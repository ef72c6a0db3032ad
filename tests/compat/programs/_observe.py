"""Turn what an engine exposes into plain data that can be compared across implementations.

The compatibility programs import this module relatively. It deliberately imports neither TaskFlow
nor ferroflow: every class it needs (``Failure``, ``Flow``) is handed in by the program, which got it
from its own (possibly rewritten) imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def describe(value: Any, failure_cls: type) -> str:
    """A stable text form of a result: failures show type names and message, the rest their repr."""
    if isinstance(value, failure_cls):
        return f"<{value} types={list(value)}>"
    return repr(value)


def events(values: Iterable[tuple[str, str, dict[str, Any]]], failure_cls: type) -> list[str]:
    """Render ``CaptureListener.values`` as ``"<kind> <name> <old>-><new>[ result=...]"`` strings.

    Engine objects and uuids are left out: they differ from run to run by design.
    """
    rendered = []
    for kind, state, details in values:
        text = f"{kind} {details[kind + '_name']} {details['old_state']}->{state}"
        if "result" in details:
            text += f" result={describe(details['result'], failure_cls)}"
        rendered.append(text)
    return rendered


def atom_names(flow: Any, flow_cls: type) -> list[str]:
    """Names of every atom under ``flow``, depth first, in the flow's own iteration order."""
    names: list[str] = []
    for item in flow:
        if isinstance(item, flow_cls):
            names.extend(atom_names(item, flow_cls))
        else:
            names.append(item.name)
    return names


def _plain(value: Any, failure_cls: type) -> Any:
    """``value`` with any failure (alone or among several providers' values) replaced by its description."""
    if isinstance(value, failure_cls):
        return describe(value, failure_cls)
    if isinstance(value, list):
        return [_plain(item, failure_cls) for item in value]
    return value


def final_state(engine: Any, names: Iterable[str], failure_cls: type) -> dict[str, Any]:
    """Flow state, each atom's state and intention, and every stored result, after a run."""
    storage = engine.storage
    names = list(names)
    return {
        "flow_state": storage.get_flow_state(),
        "atom_states": {name: storage.get_atom_state(name) for name in names},
        "intentions": {name: storage.get_atom_intention(name) for name in names},
        "fetch_all": {key: _plain(value, failure_cls) for key, value in storage.fetch_all().items()},
    }


def caught(exc: BaseException, failure_cls: type) -> dict[str, Any]:
    """What a caller sees of an exception re-raised by ``run()``."""
    seen: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if hasattr(exc, "__iter__"):  # WrappedFailure iterates over the failures it wraps
        seen["causes"] = sorted(describe(cause, failure_cls) for cause in exc)
    return seen


def links(flow: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """``flow.iter_links()`` as sorted ``(from, to, meta)`` with sets in the metadata sorted into lists."""
    rendered = []
    for source, target, meta in flow.iter_links():
        plain = {key: sorted(val) if isinstance(val, set | frozenset) else val for key, val in meta.items()}
        rendered.append((source.name, target.name, plain))
    return sorted(rendered, key=repr)
