"""Ownership of a flow detail: a lease with a fencing epoch, renewed by a heartbeat.

An engine that runs a flow detail *owns* it. Every backend keeps the same three facts per flow
detail — the owner's id, when its lease ends, and the lease's *epoch* — and offers the same calls
(``acquire_lease``, ``renew_lease``, ``release_lease``, ``get_lease`` and ``fence`` on a
connection; the SQLite store keeps them in its ``flowdetails`` row, the record backends
(``dir://``, ``memory://``) in a lease record beside the flow detail's, under their write lock):

- **Acquire.** A lease is taken when the flow is unowned, its lease ended, or the owner already
  holds it. Taking it from someone else raises the epoch. A lease left by a process of this host
  that no longer exists is taken over at once (nothing can still be running the flow).
- **Heartbeat.** One daemon thread per process renews every lease it holds each third of the
  lease's length, whatever the engine is doing: a long atom, or an atom busy in Python (the
  thread gets the interpreter at least every ``sys.getswitchinterval()``), does not let it
  expire. An atom in a C extension that holds the GIL for longer than the lease does; so does a
  paused process (SIGSTOP, a frozen VM) or one cut off from its store.
- **Fencing.** Every write the engine makes for an owned flow carries ``(flow, owner, epoch)``
  and the backend checks it inside the same transaction (the same lock, for record backends):
  once another owner took the lease, a write of the old owner is refused whole with
  :class:`~ferroflow.exceptions.LeaseLost`. So a paused owner that wakes up after a takeover
  writes nothing: the heartbeat finds the lease gone, the engine stops before it starts or saves
  another atom, and an atom that was running when it lost the lease may have run its
  ``execute`` (at-least-once, as after a crash) but its outcome is never saved.
- **Release.** Done when the run ends or when ``prepare`` is refused; a lease is never released
  for another owner.

Lease length: ``DEFAULT_LEASE_SECONDS`` (30 s), per engine with ``engines.load(...,
lease_seconds=...)`` or ``$FERROFLOW_LEASE_SECONDS``. A takeover after a crash of another host
waits for the lease to end; a shorter lease means faster takeovers and more renewals.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from typing import Any

from ferroflow import exceptions
from ferroflow.utils import forks

__all__ = ["DEFAULT_LEASE_SECONDS", "Lease", "dead_local_owner", "lease_seconds_from", "new_owner_id"]

LOG = logging.getLogger(__name__)

#: How long an owner keeps a flow detail without renewing (renewed every third of it).
DEFAULT_LEASE_SECONDS = 30.0
LEASE_ENV = "FERROFLOW_LEASE_SECONDS"


_HOST: tuple[int, str] | None = None


def new_owner_id() -> str:
    """A unique owner id, ``host:pid:token`` (the host and pid let a dead local owner be seen)."""
    global _HOST
    pid = os.getpid()
    if _HOST is None or _HOST[0] != pid:  # (asked once per process: it is a system call)
        _HOST = (pid, _hostname())
    return f"{_HOST[1]}:{pid}:{uuid.uuid4().hex[:12]}"


def _hostname() -> str:
    """This host's name, as `socket.gethostname` gives it (`os.uname` where there is one: the
    socket module is not worth loading at every start for it)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def lease_seconds_from(value: Any = None) -> float:
    """The lease length: ``value``, else ``$FERROFLOW_LEASE_SECONDS``, else the default."""
    if value is None:
        value = os.environ.get(LEASE_ENV) or DEFAULT_LEASE_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"lease_seconds must be a number of seconds, got {value!r}") from None
    if not (0 < seconds < float("inf")):
        raise ValueError(f"lease_seconds must be positive and finite, got {value!r}")
    return seconds


