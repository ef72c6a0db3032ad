"""Flow factories: how a flow is rebuilt after a crash (TaskFlow's ``load_from_factory`` family).

The factory's importable name and arguments are saved in ``FlowDetail.meta['factory']``; a resuming
process imports the name, calls it with the saved arguments and matches the new atoms to the saved
details by name. A factory that cannot be imported back by that name (a lambda, a local function, a
bound method) is refused when it is *saved*, not discovered broken when a resume needs it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any

from ferroflow import codec

FACTORY_META = "factory"


def import_by_name(name: str) -> Any:
    """Imports ``package.module.attr[.attr...]``, finding the longest importable module prefix."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ImportError(f"cannot import {name!r}: module {module_name!r} has no {exc.name!r}") from exc
        return obj
    raise ImportError(f"cannot import {name!r}: no importable module in that name")


def _same_callable(a: Any, b: Any) -> bool:
    if a is b:
        return True
    func_a, func_b = getattr(a, "__func__", None), getattr(b, "__func__", None)
    return func_a is not None and func_a is func_b and getattr(a, "__self__", None) is getattr(b, "__self__", None)


def factory_name(factory: Callable[..., Any] | str) -> str:
    """The name ``factory`` can be re-imported by; ValueError when it cannot."""
    if isinstance(factory, str):
        try:
            import_by_name(factory)
        except ImportError as exc:
            raise ValueError(f"Flow factory {factory!r} is not importable: {exc}") from exc
        return factory
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(
            f"Flow factory {factory!r} is not reimportable (a lambda or a function defined inside another "
            "function cannot be imported by a resuming process); define it at module level"
        )
    name = f"{module}.{qualname}"
    try:
        imported = import_by_name(name)
    except ImportError as exc:
        raise ValueError(f"Flow factory {factory!r} is not reimportable as {name!r}: {exc}") from exc
    if not _same_callable(imported, factory):
        raise ValueError(
            f"Flow factory {factory!r} is not reimportable: {name!r} names a different object (a method bound "
            "to an instance cannot be re-imported); use a module-level function, staticmethod or classmethod"
        )
    return name


def factory_meta(flow_factory: Callable[..., Any] | str, factory_args: Any, factory_kwargs: Any) -> dict[str, Any]:
    """The ``meta['factory']`` record: importable name, args, kwargs (checked to be saveable)."""
    name = factory_name(flow_factory)
    args = list(factory_args or [])
    kwargs = dict(factory_kwargs or {})
    try:
        codec.JSON.dumps({"args": args, "kwargs": kwargs})
    except TypeError as exc:
        raise ValueError(f"Arguments of flow factory {name!r} cannot be saved: {exc}") from exc
    return {"name": name, "args": args, "kwargs": kwargs}


def save_factory_details(
    flow_detail: Any,
    flow_factory: Callable[..., Any] | str,
    factory_args: Any,
    factory_kwargs: Any,
    backend: Any = None,
) -> None:
    """Records the factory and its arguments in ``flow_detail.meta['factory']`` (and saves it)."""
    flow_detail.meta[FACTORY_META] = factory_meta(flow_factory, factory_args, factory_kwargs)
    if backend is not None:
        with contextlib.closing(backend.get_connection()) as conn:
            conn.update_flow_details(flow_detail)


def flow_from_detail(flow_detail: Any) -> Any:
    """Rebuilds the flow of ``flow_detail`` by calling its saved factory."""
    try:
        factory_data = flow_detail.meta[FACTORY_META]
    except (KeyError, AttributeError, TypeError):
        raise ValueError(
            f"Cannot reconstruct flow {getattr(flow_detail, 'name', flow_detail)!r} ({flow_detail.uuid}): no "
            "factory information saved; load it with load_from_factory() to make it resumable"
        ) from None
    name = factory_data["name"]
    try:
        factory = import_by_name(name)
    except ImportError as exc:
        raise ImportError(f"Could not import factory {name!r} of flow {flow_detail.name!r}: {exc}") from exc
    return factory(*factory_data.get("args", ()), **factory_data.get("kwargs", {}))


def load_from_factory(
    flow_factory: Callable[..., Any] | str,
    factory_args: Any = None,
    factory_kwargs: Any = None,
    store: dict[str, Any] | None = None,
    book: Any = None,
    backend: Any = None,
    namespace: str | None = None,
    engine: str = "default",
    **kwargs: Any,
) -> Any:
    """Builds the flow with ``flow_factory``, saves the factory with the new flow detail, loads it.

    ``kwargs`` are engine options, including ``migrations``, ``on_version_change`` and
    ``provider_change`` (see `ferroflow.engines.helpers.load`); migrations given with a new flow
    are recorded as not needed, so a program can always pass the same list.
    """
    from ferroflow.engines import helpers, persist
    from ferroflow.utils import persistence_utils

    meta = factory_meta(flow_factory, factory_args, factory_kwargs)
    factory = import_by_name(meta["name"]) if isinstance(flow_factory, str) else flow_factory
    flow = factory(*meta["args"], **meta["kwargs"])
    backend_obj = persist.resolve_backend(backend)
    flow_detail = persistence_utils.create_flow_detail(flow, book=book, backend=backend_obj, meta={FACTORY_META: meta})
    options = dict(kwargs)
    if namespace is not None:
        options["namespace"] = namespace
    return helpers.load(
        flow, store=store, flow_detail=flow_detail, book=book, backend=backend_obj, engine=engine, **options
    )


def load_from_detail(
    flow_detail: Any,
    store: dict[str, Any] | None = None,
    backend: Any = None,
    namespace: str | None = None,
    engine: str = "default",
    **kwargs: Any,
) -> Any:
    """Rebuilds the flow of a saved ``flow_detail`` with its factory and loads it to resume.

    When the factory's code changed since the flow was saved, ``migrations``,
    ``on_version_change`` and ``provider_change`` (engine options, see
    `ferroflow.engines.helpers.load`) say how saved details carry over; ``engine.plan()`` shows
    the outcome before anything runs.
    """
    from ferroflow.engines import helpers

    flow = flow_from_detail(flow_detail)
    options = dict(kwargs)
    if namespace is not None:
        options["namespace"] = namespace
    return helpers.load(flow, store=store, flow_detail=flow_detail, backend=backend, engine=engine, **options)


__all__ = ["flow_from_detail", "load_from_detail", "load_from_factory", "save_factory_details"]
