"""Resuming across code changes: the plan, rewinds, pending reverts and orphan reverts.

`ResumptionMixin` is mixed into `ActionEngine`; the engine calls its hooks at fixed points
(`_before_run` once the flow is prepared, `_after_loop` when nothing more is ready) so that this
concern stays in one module. Matching saved details to atoms, version and provider policies and
migrations are applied when the engine prepares (`ferroflow.engines.persist.Persister.prepare`);
see `ferroflow.migrations` for the policies and `ferroflow.engines.resume_plan` for the plan.

Reverts that must happen before a run — a rewind, atoms whose version changed under
``revert_then_rerun`` — are first recorded in the flow detail's meta (``pending_reverts``), then
done one by one (each persisted REVERTING, then REVERTED), then the atoms are set to run again and
the record is removed. A process killed half way finds the record on resume and finishes the job:
an atom already REVERTED is not reverted again, one left REVERTING is (its revert was interrupted).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

from ferroflow import exceptions, states
from ferroflow.engines import resume_plan, revert_refs
from ferroflow.engines.storage import INTENTION_CODES, STATE_CODES
from ferroflow.migrations import OrphanRevertError

#: The engine's action kind for a revert (``engine._call``).
_REVERT_KIND = 1
_REVERTING = STATE_CODES[states.REVERTING]
_REVERT_INTENTION = INTENTION_CODES[states.REVERT]
_EXECUTED = frozenset({STATE_CODES[states.SUCCESS], STATE_CODES[states.FAILURE]})
#: Orphan states a rollback reverts: completed, a revert that was interrupted, or one that failed
#: (its code may have been restored since: nothing else would ever retry it).
_ORPHANS_TO_REVERT = frozenset({states.SUCCESS, states.REVERTING, states.REVERT_FAILURE})


class ResumptionMixin:
    """Public resumption methods (`plan`, `rewind`, `orphans`) and the engine's hooks."""

    _persist: Any
    _flow_detail: Any
    _scheduler: Any
    _storage: Any

    # -- public --------------------------------------------------------------------------------
    def plan(self, rewind_to: str | None = None) -> resume_plan.ResumePlan:
        """What resuming this flow does, per atom and per saved detail, computed before anything
        runs and without writing anything (see `ferroflow.engines.resume_plan`).

        :param rewind_to: show what ``rewind(to=rewind_to)`` would do instead of a plain resume.
        :raises MigrationError: the migrations given when loading do not fit the saved details.
        """
        return resume_plan.compute(self, rewind_to)

    def rewind(self, to: str, timeout: float | None = None) -> None:
        """Reverts (latest first, each with its saved result) the atoms that come after atom ``to``
        in the flow, then runs them again with the current code (and the rest of the flow).

        The reverts to do are recorded in the flow detail first, so a process killed during the
        rewind finishes it when the flow is resumed (nothing is reverted twice).
        """
        self.compile()  # type: ignore[attr-defined]
        self.prepare()  # type: ignore[attr-defined]
        self._storage.index_of(to)  # NotFound naming the flow when there is no such atom
        record = resume_plan.rewind_reverts(self, to)
        pending = self._pending_reverts()
        if pending:  # an earlier rewind was interrupted: finish it in the same pass
            record = {
                "reason": record["reason"],
                "revert": [*pending["revert"], *(n for n in record["revert"] if n not in pending["revert"])],
                "rerun": [*pending["rerun"], *(n for n in record["rerun"] if n not in pending["rerun"])],
            }
        record["requested_at"] = datetime.datetime.now(datetime.UTC).isoformat()
        self._set_pending_reverts(record)
        self.run(timeout=timeout)  # type: ignore[attr-defined]

    def orphans(self) -> list[str]:
        """Names of the saved details whose atom is no longer in the flow, after ``prepare()``
        (details a migration replaced are not orphans: the atoms that took their place are
        reverted instead)."""
        return [ad.name for ad in self._persist.orphans] if self._persist is not None else []

    # -- hooks ---------------------------------------------------------------------------------
    def _before_run(self) -> None:
        """Does the reverts recorded as pending, then sets their atoms to run again."""
        record = self._pending_reverts()
        if not record:
            return
        storage, scheduler = self._storage, self._scheduler
        known = _has_atom(storage)
        to_revert = [storage.index_of(name) for name in record.get("revert", ()) if known(name)]
        to_rerun = [storage.index_of(name) for name in record.get("rerun", ()) if known(name)]
        for index in to_revert:
            if storage.states[index] not in _EXECUTED:
                continue  # never ran, or already reverted: nothing to undo
            self._apply([(index, _REVERTING, _REVERT_INTENTION)])  # type: ignore[attr-defined]
            with self._recorded_revert_arguments(index):
                ok, value = self._call(index, _REVERT_KIND)  # type: ignore[attr-defined]
            if ok:
                storage.revert_results[index] = value
            else:
                storage.revert_failures[index] = value
            self._apply(scheduler.reverted(index, ok), (index, value))  # type: ignore[attr-defined]
            if not ok:
                return  # the flow halts (FAILURE) and raises this revert failure; the record stays
        again = list(dict.fromkeys(to_revert + to_rerun))
        self._apply(scheduler.rerun(again))  # type: ignore[attr-defined]
        if self._persist is not None:
            self._persist.save_versions(self, again)
        self._set_pending_reverts(None)

    def _after_loop(self, outcome: str | None) -> str | None:
        """On a rollback (REVERTED), reverts the completed orphans through their revert
        references, latest saved first; an orphan that cannot be reverted — its reference does
        not resolve, or its revert fails — is saved REVERT_FAILURE with the error as its revert
        failure (what ``ferroflow show`` and ``plan`` report) and stops the rollback (the flow ends
        FAILURE) with `OrphanRevertError` naming it. A later rollback tries it again."""
        if outcome != states.REVERTED or self._persist is None:
            return outcome
        persister = self._persist
        failures = self._storage.get_execute_failures()
        trusted = None
        flow = f"{getattr(self._flow_detail, 'name', None)!r} ({getattr(self._flow_detail, 'uuid', None)})"
        for ad in reversed(persister.orphans):
            if ad.state not in _ORPHANS_TO_REVERT:
                continue
            reference = persister.resume_record(ad).get("revert")
            try:
                trusted = trusted or revert_refs.trust_for(self)
                revert = revert_refs.rebuild(ad.name, reference, trusted, flow)
            except OrphanRevertError as exc:
                ad.state, ad.intention = states.REVERT_FAILURE, states.REVERT
                ad.revert_failure = _failure_of(exc)
                persister.save_orphan(ad)
                self._stop(exc)
            ad.state, ad.intention = states.REVERTING, states.REVERT
            persister.save_orphan(ad)
            ok, value = revert(ad.results, failures)
            if ok:
                ad.state, ad.revert_results, ad.revert_failure = states.REVERTED, value, None
                persister.save_orphan(ad)
                continue
            ad.state, ad.revert_failure = states.REVERT_FAILURE, value
            persister.save_orphan(ad)
            self._stop(OrphanRevertError(ad.name, f"its revert failed: {value.exception_str}", cause=value.exception))
        return outcome

    @contextlib.contextmanager
    def _recorded_revert_arguments(self, index: int) -> Iterator[None]:
        """While a pending revert runs: when its arguments can no longer be looked up (their
        providers changed with the code and have not run yet), the arguments its revert got when
        the atom completed (its resume record) are given to it — a revert undoes what ran, with
        what it ran with."""
        storage = self._storage
        try:
            self._arguments(index, revert=True)  # type: ignore[attr-defined]
        except exceptions.NotFound:
            pass
        else:
            yield
            return
        recorded = {}
        if self._persist is not None and self._persist._records:
            reference = self._persist._conn.resume_record(storage.atom_uuid(index))
            recorded = (revert_refs.decode_record(reference).get("revert") or {}).get("revert_kwargs") or {}
        atom = self.compilation.atoms[index]  # type: ignore[attr-defined]
        by_storage = {atom.revert_rebind.get(arg, arg): value for arg, value in recorded.items()}
        if not by_storage or any(isinstance(v, dict) and "$callable" in v for v in by_storage.values()):
            yield  # nothing recorded (the lookup fails as it would have)
            return
        injected = storage._atom_injected
        before = injected.get(atom.name)
        injected[atom.name] = {**by_storage, **(before or {})}
        try:
            yield
        finally:
            if before is None:
                injected.pop(atom.name, None)
            else:
                injected[atom.name] = before

    def _stop(self, error: Exception) -> None:
        """Ends the run FAILURE with ``error``."""
        self._change_flow_state(states.FAILURE)  # type: ignore[attr-defined]
        raise error

    def _hook_state(self) -> dict[str, Any]:
        return {}

    # -- the pending reverts record --------------------------------------------------------------
    def _pending_reverts(self) -> dict[str, Any] | None:
        meta = getattr(self._flow_detail, "meta", None)
        if meta is None:
            return getattr(self, "_local_pending_reverts", None)
        return resume_plan.pending_reverts(meta)

    def _set_pending_reverts(self, record: dict[str, Any] | None) -> None:
        meta = getattr(self._flow_detail, "meta", None)
        if meta is None:
            self._local_pending_reverts = record
            return
        if record is None:
            if meta.pop(resume_plan.PENDING_REVERTS, None) is None:
                return
        else:
            meta[resume_plan.PENDING_REVERTS] = record
        if self._persist is not None:
            self._persist.write_flow_meta()


def _failure_of(error: BaseException) -> Any:
    """``error`` as the `Failure` saved as a detail's revert failure."""
    from ferroflow.types.failure import Failure

    return Failure.from_exception(error)


def _has_atom(storage: Any) -> Any:
    def known(name: str) -> bool:
        try:
            storage.index_of(name)
        except exceptions.NotFound:
            return False
        return True

    return known
