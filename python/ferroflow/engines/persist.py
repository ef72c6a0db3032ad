"""Engine ↔ persistence backend: saved details in, every transition out.

`attach` resolves the backend and the flow detail when an engine is loaded. `Persister.prepare`
matches saved atom details to compiled atoms by name (new atoms get new details; details whose
atom disappeared are kept untouched as orphans) and restores states, results and failures into the
engine. `Persister.save` writes the atoms a batch of transitions touched — only those rows — before
the engine notifies anyone or starts anything that depends on them.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from ferroflow import codec, exceptions, states
from ferroflow.engines.storage import INJECTOR_NAME, INTENTION_CODES, INTENTION_NAMES, STATE_CODES, STATE_NAMES
from ferroflow.persistence import models

_TASK, _RETRY = 0, 1
_FIELDS = ("state", "intention", "results", "failure", "revert_results", "revert_failure", "meta")
#: How long a running engine owns its flow detail without renewing (renewed every third of it).
DEFAULT_LEASE_SECONDS = 30.0


def _dead_local_owner(owner: str) -> bool:
    """True for an owner id ``host:pid:token`` of this host whose process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def resolve_backend(backend: Any) -> Any:
    """A backend object from an object, a URI or a conf dict (upgraded to the current schema)."""
    if isinstance(backend, str | dict):
        from ferroflow.persistence import backends

        backend = backends.fetch(backend)
        with backend.get_connection() as conn:
            conn.upgrade()
    return backend


def attach(flow: Any, flow_detail: Any, book: Any, backend: Any) -> tuple[Any, Any]:
    """Resolves ``backend`` and the flow detail to run against (created and saved when missing)."""
    if backend is None:
        return None, flow_detail
    from ferroflow.utils import persistence_utils

    backend = resolve_backend(backend)
    if flow_detail is None:
        flow_detail = persistence_utils.create_flow_detail(flow, book=book, backend=backend)
    return backend, flow_detail


def check_serializable(name: str, value: Any) -> None:
    """Raises a clear TypeError when ``value`` cannot be saved by a JSON backend."""
    try:
        codec.JSON.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"result of atom {name!r} cannot be saved: {exc}; return plain data "
            "(dict/list/str/int/float/bool/None)"
        ) from None


