"""Resuming many saved flows in one go (``engines.resume_many``, ``ferroflow resume --all``).

Resuming flows one by one pays, per flow, for what is mostly the same work: importing and calling
the factory, lowering and compiling the flow, and (on SQLite) committing every flow state, lease
and atom step alone. Here flows whose saved factory record (name, arguments) is the same share one
built flow and one compilation, and with ``durability=batch`` on SQLite their writes commit
together (`SQLiteBackend.held_writes`): a kill loses at most the open transaction, as it loses an
open group, and what was committed before is never lost.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ferroflow import states, trust
from ferroflow.engines import factories, helpers, persist
from ferroflow.flow import paused_gc
from ferroflow.persistence import ownership
from ferroflow.types.failure import Failure
from ferroflow.utils import pacing

__all__ = ["FlowResult", "Resumer", "resume_many"]


@dataclass
class FlowResult:
    """What resuming one flow of `resume_many` did."""

    flow_uuid: str
    flow_name: str
    #: The flow's state at the end (SUCCESS, REVERTED, FAILURE, SUSPENDED), or None when it could
    #: not be resumed at all or was stopped part way (see ``error``).
    state: str | None
    #: The failure the run raised (what made the flow revert or fail), if any.
    failure: Failure | None = None
    #: Why the flow could not be resumed (its factory is untrusted or gone, another engine owns
    #: it, its saved details are refused...: nothing of it ran), or what stopped its run part way
    #: other than its atoms (its lease lost to another owner, the store failing: ``state`` is then
    #: None, the flow as its store says).
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether the flow ended SUCCESS."""
        return self.state == states.SUCCESS


class Resumer:
    """Loads saved flows to resume, sharing between flows built alike what they can share.

    `load` rebuilds a saved flow with its factory, resolved through trust (``trusted_modules``,
    as `load_from_detail`), and returns its engine, compiled. With ``share_flows`` (the default),
    flows whose saved factory and arguments are equal share one built flow and one compilation:
    the factory is called once per distinct record, so its atoms run one flow after another (an
    atom that keeps state on itself between executes sees it carried over; pass
    ``share_flows=False`` to build each flow anew). All the engines share one owner id for their
    leases, as a conductor's jobs do.

    ``engine`` and ``options`` are engine options (`ferroflow.engines.helpers.load`), the same
    for every flow.
    """

    def __init__(
        self,
        backend: Any,
        *,
        trusted_modules: Any = None,
        share_flows: bool = True,
        engine: str = "default",
        **options: Any,
    ) -> None:
        self.backend = persist.resolve_backend(backend)
        self._given = trust.explicit(trusted_modules)
        if self._given is not None:
            options["trusted_modules"] = self._given
        self._share = share_flows
        self._engine_cls, self._options = helpers.checked_options(engine, options)
        # (read once: `$FERROFLOW_LEASE_SECONDS` is a costly lookup to make per flow)
        self._options["lease_seconds"] = ownership.lease_seconds_from(self._options.get("lease_seconds"))
        self._owner = ownership.new_owner_id()
        #: A compiled engine per saved factory record: the flow and compilation others take.
        self._templates: dict[str, Any] = {}
        #: Per saved factory record, the saved metas its engines decoded (atoms share a few).
        self._meta_caches: dict[str, dict[str, Any]] = {}
        #: `read` takes a flow's lease before reading it (SQLite: the lease comes with the row).
        self._lease_first = hasattr(self.backend, "store")

    def read(self, flow_uuid: str, conn: Any) -> tuple[Any, ownership.Lease | None]:
        """The saved flow detail ``flow_uuid`` and, on SQLite, its lease: taken first, on a
        connection of its own (the one its engine will write with), so that the row the lease
        comes back with is the one read (a flow's row is read once; give both to `load`).
        Elsewhere the flow detail alone, read with ``conn`` (one connection for many reads).

        :raises NotFound: there is no such flow detail.
        :raises InvalidState: another live owner holds its lease.
        """
        if not self._lease_first:
            return conn.get_flow_details(flow_uuid), None
        conn = self.backend.get_connection()
        lease = ownership.Lease(conn, flow_uuid, self._options["lease_seconds"], self._owner)
        lease.acquire()
        try:
            return conn.get_flow_details(flow_uuid, lazy=True), lease
        except BaseException:
            lease.release()
            raise

    def load(self, flow_detail: Any, lease: ownership.Lease | None = None) -> Any:
        """The engine of ``flow_detail``, compiled (not prepared: `prepare` takes its lease,
        unless ``lease``, held, came with the flow detail from `read`; it is given back if the
        engine cannot be made).

        :raises UntrustedCode, ImportError, ValueError: as `load_from_detail`.
        """
        try:
            key = _structure_key(flow_detail) if self._share else None
            template = self._templates.get(key) if key is not None else None
            flow = template._flow if template is not None else factories.flow_from_detail(flow_detail, self._given)
            # (the engine copies the options it is given: one checked dict serves every flow)
            engine = helpers.build(self._engine_cls, flow, self._options, flow_detail=flow_detail, backend=self.backend)
            if engine._persist is not None:
                if lease is not None:
                    engine._persist.adopt(lease)
                else:
                    engine._persist.owner = self._owner
                if key is not None:
                    engine._persist.meta_cache = self._meta_caches.setdefault(key, {})
            if template is not None:
                engine._compile_like(template)
            else:
                engine.compile()
                if key is not None:
                    self._templates[key] = engine
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        return engine

    @contextlib.contextmanager
    def held_writes(self) -> Iterator[bool]:
        """On SQLite with ``durability=batch``: the writes of the engines run inside join
        transactions committed every ``batch_ms`` or ``batch_transitions`` writes, and on leaving
        (`SQLiteBackend.held_writes`); a kill loses at most the open transaction. Elsewhere
        nothing changes (every flow commits as a lone engine run does). Yields whether held."""
        held = getattr(self.backend, "held_writes", None)
        if held is None:
            yield False
            return
        with held() as holding:
            yield holding


