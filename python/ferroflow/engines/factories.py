"""Flow factories: how a flow is rebuilt after a crash (TaskFlow's ``load_from_factory`` family).

The factory's importable name and arguments are saved in ``FlowDetail.meta['factory']``; a resuming
process resolves the name, calls it with the saved arguments and matches the new atoms to the saved
details by name. A factory that cannot be imported back by that name (a lambda, a local function, a
bound method, a class, a function of the standard library or of ferroflow) is refused when it is
*saved*, not discovered broken when a resume needs it.

A name read back from a store is resolved only through the trust the user gave (see
`ferroflow.trust`): its module must lie under a trusted prefix, never in the standard library or
builtins, and it must be a factory function defined there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ferroflow import codec, trust
from ferroflow import flow as flow_mod
from ferroflow.persistence.models import FACTORY_META
from ferroflow.trust import import_by_name


def _same_callable(a: Any, b: Any) -> bool:
    if a is b:
        return True
    func_a, func_b = getattr(a, "__func__", None), getattr(b, "__func__", None)
    return func_a is not None and func_a is func_b and getattr(a, "__self__", None) is getattr(b, "__self__", None)


def factory_name(factory: Callable[..., Any] | str) -> str:
    """The name ``factory`` can be re-imported by; ValueError when it cannot."""
    if isinstance(factory, str):
        trust.check_saved_name(factory, "Flow factory")  # before anything is imported
        try:
            imported = import_by_name(factory)
        except ImportError as exc:
            raise ValueError(f"Flow factory {factory!r} is not importable: {exc}") from exc
        trust.check_factory_object(factory, imported)
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
    trust.check_factory_object(name, imported)
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


def _flow_label(flow_detail: Any) -> str:
    return f"{getattr(flow_detail, 'name', None)!r} ({getattr(flow_detail, 'uuid', None)})"


def flow_from_detail(flow_detail: Any, trusted_modules: Any = None) -> Any:
    """Rebuilds the flow of ``flow_detail`` by calling its saved factory.

    The saved factory name is resolved only through trust (`ferroflow.trust`): ``trusted_modules``
    (module prefixes, or a `ferroflow.trust.TrustedModules`), else ``$FERROFLOW_TRUSTED_MODULES``,
    else the default (the saved name's top-level package, unless it is the standard library,
    builtins, ferroflow or a packaging tool).

    :raises UntrustedCode: the saved name is not trusted, or not a factory function.
    :raises ImportError: a trusted factory that cannot be imported (any more).
    :raises ValueError: no factory saved, a malformed record, or a bad ``trusted_modules``.
    """
    meta = getattr(flow_detail, "meta", None)
    factory_data = meta.get(FACTORY_META) if isinstance(meta, dict) else None
    if factory_data is None:
        raise ValueError(
            f"Cannot reconstruct flow {_flow_label(flow_detail)}: no factory information saved; load it with "
            "load_from_factory() to make it resumable"
        )
    name = factory_data.get("name") if isinstance(factory_data, dict) else None
    args = factory_data.get("args", []) if isinstance(factory_data, dict) else None
    kwargs = factory_data.get("kwargs", {}) if isinstance(factory_data, dict) else None
    if not isinstance(name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError(
            f"Cannot reconstruct flow {_flow_label(flow_detail)}: its saved factory record is malformed "
            f"(expected a name, a list of args and a dict of kwargs): {factory_data!r}"
        )
    trusted = trust.trusted_from(trusted_modules, saved_factory=name)
    try:
        factory = trust.resolve_factory(name, trusted, flow=_flow_label(flow_detail))
    except ImportError as exc:
        raise ImportError(f"Could not import factory {name!r} of flow {flow_detail.name!r}: {exc}") from exc
    # (a factory builds a flow meant to last, often of many atoms: see paused_gc; 100,000 tasks
    # built with the collector running cost a fifth more)
    with flow_mod.paused_gc():
        return factory(*args, **kwargs)


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

    ``kwargs`` are engine options, including ``migrations``, ``on_version_change``,
    ``provider_change`` and ``trusted_modules`` (see `ferroflow.engines.helpers.load`);
    migrations given with a new flow are recorded as not needed, so a program can always pass
    the same list. A factory given by name is the caller's choice (not resolved through trust),
    but it must be a function that a resuming process could resolve: not the standard library,
    builtins or ferroflow, not a class.
    """
    from ferroflow.engines import helpers, persist
    from ferroflow.utils import persistence_utils

    meta = factory_meta(flow_factory, factory_args, factory_kwargs)
    factory = import_by_name(meta["name"]) if isinstance(flow_factory, str) else flow_factory
    with flow_mod.paused_gc():  # (as in flow_from_detail)
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
    trusted_modules: Any = None,
    **kwargs: Any,
) -> Any:
    """Rebuilds the flow of a saved ``flow_detail`` with its factory and loads it to resume.

    **Trust.** The factory, and the revert references of orphans reverted on a rollback, are named
    by the store: anyone who can write the store can name any code. They are resolved only under
    ``trusted_modules`` (module prefixes: ``"pkg"`` trusts ``pkg`` and ``pkg.sub``, not ``pkgx``),
    else ``$FERROFLOW_TRUSTED_MODULES`` (comma separated), else the default: the top-level package
    of the saved factory (and, for orphans, of the atoms of the rebuilt flow), unless that is the
    standard library, builtins, ferroflow (except its demo and benchmark flows) or a packaging or
    test tool. Explicit trust replaces the default; the standard library and builtins are never
    trusted, even when listed. Give explicit trust whenever others can write the store: the default
    comes from the store itself. See `ferroflow.trust`.

    When the factory's code changed since the flow was saved, ``migrations``,
    ``on_version_change`` and ``provider_change`` (engine options, see
    `ferroflow.engines.helpers.load`) say how saved details carry over; ``engine.plan()`` shows
    the outcome before anything runs.

    :raises UntrustedCode: the saved factory is not trusted, or not a factory function (nothing
        is imported from an untrusted module, nothing is called).
    """
    from ferroflow.engines import helpers

    given = trust.explicit(trusted_modules)
    flow = flow_from_detail(flow_detail, trusted_modules=given)
    options = dict(kwargs)
    if given is not None:
        options["trusted_modules"] = given
    if namespace is not None:
        options["namespace"] = namespace
    return helpers.load(flow, store=store, flow_detail=flow_detail, backend=backend, engine=engine, **options)


__all__ = ["flow_from_detail", "load_from_detail", "load_from_factory", "save_factory_details"]