class Persister:
    """Keeps one flow detail and its atom details in step with the engine."""

    def __init__(self, backend: Any, flow_detail: Any) -> None:
        self.backend = backend
        self.flow_detail = flow_detail
        self.details: list[models.AtomDetail] = []
        self._conn = backend.get_connection()
        self._fast = hasattr(self._conn, "apply")
        self._injector: models.TaskDetail | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = DEFAULT_LEASE_SECONDS
        self._leased = False
        self._renew_at = 0.0

    # -- prepare ---------------------------------------------------------------------------------
    def prepare(self, engine: Any) -> None:
        fd = self.flow_detail
        try:
            fresh = self._conn.get_flow_details(fd.uuid)
            fd.state = fresh.state
            fd.meta = fresh.meta
            saved_atoms = list(fresh)
        except exceptions.NotFound:
            saved_atoms = list(fd)
        saved = {ad.name: ad for ad in saved_atoms}
        storage = engine.storage
        compilation = engine.compilation
        if fd.state is not None:
            storage.set_flow_state(fd.state)
        created: list[models.AtomDetail] = []
        restore: list[tuple[int, int, int]] = []
        self.details = []
        for index, atom in enumerate(compilation.atoms):
            is_retry = compilation.spec_atoms[index][1] == _RETRY
            ad = saved.get(atom.name)
            want = models.RetryDetail if is_retry else models.TaskDetail
            if ad is not None and not isinstance(ad, want):
                raise exceptions.Duplicate(
                    f"Atom {atom.name!r} of flow {fd.name!r} is a {want.__name__[:-6].lower()} but its saved "
                    f"detail {ad.uuid} is a {type(ad).__name__}; rename the atom or remove the old detail"
                )
            if ad is None:
                ad = want(atom.name)
                ad.state = states.PENDING
                ad.intention = states.EXECUTE
                ad.version = _version(atom)
                created.append(ad)
                fd.add(ad)
            else:
                self._restore(storage, index, ad, is_retry)
                state = STATE_CODES.get(ad.state or states.PENDING, 0)
                intention = INTENTION_CODES.get(ad.intention or states.EXECUTE, 0)
                if state or intention:
                    restore.append((index, state, intention))
            storage.set_atom_uuid(index, ad.uuid)
            self.details.append(ad)
        self._prepare_injector(storage, saved, created)
        if created:
            if self._fast:
                self._conn.apply(new_atom_details=[(fd.uuid, ad) for ad in created])
            else:
                self._conn.update_flow_details(fd)
        if restore:
            scheduler = engine._scheduler
            scheduler.restore(restore)
            for index, _, _ in restore:  # the scheduler normalises interrupted states
                storage.states[index] = scheduler.state(index)
                storage.intentions[index] = scheduler.intention(index)

    @staticmethod
    def _restore(storage: Any, index: int, ad: models.AtomDetail, is_retry: bool) -> None:
        storage.states[index] = STATE_CODES.get(ad.state or states.PENDING, 0)
        storage.intentions[index] = INTENTION_CODES.get(ad.intention or states.EXECUTE, 0)
        if is_retry:
            history = [(value, dict(failures)) for value, failures in (ad.results or [])]
            storage.retry_histories[index] = history
            storage.results[index] = history[-1][0] if history else None
        else:
            storage.results[index] = ad.results
        if ad.failure is not None:
            storage.failures[index] = ad.failure
        elif ad.state == states.RUNNING and ad.intention != states.EXECUTE:
            storage.interrupted[index] = _interrupted(ad.name)
        if ad.revert_results is not None:
            storage.revert_results[index] = ad.revert_results
        if ad.revert_failure is not None:
            storage.revert_failures[index] = ad.revert_failure
        progress = ad.meta.get("progress")
        if progress is not None:
            storage.progress[index] = (progress, ad.meta.get("progress_details"))

    def _prepare_injector(self, storage: Any, saved: dict[str, Any], created: list[Any]) -> None:
        """Flow-level ``store`` values persist in TaskFlow's injector detail."""
        injector = saved.get(INJECTOR_NAME)
        current = dict(storage.injected)
        if injector is not None:
            merged = dict(injector.results or {})
            merged.update(current)
            storage.inject(merged)
        elif not current:
            return
        if injector is None:
            injector = models.TaskDetail(INJECTOR_NAME)
            injector.state = states.SUCCESS
            self.flow_detail.add(injector)
            created.append(injector)
        injector.results = dict(storage.injected)
        self._injector = injector
        if injector not in created:
            if self._fast:
                self._conn.apply(atom_updates=[(injector, ("results",))])
            else:
                self._conn.update_atom_details(injector)

    # -- saving ----------------------------------------------------------------------------------
    def save(self, engine: Any, transitions: list[tuple[int, int, int]], values: Any = None) -> None:
        """Writes the atoms these transitions touched (each once), in one transaction when the
        backend can (the SQLite fast path writes only the changed columns of those rows)."""
        touched = dict.fromkeys(atom for atom, _, _ in transitions)
        storage = engine.storage
        for atom in touched:
            self._update_detail(engine, storage, atom)
        if self._fast:
            self._conn.apply(atom_updates=[(self.details[atom], _FIELDS) for atom in touched])
        else:
            for atom in touched:
                self._conn.update_atom_details(self.details[atom])

    def save_atom(self, engine: Any, atom: int) -> None:
        self.save(engine, [(atom, 0, 0)])

    def _update_detail(self, engine: Any, storage: Any, atom: int) -> None:
        ad = self.details[atom]
        state = storage.states[atom]
        ad.state = STATE_NAMES[state]
        ad.intention = INTENTION_NAMES[storage.intentions[atom]]
        if engine._is_retry(atom):
            ad.results = [list(entry) for entry in storage.retry_histories.get(atom, [])]
        else:
            ad.results = storage.results[atom]
        ad.failure = storage.failures.get(atom)
        ad.revert_results = storage.revert_results.get(atom)
        ad.revert_failure = storage.revert_failures.get(atom)
        if not engine._is_retry(atom):
            ad.meta["progress"], details = storage.progress_of(atom)
            if details is not None:
                ad.meta["progress_details"] = details

    def save_flow_state(self, engine: Any, state: str) -> None:
        fd = self.flow_detail
        fd.state = state
        if self._fast:
            self._conn.apply(flow_state=(fd.uuid, state))
        else:
            self._conn.update_flow_details(fd)

    # -- ownership -------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Takes the flow detail's lease, or raises naming its owner (backends with leases only).

        A lease left by a process of this host that no longer exists is taken over at once: the
        process is gone, so nothing can still be running the flow.
        """
        if not hasattr(self._conn, "acquire_lease"):
            return
        fd = self.flow_detail
        try:
            self._conn.acquire_lease(fd.uuid, self.owner, self.lease_seconds)
        except exceptions.ExecutionFailure:
            lease = self._conn.get_lease(fd.uuid)
            holder = lease[0] if lease else None
            if holder is None or not _dead_local_owner(holder):
                raise
            self._conn.release_lease(fd.uuid, holder)
            self._conn.acquire_lease(fd.uuid, self.owner, self.lease_seconds)
        self._leased = True
        self._renew_at = time.monotonic() + self.lease_seconds / 3

    def keep_lease(self) -> None:
        """Renews the lease when a third of it has passed (cheap to call on every step)."""
        if self._leased and time.monotonic() >= self._renew_at:
            self._conn.renew_lease(self.flow_detail.uuid, self.owner, self.lease_seconds)
            self._renew_at = time.monotonic() + self.lease_seconds / 3

    def release(self) -> None:
        if self._leased:
            self._leased = False
            self._conn.release_lease(self.flow_detail.uuid, self.owner)

    # -- metadata (listeners) --------------------------------------------------------------------
    def atom_meta(self, atom: int) -> dict[str, Any]:
        return self.details[atom].meta

    def save_atom_meta(self, atom: int) -> None:
        """Writes one atom detail's meta column only."""
        ad = self.details[atom]
        if self._fast:
            self._conn.apply(atom_updates=[(ad, ("meta",))])
        else:
            self._conn.update_atom_details(ad)

    def save_flow_meta(self) -> None:
        """Writes the flow detail's own row (not its atoms) where the backend can."""
        fd = self.flow_detail
        if hasattr(self._conn, "update_flow_row"):
            self._conn.update_flow_row(fd)
        else:
            self._conn.update_flow_details(fd)

    def close(self) -> None:
        self._conn.close()


def _interrupted(name: str) -> Any:
    """The ``result`` a revert receives for an atom whose execute a crash interrupted."""
    from ferroflow.types.failure import Failure

    try:
        raise exceptions.ExecutionFailure(
            f"the execute of atom {name!r} was interrupted (its engine stopped while it ran); "
            "it may have had effects, so it is being reverted"
        )
    except exceptions.ExecutionFailure:
        return Failure()


def _version(atom: Any) -> str:
    version = atom.version
    if isinstance(version, tuple | list):
        return ".".join(str(part) for part in version)
    return str(version)


__all__ = ["Persister", "attach", "check_serializable"]