def resume_many(
    flows: Iterable[Any],
    backend: Any,
    *,
    trusted_modules: Any = None,
    share_flows: bool = True,
    on_result: Callable[[FlowResult], None] | None = None,
    chunk: int | None = None,
    engine: str = "default",
    **options: Any,
) -> list[FlowResult]:
    """Resumes each saved flow of ``flows`` (flow details, or their uuids) to its end, one after
    the other, and returns what each did, in order. A flow that fails or cannot be resumed does
    not stop the others: its `FlowResult` says why.

    Flows are loaded by a `Resumer` (``trusted_modules``, ``share_flows``, ``engine`` and
    ``options`` are its): flows built alike share one built flow and one compilation. On SQLite
    with ``durability=batch``, the writes of all the flows join transactions committed every
    ``batch_ms`` or ``batch_transitions`` writes, and everything is committed when this returns;
    a kill loses at most the open transaction (its flows resume from the last commit). With any
    other durability or backend, every flow commits as a lone engine run does.

    Flows are taken in chunks: a chunk's flows are read, built, leased and prepared before the
    first of them runs, so a flow's lease is held, idle, until its turn. With ``chunk`` None (the
    default) a chunk is sized from the time the flows before took, so that its last flow waits
    about `LEASE_AHEAD_SECONDS` at most: up to `CHUNK` small flows, one at a time once flows take
    longer than that (other processes can take the flows not leased yet). A number fixes the size.

    ``on_result`` is called with each flow's result as soon as it is known (for progress).

    :raises ValueError: ``chunk`` is not a positive integer.
    """
    sizes = _ChunkSizes(chunk)
    resumer = Resumer(backend, trusted_modules=trusted_modules, share_flows=share_flows, engine=engine, **options)
    results: list[FlowResult] = []
    with contextlib.closing(resumer.backend.get_connection()) as conn, resumer.held_writes():
        for result, prepared in _chunks(resumer, conn, iter(flows), sizes):
            if prepared is not None:
                _run(prepared, result)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def prepare_in_chunks(
    resumer: Resumer, conn: Any, flows: Iterable[Any], chunk: int | None = None
) -> Iterator[tuple[FlowResult, Any]]:
    """Each flow of ``flows`` (flow details, or their uuids, read with ``conn`` where `Resumer.read`
    does not take their lease first) with its engine loaded by ``resumer``, leased, prepared and
    validated, ready to run; or with None and its `FlowResult`'s ``error`` saying why it could not
    be. In order, a chunk at a time (``chunk``: as `resume_many`'s): the caller runs each engine
    before asking for the next pair, so the time a chunk took includes its runs. Should the caller
    stop part way (an exception, ``close``), the leases of the chunk's engines it was not given
    yet are given back.

    :raises ValueError: ``chunk`` is not a positive integer (at once, before any flow is read).
    """
    return _chunks(resumer, conn, iter(flows), _ChunkSizes(chunk))


def _chunks(resumer: Resumer, conn: Any, items: Iterator[Any], sizes: _ChunkSizes) -> Iterator[tuple[FlowResult, Any]]:
    """`prepare_in_chunks`, with its chunk sizes checked already."""
    while taken := list(itertools.islice(items, sizes.next)):
        started = time.monotonic()
        ready = _prepare_chunk(resumer, conn, taken)
        given = 0
        try:
            for pair in ready:
                given += 1
                yield pair
        finally:
            for _, engine in ready[given:]:
                if engine is not None and engine._persist is not None:
                    engine._persist.release()
        sizes.took(len(taken), time.monotonic() - started)


