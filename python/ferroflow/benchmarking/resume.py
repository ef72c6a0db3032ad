"""Resuming suspended flows in a fresh process: one big flow suspended halfway, many small ones.

The setup (in the benchmarking process) starts flows with ``load_from_factory`` on a SQLite file
and suspends each once half its atoms are done; the measurement runs in a fresh process
(`child`), which resumes them from the file alone, as a restarted service would: ``load`` (open
the file, read the flow detail, rebuild the flow with its saved factory), ``match`` (load an engine
on the saved detail, compile, prepare: saved atom details matched to the atoms) and ``run``.

ferroflow and TaskFlow share the API, so one implementation serves both (`Api`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferroflow.benchmarking import dbfiles, flows

#: Where a flow is saved: a SQLite file (default durability), or a store URI (``dir:///path``,
#: ``postgresql://...``; TaskFlow's backend of the same kind is used for TaskFlow).
Location = Path | str


def location(text: str) -> Location:
    """A `Location` from the command line: a URI stays a string, anything else is a path."""
    return text if "://" in text else Path(text)


#: Systems that can resume a saved flow through TaskFlow's API.
SYSTEMS = ("ferroflow", "taskflow")
_SUSPENDED = "SUSPENDED"
_RUNNING = "RUNNING"
_SUCCESS = "SUCCESS"


@dataclass(frozen=True)
class Api:
    """What resuming needs from a TaskFlow-compatible library."""

    system: str
    engines: Any
    models: Any
    #: ``factory(shape, n)`` builds a flow; importable by name for ``load_from_factory``.
    factory: Any
    #: ``small_factory(atoms)`` builds one small linear flow.
    small_factory: Any

    @property
    def lazy_details(self) -> bool:
        """Whether resuming reads a flow detail without its atoms: ferroflow's prepare reads the
        saved atoms from the store itself (as columns), TaskFlow's storage needs them loaded."""
        return self.system == "ferroflow"

    def open_backend(self, location: Location) -> Any:
        """The library's backend at ``location`` (see `Location`), schema upgraded."""
        if self.system == "taskflow":
            from ferroflow.benchmarking import taskflow_peer

            return taskflow_peer.open_backend(location)
        from ferroflow.persistence import backends

        uri = location if isinstance(location, str) else dbfiles.ferroflow_uri(location, dbfiles.SQLITE)
        backend = backends.fetch(uri)
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
        return backend


def api(system: str) -> Api:
    """The `Api` of ``system`` (``ferroflow`` or ``taskflow``)."""
    if system == "ferroflow":
        from ferroflow import engines
        from ferroflow.persistence import models

        return Api(system, engines, models, flows.build, flows.small_linear)
    if system == "taskflow":
        from ferroflow.benchmarking import taskflow_peer

        return Api(
            system,
            importlib.import_module("taskflow.engines"),
            importlib.import_module("taskflow.persistence.models"),
            taskflow_peer.build,
            taskflow_peer.small_linear,
        )
    raise ValueError(f"no resume benchmark for {system!r}; known: {', '.join(SYSTEMS)}")


@contextlib.contextmanager
def _backend(lib: Api, path: Location) -> Iterator[Any]:
    backend = lib.open_backend(path)
    try:
        yield backend
    finally:
        backend.close()


