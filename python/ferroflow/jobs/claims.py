"""A job's claim: a lease with a fencing epoch, renewed by the process's lease heartbeat.

The same daemon thread that renews flow leases (`ferroflow.persistence.ownership`) renews every
claim this process holds each third of its expiry. A claim whose owner dies is not renewed and
expires: another conductor then claims the job (the epoch goes up), and the old owner's
consume, abandon or trash (which carry the epoch they claimed with) are refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ferroflow import exceptions
from ferroflow.persistence import ownership

__all__ = ["DEFAULT_CLAIM_EXPIRY", "Claim"]

LOG = logging.getLogger(__name__)

#: Seconds a claim lasts without renewal (renewed every third of it).
DEFAULT_CLAIM_EXPIRY = 6.0


class Claim:
    """``owner``'s hold on job ``job_uuid`` at ``epoch`` for ``expiry`` seconds; renewed while held.

    ``renewer(job_uuid, owner, epoch, expiry)`` extends it on the board (raising
    :class:`~ferroflow.exceptions.LeaseLost` when the claim is gone). Once lost, `lost` is set and
    the ``on_lost`` callbacks run (on the heartbeat thread: they should only set flags or ask an
    engine to suspend).
    """

    def __init__(
        self, job_uuid: str, owner: str, epoch: int, expiry: float, renewer: Callable[[str, str, int, float], None]
    ) -> None:
        self.job_uuid = job_uuid
        self.owner = owner
        self.epoch = epoch
        self.seconds = expiry
        self._renewer = renewer
        self.lost: exceptions.LeaseLost | None = None
        self._renewed = time.monotonic()
        self._callbacks: list[Callable[[Claim], None]] = []
        self._lock = threading.Lock()

    @property
    def interval(self) -> float:
        """Seconds between renewals: a third of the expiry."""
        return self.seconds / 3

    def start(self) -> None:
        """Hands the claim to the heartbeat."""
        ownership._HEARTBEAT.add(self)  # type: ignore[arg-type]

    def stop(self) -> None:
        """No more renewals (the claim was consumed, abandoned or trashed)."""
        ownership._HEARTBEAT.discard(self)  # type: ignore[arg-type]

    def on_lost(self, callback: Callable[[Claim], None]) -> None:
        """Calls ``callback(claim)`` when the claim is lost (at once if it already is)."""
        with self._lock:
            if self.lost is None:
                self._callbacks.append(callback)
                return
        callback(self)

    def renew(self) -> bool:
        """Extends the claim (the heartbeat calls this); False when it failed."""
        if self.lost is not None:
            return False
        try:
            self._renewer(self.job_uuid, self.owner, self.epoch, self.seconds)
        except exceptions.LeaseLost as exc:
            self._lose(exc)
            return False
        except Exception as exc:  # the board unreachable: retried sooner, lost once expired
            silent = time.monotonic() - self._renewed
            if silent >= self.seconds:
                self._lose(
                    exceptions.LeaseLost(
                        f"'{self.owner}' could not renew its claim on job {self.job_uuid} for {silent:.1f} s "
                        f"(longer than the {self.seconds:g} s expiry; last error: {exc}); another conductor may "
                        "have claimed it"
                    )
                )
            else:
                LOG.warning("renewing the claim on job %s failed (retrying): %s", self.job_uuid, exc)
            return False
        self._renewed = time.monotonic()
        return True

    def _lose(self, exc: exceptions.LeaseLost) -> None:
        LOG.warning("%s", exc)
        with self._lock:
            self.lost = exc
            callbacks, self._callbacks = self._callbacks, []
        self.stop()
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                LOG.exception("a claim-lost callback of job %s failed", self.job_uuid)

    def __repr__(self) -> str:
        return f"<Claim job={self.job_uuid} owner={self.owner!r} epoch={self.epoch}>"