#: The most flows resumed in one chunk, each step (reading the flow details, building the
#: engines, taking the leases, preparing) taken for the whole chunk before its flows run: the
#: store's code and pages then stay in the processor's caches from one flow to the next, which
#: makes a small flow's resumption about a quarter cheaper than one flow at a time.
CHUNK = 32

#: How long, about, the last flow of a chunk may hold its lease before its turn comes (seconds):
#: chunks are sized from the time flows took so far, so long flows are leased one at a time and
#: the others stay free for other processes to take.
LEASE_AHEAD_SECONDS = 0.05


class _ChunkSizes:
    """The size of each next chunk: ``fixed``, or what fits in `LEASE_AHEAD_SECONDS` at the pace
    so far (from one flow, at most doubling from one chunk to the next, up to `CHUNK`)."""

    def __init__(self, fixed: int | None) -> None:
        if fixed is not None and (type(fixed) is not int or fixed < 1):
            raise ValueError(f"chunk must be a positive number of flows, or None to size chunks by time; got {fixed!r}")
        self.fixed = fixed
        self.next = fixed or 1

    def took(self, flows: int, seconds: float) -> None:
        """A chunk of ``flows`` flows took ``seconds``."""
        if self.fixed is None:
            self.next = min(CHUNK, pacing.next_size(self.next, flows, seconds, LEASE_AHEAD_SECONDS))


def _prepare_chunk(resumer: Resumer, conn: Any, items: list[Any]) -> list[tuple[FlowResult, Any]]:
    """The flows of one chunk (flow details or uuids, these read with ``conn`` where their lease is
    not taken first: `Resumer.read`), each with its engine prepared, or None (its result says why)."""
    results: list[FlowResult] = []
    # Per flow, what the next step takes; None once a step failed for it (its result says why).
    pending: list[Any] = []
    for item in items:
        if isinstance(item, str):
            result = FlowResult(item, "", None)
            try:
                read = resumer.read(item, conn)
            except Exception as exc:
                result.error, read = exc, None
            else:
                result.flow_name = read[0].name
        else:
            result = FlowResult(str(item.uuid), item.name, None)
            read = (item, None)
        results.append(result)
        pending.append(read)
    # (what a chunk's engines are built, leased and prepared with is acyclic, freed by reference
    # counting (tests/test_engine_lifetime.py) and lives until the chunk has run: young
    # collections walking it again and again would cost a small flow about 4 %)
    with paused_gc():
        for step in (_loaded(resumer), _leased, _prepared):
            for position, value in enumerate(pending):
                if value is not None:
                    try:
                        pending[position] = step(value)
                    except Exception as exc:
                        results[position].error, pending[position] = exc, None
    return list(zip(results, pending, strict=True))


def _run(engine: Any, result: FlowResult) -> None:
    """Runs a prepared engine to its end and records in ``result`` how it ended."""
    try:
        engine.run()
    except Exception as exc:
        state = engine.storage.get_flow_state()
        if state in states.RUN_ENDS:  # (the flow's own outcome: an atom failed)
            result.state, result.failure = state, Failure()
        else:  # stopped part way by something else: its lease taken over, its store failing
            result.error = exc
    else:
        result.state = engine.storage.get_flow_state()


def _loaded(resumer: Resumer) -> Callable[[tuple[Any, ownership.Lease | None]], Any]:
    """The step that makes a flow's engine from what `Resumer.read` gave."""
    return lambda read: resumer.load(*read)


def _leased(engine: Any) -> Any:
    """The engine, with its flow's lease taken (its prepare would take it otherwise)."""
    if engine._persist is not None:
        engine._persist.acquire()
    return engine


def _prepared(engine: Any) -> Any:
    """The engine, prepared and validated; its lease given back if it cannot run."""
    try:
        engine.prepare()
        engine.validate()
    except BaseException:
        if engine._persist is not None:
            engine._persist.release()
        raise
    return engine


def _structure_key(flow_detail: Any) -> str | None:
    """The saved factory record as text: flows with the same one are built alike. (Its repr:
    records read back from the store keep their saved key order, so equal records of one
    program read alike; two that differ only in order merely miss the cache.)"""
    meta = getattr(flow_detail, "meta", None)
    record = meta.get(factories.FACTORY_META) if isinstance(meta, dict) else None
    return repr(record) if isinstance(record, dict) else None