def _run_suspending_after(engine: Any, done: int) -> None:
    """Runs ``engine``, asking it to suspend once ``done`` atoms have succeeded."""
    count = 0

    def on_success(event_type: str, details: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count == done:
            engine.suspend()

    engine.atom_notifier.register(_SUCCESS, on_success)
    engine.run()
    state = engine.storage.get_flow_state()
    if state != _SUSPENDED:
        raise RuntimeError(f"the flow was to be suspended after {done} atoms but ended {state}")


def suspend_halfway(system: str, path: Location, shape: str, n: int) -> str:
    """Saves a flow of ``n`` atoms of ``shape`` to ``path``, suspended halfway; its uuid."""
    if n < 2:
        raise ValueError("a flow suspended halfway needs at least 2 atoms")
    lib = api(system)
    with _backend(lib, path) as backend:
        book = lib.models.LogBook("bench-resume")
        engine = lib.engines.load_from_factory(lib.factory, factory_args=(shape, n), book=book, backend=backend)
        _run_suspending_after(engine, flows.halfway(n))
        return str(engine.storage.flow_uuid)


def suspend_many(system: str, path: Path, count: int, atoms: int = 10) -> list[str]:
    """Saves ``count`` flows of ``atoms`` atoms to ``path``, each suspended halfway; their uuids."""
    lib = api(system)
    uuids = []
    with _backend(lib, path) as backend:
        for i in range(count):
            # One book per flow, as a conductor makes per job (and no book grows with the count).
            book = lib.models.LogBook(f"bench-small-{i}")
            engine = lib.engines.load_from_factory(lib.small_factory, factory_args=(atoms,), book=book, backend=backend)
            _run_suspending_after(engine, flows.halfway(atoms))
            uuids.append(str(engine.storage.flow_uuid))
    return uuids


def write_uuids(path: Path, uuids: list[str]) -> Path:
    """Writes the flow uuids a fresh process is to resume beside the database; the file's path."""
    listing = path.with_suffix(".uuids.json")
    listing.write_text(json.dumps(uuids))
    return listing


def stamp_first_start(notifier: Any, stamps: dict[str, float]) -> None:
    """Records in ``stamps['first_atom']`` the `time.monotonic` of the first atom's RUNNING event
    told to ``notifier`` (an engine's ``atom_notifier``), as a user's listener would see it. The
    listener then deregisters itself, so the rest of the run is not observed (ferroflow runs an
    unobserved engine on its faster paths)."""

    def on_running(event_type: str, details: dict[str, Any]) -> None:
        stamps.setdefault("first_atom", time.monotonic())
        notifier.deregister(_RUNNING, on_running)

    notifier.register(_RUNNING, on_running)


def resume_one(system: str, path: Location, flow_uuid: str, stamps: dict[str, float] | None = None) -> dict[str, float]:
    """Resumes one saved flow from ``path`` to its end; seconds of ``load``, ``match`` and ``run``.

    With ``stamps``, the first resumed atom's start is recorded in it (`stamp_first_start`)."""
    lib = api(system)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    backend = lib.open_backend(path)
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            flow_detail = conn.get_flow_details(flow_uuid, lazy=lib.lazy_details)
        flow = lib.engines.flow_from_detail(flow_detail)
        timings["load"] = time.perf_counter() - started
        started = time.perf_counter()
        engine = lib.engines.load(flow, flow_detail=flow_detail, backend=backend)
        engine.compile()
        engine.prepare()
        engine.validate()
        timings["match"] = time.perf_counter() - started
        if stamps is not None:
            stamp_first_start(engine.atom_notifier, stamps)
        started = time.perf_counter()
        engine.run()
        timings["run"] = time.perf_counter() - started
        state = engine.storage.get_flow_state()
        if state != _SUCCESS:
            raise RuntimeError(f"the resumed flow {flow_uuid} ended {state}, not SUCCESS")
    finally:
        backend.close()
    return timings


def resume_many(system: str, path: Location, uuids: list[str]) -> dict[str, float]:
    """Resumes every flow of ``uuids`` from ``path``, one after the other; seconds per phase, summed.

    ferroflow resumes them as a user would, with `ferroflow.engines.resume_many` (flows built
    alike share their build and compilation; with ``durability=batch`` their writes commit
    together): its phases are ``load`` (opening the store) and ``run`` (everything else).
    TaskFlow, which has no such call, loads, matches and runs each flow in turn."""
    lib = api(system)
    timings = {"load": 0.0, "match": 0.0, "run": 0.0}
    clock = time.perf_counter
    started = clock()
    backend = lib.open_backend(path)
    timings["load"] += clock() - started
    if system == "ferroflow":
        try:
            started = clock()
            results = lib.engines.resume_many(uuids, backend)
            del timings["match"]
            timings["run"] = clock() - started
        finally:
            backend.close()
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            why = failed.error or failed.failure
            raise RuntimeError(f"the resumed flow {failed.flow_uuid} ended {failed.state}: {why}")
        return timings
    try:
        conn = backend.get_connection()
        for flow_uuid in uuids:
            started = clock()
            flow_detail = conn.get_flow_details(flow_uuid, lazy=lib.lazy_details)
            flow = lib.engines.flow_from_detail(flow_detail)
            loaded = clock()
            engine = lib.engines.load(flow, flow_detail=flow_detail, backend=backend)
            engine.compile()
            engine.prepare()
            matched = clock()
            engine.run()
            finished = clock()
            timings["load"] += loaded - started
            timings["match"] += matched - loaded
            timings["run"] += finished - matched
            state = engine.storage.get_flow_state()
            if state != _SUCCESS:
                raise RuntimeError(f"the resumed flow {flow_uuid} ended {state}, not SUCCESS")
        conn.close()
    finally:
        backend.close()
    return timings
