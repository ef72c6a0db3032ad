"""``load`` / ``run``: TaskFlow's engine helpers (``taskflow.engines.helpers``)."""

from __future__ import annotations

from typing import Any
from urllib import parse

from ferroflow import exceptions, trust
from ferroflow.engines import persist
from ferroflow.engines.engine import ActionEngine, ParallelActionEngine, SerialActionEngine
from ferroflow.persistence import backends

ENGINES_NAMESPACE = "ferroflow.engines"
_BUILTIN: dict[str, type[ActionEngine]] = {
    "default": SerialActionEngine,
    "serial": SerialActionEngine,
    "parallel": ParallelActionEngine,
}


#: Options ferroflow's engines read (`ActionEngine`, the parallel engine's executor, resuming,
#: trust, ownership, the storage codec).
FERROFLOW_OPTIONS = frozenset(
    {
        "never_resolve",
        "defer_reverts",
        "executor",
        "max_workers",
        "on_version_change",
        "provider_change",
        "migrations",
        "trusted_modules",
        "lease_seconds",
        "codec",
        "namespace",
    }
)
#: Options TaskFlow's engines document (action, parallel and worker-based engines) and some older
#: TaskFlow programs still pass: accepted so that a TaskFlow program loads unchanged, even where
#: ferroflow has no use for them.
TASKFLOW_OPTIONS = frozenset(
    {
        "defer_reverts",
        "never_resolve",
        "inject_transient",
        "gather_statistics",
        "executor",
        "max_workers",
        "url",
        "exchange",
        "topics",
        "transport",
        "transport_options",
        "retry_options",
        "transition_timeout",
        "worker_expiry",
        "engine_conf",
        "inject",
        "retry",
    }
)
KNOWN_OPTIONS = FERROFLOW_OPTIONS | TASKFLOW_OPTIONS


def _engine_class(kind: str, namespace: str) -> type[ActionEngine]:
    if kind in _BUILTIN:
        return _BUILTIN[kind]
    from importlib import metadata  # (only for engines that are not built in: a slow import)

    for entry in metadata.entry_points(group=namespace):
        if entry.name == kind:
            return entry.load()
    raise exceptions.NotFound(
        f"Could not find engine {kind!r} (known: {sorted(_BUILTIN)} and entry points in {namespace!r})"
    )


def _parse_engine(engine: str, options: dict[str, Any]) -> str:
    """``'parallel://?max_workers=3'`` → kind ``parallel`` with options as strings (as TaskFlow)."""
    if "://" not in engine:
        return engine
    parsed = parse.urlparse(engine)
    for key, values in parse.parse_qs(parsed.query).items():
        options.setdefault(key, values[-1])
    return parsed.scheme


def load(
    flow: Any,
    store: dict[str, Any] | None = None,
    flow_detail: Any = None,
    book: Any = None,
    backend: Any = None,
    namespace: str = ENGINES_NAMESPACE,
    engine: str = "default",
    **kwargs: Any,
) -> ActionEngine:
    """Builds an engine for ``flow`` (not yet compiled); ``store`` values are injected.

    Options for resuming a saved flow whose code changed (see `ferroflow.migrations`):
    ``on_version_change`` (``"reuse"`` — the default —, ``"rerun"``, ``"revert_then_rerun"``,
    ``"fail"`` or a ``migrate(old_version, old_result)`` callable; an atom's own setting wins),
    ``provider_change`` (``"keep"`` — the default — or ``"rerun"``) and ``migrations`` (a list of
    `ferroflow.migrations.Rename` / ``Split`` / ``Merge``, applied before the run). They are
    checked here, so a typo fails at load time rather than when the flow resumes.

    Option *names* are checked too: a name that is neither one of ferroflow's (`FERROFLOW_OPTIONS`)
    nor one TaskFlow documents (`TASKFLOW_OPTIONS`, accepted so that TaskFlow programs load
    unchanged), nor in the engine class's ``known_options`` (an engine from an entry point), is a
    ValueError naming it and the closest valid name; so is a misspelled option in an engine URI
    (``parallel://?max_workrs=2``).

    ``trusted_modules`` (module prefixes, or a `ferroflow.trust.TrustedModules`; else
    ``$FERROFLOW_TRUSTED_MODULES``, read here) says which modules the revert references of
    orphans may name when a rollback reverts them; without either, the default trusts the
    package of the flow's saved factory and those of its atoms (see `ferroflow.trust`).

    ``lease_seconds`` (with a ``backend``): how long this engine owns the flow detail without
    renewing (default 30 s, or ``$FERROFLOW_LEASE_SECONDS``); a heartbeat renews it every third
    of that while the engine holds it (`ferroflow.persistence.ownership`).
    """
    engine_cls, options = checked_options(engine, kwargs, namespace)
    return build(engine_cls, flow, options, store=store, flow_detail=flow_detail, book=book, backend=backend)


def checked_options(
    engine: str, kwargs: dict[str, Any], namespace: str = ENGINES_NAMESPACE
) -> tuple[type[ActionEngine], dict[str, Any]]:
    """The engine class ``engine`` names and its options, checked (see `load`): what `build`
    takes, so that many engines with the same options check them once."""
    options = dict(kwargs)
    kind = _parse_engine(engine, options)
    engine_cls = _engine_class(kind, namespace)
    known = KNOWN_OPTIONS | frozenset(getattr(engine_cls, "known_options", ()))
    backends.check_names(options, known, "engine option", f" (engine {kind!r})")
    _check_resume_options(options)
    return engine_cls, options


def build(
    engine_cls: type[ActionEngine],
    flow: Any,
    options: dict[str, Any],
    store: dict[str, Any] | None = None,
    flow_detail: Any = None,
    book: Any = None,
    backend: Any = None,
) -> ActionEngine:
    """`load` with the engine class and options `checked_options` gave."""
    created_in_book = flow_detail is None and book is not None
    backend_obj, flow_detail = persist.attach(flow, flow_detail, book, backend)
    result = engine_cls(flow, flow_detail=flow_detail, backend=backend_obj, options=options)
    if backend_obj is not None:
        result._persist = persist.Persister(backend_obj, flow_detail, options.get("lease_seconds"))
        result._persist.fill_user_detail = created_in_book
        result.storage.attach_meta_writer(result._persist, flow_detail.meta)
    elif flow_detail is not None:
        result.storage.attach_meta_writer(None, flow_detail.meta)
    if store:
        result.storage.inject(store)
    return result


def _check_resume_options(options: dict[str, Any]) -> None:
    from ferroflow import codec, migrations

    codec.check_storage_codec(options.get("codec"), "engine options")
    migrations.validate_version_policy(options.get("on_version_change"), "the load")
    migrations.validate_provider_policy(options.get("provider_change"))
    if options.get("migrations") is not None:
        options["migrations"] = migrations.check_migrations(options["migrations"])
    trusted = trust.explicit(options.pop("trusted_modules", None))
    if trusted is not None:
        options["trusted_modules"] = trusted


def run(flow: Any, store: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Loads and runs ``flow``; returns ``engine.storage.fetch_all()``."""
    engine = load(flow, store=store, **kwargs)
    engine.run()
    return engine.storage.fetch_all()