def dead_local_owner(owner: str) -> bool:
    """True for an owner id ``host:pid:token`` of this host whose process no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _hostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    """One owner's hold on one flow detail through a backend connection.

    :meth:`acquire` takes the lease and fences the connection (its writes for this flow then
    carry the owner and epoch); the process's heartbeat renews it; :meth:`check` raises
    :class:`~ferroflow.exceptions.LeaseLost` once the heartbeat found it lost; :meth:`release`
    gives it up. A lease dropped without release is released when it is garbage-collected.
    """

    def __init__(self, conn: Any, flow_uuid: str, seconds: float | None = None, owner: str | None = None) -> None:
        self.conn = conn
        self.flow_uuid = flow_uuid
        self.seconds = lease_seconds_from(seconds)
        self.owner = owner or new_owner_id()
        self.epoch: int | None = None
        #: Set by the heartbeat when the lease is gone: raised by :meth:`check`.
        self.lost: exceptions.LeaseLost | None = None
        self._renewed = 0.0  # monotonic time of the last successful acquire / renewal
        self._finalizer: weakref.finalize | None = None

    @property
    def held(self) -> bool:
        return self.epoch is not None

    @property
    def fence(self) -> tuple[str, str, int] | None:
        """``(flow uuid, owner, epoch)`` that writes carry, or None when not held."""
        return None if self.epoch is None else (self.flow_uuid, self.owner, self.epoch)

    def acquire(self) -> None:
        """Takes the lease (or extends it, if held), or raises naming its owner.

        :raises InvalidState: another live owner holds it.
        """
        conn, flow_uuid = self.conn, self.flow_uuid
        try:
            epoch = conn.acquire_lease(flow_uuid, self.owner, self.seconds)
        except exceptions.InvalidState:
            lease = conn.get_lease(flow_uuid)
            holder = lease[0] if lease else None
            if holder is None or not dead_local_owner(holder):
                raise
            conn.release_lease(flow_uuid, holder)
            epoch = conn.acquire_lease(flow_uuid, self.owner, self.seconds)
        self.epoch = int(epoch)
        self.lost = None
        self._renewed = time.monotonic()
        conn.fence(self.fence)
        if self._finalizer is None:
            self._finalizer = weakref.finalize(self, _release_quietly, conn, flow_uuid, self.owner)
        _HEARTBEAT.add(self)

    def check(self) -> None:
        """Raises :class:`~ferroflow.exceptions.LeaseLost` if the heartbeat found the lease lost."""
        lost = self.lost
        if lost is not None:
            raise lost

    def renew(self) -> bool:
        """Extends the lease by its length from now (the heartbeat calls this); False when the
        renewal failed (the lease is then lost, or retried soon)."""
        epoch = self.epoch
        if epoch is None:
            return False
        try:
            self.conn.renew_lease(self.flow_uuid, self.owner, epoch, self.seconds)
        except exceptions.LeaseLost as exc:
            self._lose(exc)
            return False
        except Exception as exc:  # the store unreachable, busy...: retried on the next beat
            silent = time.monotonic() - self._renewed
            if silent >= self.seconds:
                self._lose(
                    exceptions.LeaseLost(
                        f"'{self.owner}' could not renew the lease of flow detail '{self.flow_uuid}' for "
                        f"{silent:.1f} s (longer than the {self.seconds:g} s lease; last error: {exc}); another "
                        "owner may have taken the flow over, so this engine stops"
                    )
                )
            else:
                LOG.warning("renewing the lease of flow detail %s failed (retrying): %s", self.flow_uuid, exc)
            return False
        self._renewed = time.monotonic()
        return True

    def _lose(self, exc: exceptions.LeaseLost) -> None:
        LOG.error("%s", exc)
        self.lost = exc
        self.epoch = None
        _HEARTBEAT.discard(self)

    def release(self) -> None:
        """Gives the lease up (nothing when not held; never another owner's)."""
        if self._forget():
            self.conn.release_lease(self.flow_uuid, self.owner)

    def released(self) -> None:
        """The store gave the lease up with the holder's last write (`apply(...,
        release_lease=True)`): it is forgotten here, as `release` would."""
        self._forget()

    def _forget(self) -> bool:
        """Stops renewing and fencing; whether the lease was held until then."""
        if self.epoch is None and self._finalizer is None:
            return False  # (never taken, or forgotten already: `released` after the run's last write)
        _HEARTBEAT.discard(self)
        self.conn.fence(None)
        if self._finalizer is not None:  # (also after a loss: there is nothing left to release then)
            self._finalizer.detach()
            self._finalizer = None
        if self.epoch is None:
            return False
        self.epoch = None
        return True

    @property
    def interval(self) -> float:
        """Seconds between renewals: a third of the lease."""
        return self.seconds / 3


def _release_quietly(conn: Any, flow_uuid: str, owner: str) -> None:
    """Releases a lease whose holder was dropped without releasing it (best effort)."""
    _HEARTBEAT.forget_dead()
    try:
        conn.release_lease(flow_uuid, owner)
    except Exception:  # the store may already be closed at interpreter exit
        LOG.debug("releasing the lease of %s at collection failed", flow_uuid, exc_info=True)


class _Heartbeat:
    """One daemon thread renewing every lease of this process when a third of it has passed.

    Leases are held weakly: an engine dropped without releasing is not kept alive by it.
    """

    def __init__(self) -> None:
        # (`add` and `discard` take the lock itself: a Condition's own enter and exit are Python
        # calls, and every run makes both. Re-entrant: a collection while it is held may run a
        # dropped lease's finalizer, which comes back here through `forget_dead`.)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._due: dict[int, tuple[float, weakref.ref[Lease]]] = {}
        self._thread: threading.Thread | None = None
        self._pid = forks.pid()
        #: When the thread wakes next by itself (monotonic): a lease due later needs no wake-up
        #: (many short runs would otherwise switch to the thread at each start).
        self._wakes_at = 0.0

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._ensure_thread()
            at = time.monotonic() + lease.interval
            self._due[id(lease)] = (at, weakref.ref(lease))
            if at < self._wakes_at:
                self._cond.notify()

    def discard(self, lease: Lease) -> None:
        with self._lock:
            entry = self._due.get(id(lease))
            if entry is not None and entry[1]() is lease:
                del self._due[id(lease)]

    def forget_dead(self) -> None:
        with self._cond:
            for key in [key for key, (_, ref) in self._due.items() if ref() is None]:
                del self._due[key]

    def _ensure_thread(self) -> None:
        if self._pid != forks.pid():  # forked: the parent's thread is not ours, nor its leases
            self._due.clear()
            self._thread = None
            self._pid = forks.pid()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="ferroflow-lease-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [(key, ref) for key, (at, ref) in self._due.items() if at <= now]
                if not due:
                    wait = max(min((at for at, _ in self._due.values()), default=now + 60.0) - now, 0.001)
                    self._wakes_at = now + wait
                    self._cond.wait(timeout=wait)
                    self._wakes_at = 0.0
                    continue
            for key, ref in due:
                lease = ref()
                if lease is None:
                    with self._cond:
                        self._due.pop(key, None)
                    continue
                renewed = lease.renew()
                with self._cond:
                    entry = self._due.get(key)
                    if entry is not None and entry[1]() is lease:
                        # After a failed renewal, retry sooner (the lease may still be saved).
                        step = lease.interval if renewed else lease.interval / 3
                        self._due[key] = (time.monotonic() + step, ref)
                del lease


_HEARTBEAT = _Heartbeat()
