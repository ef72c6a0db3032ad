"""Engine ↔ persistence backend: saved details in, every transition out.

`attach` resolves the backend and the flow detail when an engine is loaded. `Persister.prepare`
matches saved atom details to compiled atoms by name (new atoms get new details; details whose
atom disappeared are kept untouched as orphans) and restores states, results and failures into the
engine. `Persister.save` writes the atoms a batch of transitions touched — only those rows — before
the engine notifies anyone or starts anything that depends on them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ferroflow import _core, codec, exceptions, migrations, states
from ferroflow.engines import resume_plan, revert_refs
from ferroflow.engines.storage import INJECTOR_NAME, INTENTION_CODES, INTENTION_NAMES, STATE_CODES, STATE_NAMES
from ferroflow.persistence import columns, models, ownership
from ferroflow.persistence.saved import SavedAtoms, damaged

LOG = logging.getLogger(__name__)
_TASK, _RETRY = 0, 1
_SUCCESS_CODE = STATE_CODES[states.SUCCESS]
_RUNNING_CODE = STATE_CODES[states.RUNNING]
_RUNNING, _SUCCESS, _EXECUTE = states.RUNNING, states.SUCCESS, states.EXECUTE
_EXECUTE_CODE = INTENTION_CODES[states.EXECUTE]
_FIELDS = ("state", "intention", "results", "failure", "revert_results", "revert_failure", "meta")
# The columns a transition into each state can change (a state's own data plus progress in meta);
# an atom touched several times in one batch writes the union. PENDING (a reset) clears everything.
_STEP = ("state", "intention", "meta")
_FIELDS_BY_STATE: dict[int, frozenset[str]] = {
    STATE_CODES[states.PENDING]: frozenset(_FIELDS),
    # (no meta: progress is 0.0 until done, which a reload derives from the state)
    STATE_CODES[states.RUNNING]: frozenset(("state", "intention")),
    STATE_CODES[states.SUCCESS]: frozenset((*_STEP, "results", "failure")),
    STATE_CODES[states.FAILURE]: frozenset((*_STEP, "results", "failure")),
    STATE_CODES[states.REVERTING]: frozenset(_STEP),
    # (results too: a retry's history is emptied when it is reverted)
    STATE_CODES[states.REVERTED]: frozenset((*_STEP, "results", "revert_results", "revert_failure")),
    STATE_CODES[states.REVERT_FAILURE]: frozenset((*_STEP, "results", "revert_results", "revert_failure")),
    STATE_CODES[states.IGNORE]: frozenset(("state", "intention")),
    STATE_CODES[states.RETRYING]: frozenset((*_STEP, "results")),
}
_DONE = frozenset({STATE_CODES[states.SUCCESS], STATE_CODES[states.REVERTED]})
#: The meta of most atoms, as JSON text: only the progress their state implies.
_PROGRESS_METAS = {0.0: '{"progress":0.0}', 1.0: '{"progress":1.0}'}
_EMPTY_META = "{}"
_decode = columns.decode


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


def attach_memory_backend(engine: Any) -> Any:
    """The memory backend of an engine loaded without a backend, made when the program first asks
    for ``engine.storage.backend`` (TaskFlow's storage keeps such an engine in a
    ``MemoryBackend({'deep_copy': False})``). It holds the engine's flow detail (outside any book)
    and, once prepared, a detail per atom as the engine has it; the engine writes every change to
    it from then on. Engines never asked keep running without one (their fast path)."""
    from ferroflow.persistence.backends import impl_memory

    storage = engine.storage
    backend = impl_memory.MemoryBackend({"deep_copy": False})
    fd = engine._flow_detail
    if fd is None:
        fd = models.FlowDetail(storage.flow_name, uuid=storage.flow_uuid)
    fd.meta.update(storage.flow_meta)  # what the program set before asking
    with backend.get_connection() as conn:
        conn.update_flow_details(fd, ignore_missing=True)
    persister = Persister(backend, fd, engine.options.get("lease_seconds"))
    atom_metas = dict(storage._atom_meta)
    engine._backend, engine._flow_detail = backend, fd
    if engine._prepared:
        persister.prepare(engine)
        assert persister.details is not None  # (a memory backend keeps models)
        for index, meta in atom_metas.items():
            persister.details[index].meta.update(meta)
        persister.save(engine, [(index, STATE_CODES[states.PENDING], 0) for index in range(len(persister.details))])
        state = storage.get_flow_state()
        if state is not None:
            persister.save_flow_state(engine, state)
        # Asked mid-run: the loop running may not write what follows; all is written at its end.
        persister.resave_at_run_end = state not in states.RUN_ENDS
    engine._persist = persister
    storage.attach_meta_writer(persister, fd.meta)
    return backend


def check_serializable(name: str, value: Any) -> None:
    """Raises a clear TypeError when ``value`` cannot be saved by a JSON backend."""
    try:
        codec.JSON.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"result of atom {name!r} cannot be saved: {exc}; return plain data (dict/list/str/int/float/bool/None)"
        ) from None


class _DetailsFromStore(dict):
    """The atom details of a flow detail (its ``_atomdetails_by_id``), read from the backend when
    first used: iterated, counted, searched or added to. Until then it holds nothing and costs
    nothing. A backend that can no longer be read (closed) leaves it empty, with a warning."""

    def __init__(self, backend: Any, flow_uuid: str) -> None:
        super().__init__()
        self._source: tuple[Any, str] | None = (backend, flow_uuid)

    @property
    def pending(self) -> bool:
        return self._source is not None

    def _fill(self) -> None:
        source, self._source = self._source, None
        if source is None:
            return
        backend, flow_uuid = source
        try:
            with backend.get_connection() as conn:
                details = list(conn.get_atoms_for_flow(flow_uuid))
        except Exception as exc:  # (a flow detail being looked at must not raise)
            LOG.warning("atom details of flow detail %s could not be read from its backend: %s", flow_uuid, exc)
            return
        for ad in details:
            dict.setdefault(self, ad.uuid, ad)

    def __len__(self) -> int:
        self._fill()
        return dict.__len__(self)

    def __iter__(self) -> Iterator[str]:
        self._fill()
        return dict.__iter__(self)

    def __contains__(self, key: object) -> bool:
        self._fill()
        return dict.__contains__(self, key)

    def __getitem__(self, key: str) -> Any:
        self._fill()
        return dict.__getitem__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._fill()
        dict.__setitem__(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        self._fill()
        return dict.get(self, key, default)

    def keys(self) -> Any:
        self._fill()
        return dict.keys(self)

    def values(self) -> Any:
        self._fill()
        return dict.values(self)

    def items(self) -> Any:
        self._fill()
        return dict.items(self)

    def __repr__(self) -> str:
        return "<atom details, not read yet>" if self.pending else dict.__repr__(self)


class Persister:
    """Keeps one flow detail and its atom details in step with the engine."""

    def __init__(self, backend: Any, flow_detail: Any, lease_seconds: float | None = None) -> None:
        self.backend = backend
        self.flow_detail = flow_detail
        #: A model per compiled atom, for backends that store models; None on the fast path
        #: (SQLite), where the engine's arrays are the only copy of the atoms' data.
        self.details: list[models.AtomDetail] | None = []
        #: Per compiled atom, the version its saved detail records.
        self._versions: list[str | None] = []
        #: Fast path: the meta of atoms whose meta holds more than the progress their state implies.
        self._metas: dict[int, dict[str, Any]] = {}
        #: Saved metas decoded, by their text (atoms share a few): engines resuming many flows
        #: built alike share one (`ferroflow.engines.many`).
        self.meta_cache: dict[str, dict[str, Any]] = {}
        self._conn = backend.get_connection()
        self._fast = hasattr(self._conn, "apply")
        #: Whether the fast path's ``apply`` takes ``release_lease`` and ``grouped`` (SQLite).
        self._run_options = getattr(self._conn, "apply_run_options", False)
        self._injector: models.TaskDetail | None = None
        #: Saved details without an atom that a rollback must revert (see `resumption`).
        self.orphans: list[models.AtomDetail] = []
        #: Indexes of the atoms saved RUNNING (the engine stopped while they ran), found by `prepare`.
        self.interrupted: list[int] = []
        # Resume records (who provided an atom's inputs, how to revert it once its code is
        # gone) are kept beside the details by the backends that can (all built-in ones: the
        # SQLite store in a column, record backends in the atom's record), never in their meta.
        self._records = hasattr(self._conn, "resume_summaries")
        self._pending_records: list[tuple[str, str]] = []
        #: Per compiled atom, what its saved result lacks (`resume_plan.misfits`), from prepare.
        self._misfits: dict[int, str] = {}
        #: Fast path: whether atoms were written since the user's flow detail was last brought up
        #: to date (`_sync_user_detail`).
        self._unsynced = False
        #: Fast path: fill the user's flow detail even when it holds no atom detail (`load`
        #: created it in the caller's book).
        self.fill_user_detail = False
        #: Write every atom when the run stops (`attach_memory_backend` during a run).
        self.resave_at_run_end = False
        self._owner: str | None = None  # (see `owner`)
        self.lease_seconds = ownership.lease_seconds_from(lease_seconds)
        self.lease: ownership.Lease | None = None
        #: The flow detail was read with its lease, on this persister's connection (`adopt`):
        #: prepare takes its state and meta as they are instead of reading them again.
        self._read_with_lease = False

    @property
    def owner(self) -> str:
        """The owner id this engine takes its flow's lease as: made when first asked (`resume_many`
        gives all its engines one, so most never make their own)."""
        if self._owner is None:
            self._owner = ownership.new_owner_id()
        return self._owner

    @owner.setter
    def owner(self, value: str) -> None:
        self._owner = value

    def adopt(self, lease: ownership.Lease) -> None:
        """Takes ``lease``, held, of this persister's flow detail, which was read with it (by
        ``lease.conn``, a connection of this persister's backend, right after acquiring it: nothing
        but its holder can have changed the flow since): the lease fences this persister's writes,
        and prepare uses the flow detail's state and meta as read. (`ferroflow.engines.many` leases a
        flow before reading it, so its row is read once.)"""
        if not lease.held or lease.flow_uuid != self.flow_detail.uuid:
            raise ValueError(f"a persister adopts only a held lease of its own flow detail {self.flow_detail.uuid!r}")
        self._conn, self.lease, self._owner = lease.conn, lease, lease.owner
        self._read_with_lease = True

    # -- prepare ---------------------------------------------------------------------------------
    def prepare(self, engine: Any) -> None:
        """Binds the compiled atoms to the saved details and restores their states.

        Before anything is restored, pending migrations are applied and version / provider
        policies decided (`ferroflow.migrations`): everything this writes — migrated, created and
        version-updated details, the flow meta recording it — is one transaction, written only
        once nothing can be refused any more.

        With a backend that reads its rows as columns (SQLite), no model is made per atom: saved
        payloads are decoded straight into the engine's arrays, new details are inserted as rows,
        and models are made only for the few details a rare path needs (failures, retries,
        version policies, migrations, orphans).
        """
        fd = self.flow_detail
        saved = self._load_saved()
        storage = engine.storage
        compilation = engine.compilation
        if fd.state is not None:
            if fd.state not in states.FLOW_STATES:
                raise _unknown(f"flow detail '{fd.uuid}' ({fd.name!r})", "state", fd.state, states.FLOW_STATES)
            storage.set_flow_state(fd.state)
        pending = self._pending_migrations(engine)
        recorded = self._resume_summaries() if pending else {}
        saved, changed, meta_changed = self._migrate(engine, saved, pending, recorded)
        plan = self._plan(engine, saved, recorded, migrated=bool(changed) or meta_changed)
        matched, actions = plan.matched, plan.actions
        self._refuse(engine, saved, matched, actions)
        self.orphans = [saved.detail(i) for i in plan.orphans]
        upserts = {ad.uuid: ad for ad in changed}
        created: list[models.AtomDetail] = []
        fresh = None  # (new details on the fast path: rows made in Rust, `_fresh_rows`)
        restore: list[tuple[int, int, int]] = []
        to_revert: list[int] = []
        flow_reverted = fd.state == states.REVERTED
        spec_atoms = compilation.spec_atoms
        by_rows = self.details is None and saved.raw
        versions = self._versions = [None] * len(compilation.atoms)
        indexes: Any = range(len(compilation.atoms))
        none_matched = max(matched, default=-1) < 0  # (a new flow)
        bulk = by_rows and plan.has_payloads and not none_matched
        if bulk:
            # Plain rows restored in bulk from the plan's read; only the others go through the loop.
            indexes = self._restore_columns(storage, saved, plan, restore)
        if self.details is None:
            # Atoms no saved detail matched get new ones, made as columns in one go (a new flow:
            # every atom, and the loop below has nothing left to do).
            if none_matched:
                unmatched, indexes = indexes, ()  # (a range: no list of a million ints)
            else:
                unmatched = [index for index in indexes if matched[index] < 0]
            fresh = _fresh_rows(storage, compilation, unmatched, versions)
        atoms = compilation.atoms
        for index in indexes:
            atom = atoms[index]
            is_retry = spec_atoms.is_retry(index)
            version = spec_atoms.version(index)
            position = matched[index]
            if position < 0:
                if self.details is None:
                    continue  # (made as columns above)
                # (keeping a uuid the engine already gave out: `attach_memory_backend` after a run)
                known = storage.known_uuid(index)
                ad = models.RetryDetail(atom.name, known) if is_retry else models.TaskDetail(atom.name, known)
                ad.state = states.PENDING
                ad.intention = states.EXECUTE
                ad.version = version
                created.append(ad)
                fd.add(ad)
                self.details.append(ad)
                storage.set_atom_uuid(index, ad.uuid)
                versions[index] = version
                continue
            if by_rows and not bulk and _plain_row(saved, position, actions[index], version):
                self._restore_row(storage, index, saved, position)
                kept = True
                version = saved.versions[position]
            else:
                ad = saved.detail(position)
                action = actions[index]
                if action != resume_plan.REUSE or ad.state != states.SUCCESS:
                    kept = self._apply_policy(engine, index, ad, action, flow_reverted, upserts, to_revert)
                else:
                    kept = True
                if kept:
                    self._restore(storage, index, ad, is_retry)
                if self.details is not None:
                    self.details.append(ad)
                elif ad.meta and (len(ad.meta) > 1 or "progress" not in ad.meta):
                    self._metas[index] = ad.meta
                version = ad.version
            if kept and (storage.states[index] or storage.intentions[index]):
                restore.append((index, storage.states[index], storage.intentions[index]))
            storage.set_atom_uuid(index, saved.uuid(position))
            versions[index] = version
        if to_revert:
            meta_changed = True
            self._record_reverts(engine, to_revert)
        self._prepare_injector(storage, saved, created)
        rows = created + [ad for ad in upserts.values() if ad not in created]
        self._write_prepared(rows, meta_changed, fresh)
        self.interrupted = [index for index, state, _ in restore if state == _RUNNING_CODE]
        if restore:
            # (the scheduler normalises interrupted states: it gives back those it changed)
            for index, state, intention in engine._scheduler.restore(restore):
                storage.states[index] = state
                storage.intentions[index] = intention

    def _load_saved(self) -> SavedAtoms:
        """The flow detail's state and meta refreshed from the backend, and its saved atoms."""
        fd = self.flow_detail
        self._versions = []
        self._metas = {}
        if self._fast and hasattr(self._conn, "saved_atoms"):
            if self._read_with_lease:
                self._read_with_lease = False  # (once: a later prepare reads the flow again)
            else:
                try:
                    fresh = self._conn.get_flow_details(fd.uuid, lazy=True)
                except exceptions.NotFound:
                    self.details = []
                    return SavedAtoms.from_details(list(fd))
                self._refresh(fresh)
            self.details = None
            return self._conn.saved_atoms(fd.uuid)
        self.details = []
        try:
            fresh = self._conn.get_flow_details(fd.uuid)
        except exceptions.NotFound:
            return SavedAtoms.from_details(list(fd))
        self._refresh(fresh)
        return SavedAtoms.from_details(self._adopt(fresh))

    def _refresh(self, fresh: Any) -> None:
        """The flow detail's state and meta as saved in ``fresh``."""
        fd = self.flow_detail
        fd.state = fresh.state
        fd.meta.clear()  # in place: the engine's storage holds this dict (flow metadata API)
        fd.meta.update(fresh.meta or {})

    def _adopt(self, fresh: Any) -> list[models.AtomDetail]:
        """The saved atom details (in the store's order) as objects of the user's flow detail:
        those it holds are brought up to date in place, the others added to it.

        These are the only copies the engine reads and updates from then on, so the flow detail
        the user passed reflects the run, and nothing writes an older copy over a newer one.
        """
        fd = self.flow_detail
        adopted = []
        for ad in fresh:
            mine = fd.find(ad.uuid)
            if mine is None or type(mine) is not type(ad):
                fd.add(ad)
                mine = ad
            elif mine is not ad:
                mine.update(ad)
            adopted.append(mine)
        return adopted

    def _sync_user_detail(self) -> None:
        """Fast path: brings the atom details the user's flow detail holds up to date with the
        store (and adds those it lacks), once atoms were written. A flow detail holding none
        (loaded lazily, or new) is left so: the engine keeps no model per atom on this path, and
        reading them all back would cost what the fast path saves. Except the one `load` created
        in the caller's book (`fill_user_detail`), which the caller sees only through that book:
        it reads its atom details from the store when first looked at (`_DetailsFromStore`), as
        TaskFlow's shows them, and costs nothing when nobody looks."""
        if not self._unsynced:
            return
        self._unsynced = False
        fd = self.flow_detail
        held = fd._atomdetails_by_id
        if isinstance(held, _DetailsFromStore) and held.pending:
            return  # (read when looked at: it will show the store as it is then)
        if len(held) == 0:
            if self.fill_user_detail:
                fd._atomdetails_by_id = _DetailsFromStore(self.backend, fd.uuid)
            return
        self._adopt(self._conn.get_atoms_for_flow(fd.uuid))

    def _pending_migrations(self, engine: Any) -> list[Any]:
        """The engine's migrations the flow detail has not recorded as applied."""
        given = migrations.check_migrations(engine.options.get("migrations"))
        if not given:
            return given
        done = migrations.applied_ids(self.flow_detail.meta)
        return [m for m in given if m.id not in done]

    def _plan(self, engine: Any, saved: SavedAtoms, recorded: dict[str, Any], migrated: bool) -> Any:
        """The resume plan: read and matched in Rust straight from the store when the saved rows
        are the store's (nothing migrated in memory), else from the details' tuples."""
        fd = self.flow_detail
        compiled = engine.compilation.compiled
        options = resume_plan.core_options(engine, fd.meta, fd.state, None, with_pending=False)
        store = getattr(self.backend, "store", None)
        if saved.raw and not migrated and callable(store):
            # Read with the payloads when prepare restores the rows itself (`_restore_columns`).
            restoring = self.details is None

            def plan_with(**checked: Any) -> Any:
                return _core.resume_plan_stored(store(), fd.uuid, compiled, **options, **checked, restoring=restoring)

        else:
            if self._records and not recorded:
                recorded = self._resume_summaries()
            tuples = [resume_plan.saved_tuple(ad, recorded.get(ad.uuid)) for ad in saved.details()]

            def plan_with(**checked: Any) -> Any:
                return _core.resume_plan(compiled, tuples, **options, **checked)

        first = plan_with()
        if getattr(first, "has_payloads", False):  # the plan read the saved rows: no need to again
            saved.uuid_of, saved.position_of = first.saved_uuid, first.saved_position
        # Saved results that no longer fit their atom's provides: the plan again, with them.
        plan, self._misfits = resume_plan.checked(engine, first, plan_with, saved.detail)
        forget_read_ahead = getattr(self.backend, "forget_read_ahead", None)
        if forget_read_ahead is not None:  # (SQLite: one the plan did not take is not kept)
            forget_read_ahead()
        return plan

    def _restore_columns(
        self, storage: Any, saved: SavedAtoms, plan: Any, restore: list[tuple[int, int, int]]
    ) -> list[int]:
        """Restores every plain saved task (see `_plain_row`) from the columns the plan read with
        it (`ResumePlan.restore_columns`), as `_restore_row` does one; returns the atoms left for
        the loop: new ones and those restored from models, in atom order."""
        (
            codes,
            intention_codes,
            uuids,
            versions,
            results,
            revert_results,
            metas,
            slow,
            fresh,
            plain_restore,
            interrupted,
        ) = plan.restore_columns()
        storage.states[:] = codes
        storage.intentions[:] = intention_codes
        storage.set_atom_uuids(uuids)
        self._versions[:] = versions
        restore.extend(plain_restore)
        for column, pairs, field in (
            (storage.results, results, "results"),
            (storage.revert_results, revert_results, "revert_results"),
        ):
            index = -1
            try:
                for index, text in pairs:
                    column[index] = _decode(text)
            except (ValueError, RecursionError) as e:
                raise _damaged_row(saved, plan.matched[index], e, field) from None
        for text, indexes in metas:
            try:
                meta = self._meta_of(text)
            except (ValueError, RecursionError, TypeError) as e:
                raise _damaged_row(saved, plan.matched[indexes[0]], e, "meta") from None
            if meta:
                self._restore_meta(storage, indexes, meta, codes)
        for index in interrupted:
            storage.interrupted[index] = _interrupted(plan.saved_name(plan.matched[index]))
        return sorted(slow + fresh) if slow and fresh else slow or fresh

    def _restore_meta(self, storage: Any, indexes: list[int], meta: dict[str, Any], codes: list[int]) -> None:
        """What one saved meta, shared by the plain rows of ``indexes``, restores (as `_restore_row`)."""
        progress = meta.get("progress")
        details = meta.get("progress_details")
        keep_all = len(meta) > 1 or progress is None  # it holds more than the progress
        if not keep_all:
            # Only the progress (most atoms): nothing to keep where it is what every state implies
            # (checked at C speed; the loop below would find it atom by atom).
            done = map(_DONE.__contains__, map(codes.__getitem__, indexes))
            if all(done) if progress == 1.0 else (progress == 0.0 and not any(done)):
                return
        has_details = "progress_details" in meta
        for index in indexes:
            # Progress equal to what the state implies is not kept (most atoms): see Storage.progress_of.
            if progress is not None and (details is not None or progress != (1.0 if codes[index] in _DONE else 0.0)):
                storage.progress[index] = (progress, details)
            if has_details:
                storage.progress_details[index] = details
            if keep_all:
                self._metas[index] = dict(meta)

    def _restore_row(self, storage: Any, index: int, saved: SavedAtoms, position: int) -> None:
        """Restores a plain saved task (no failure, not a retry) from its row's columns."""
        state = saved.states[position] or states.PENDING
        intention = saved.intentions[position] or states.EXECUTE
        field = "state"
        try:
            code = storage.states[index] = STATE_CODES[state]
            storage.intentions[index] = INTENTION_CODES[intention]
            field = "results"
            text = saved.results[position]
            if text != "null":
                storage.results[index] = _decode(text)
            field = "revert_results"
            text = saved.revert_results[position]
            if text != "null":
                storage.revert_results[index] = _decode(text)
            field = "meta"
            meta = self._meta_of(saved.metas[position])
        except (KeyError, ValueError, RecursionError, TypeError) as e:
            raise _damaged_row(saved, position, e, field) from None
        if state == states.RUNNING and intention != states.EXECUTE:
            storage.interrupted[index] = _interrupted(saved.names[position])
        if meta:
            progress = meta.get("progress")
            details = meta.get("progress_details")
            # Progress equal to what the state implies is not kept (most atoms): see Storage.progress_of.
            if progress is not None and (details is not None or progress != (1.0 if code in _DONE else 0.0)):
                storage.progress[index] = (progress, details)
            if "progress_details" in meta:
                storage.progress_details[index] = details
            if len(meta) > 1 or progress is None:  # it holds more than the progress
                self._metas[index] = dict(meta)

    def _meta_of(self, text: str) -> dict[str, Any]:
        """A row's meta, decoded once per distinct text (most atoms share one of a few)."""
        cache = self.meta_cache
        meta = cache.get(text)
        if meta is None:
            meta = _decode(text) if text and text != "{}" else {}
            if not isinstance(meta, dict):
                raise TypeError(f"holds a JSON {type(meta).__name__}, not an object")
            if len(cache) < 1024:
                cache[text] = meta
        return meta

    # -- resumption across code changes ----------------------------------------------------------
    def _resume_summaries(self) -> dict[str, tuple[str | None, str | None, str | None]]:
        """``{atom uuid: (inputs, revert kind, revert name)}`` from the backend's resume records
        (none from a backend that keeps none)."""
        if not self._records:
            return {}
        return {uuid: rest for uuid, *rest in self._conn.resume_summaries(self.flow_detail.uuid)}

    def resume_record(self, ad: models.AtomDetail) -> dict[str, Any]:
        """The resume record kept beside a saved detail, decoded (empty when the backend keeps
        none): ``{"inputs": fingerprint, "revert": reference}``."""
        if not self._records:
            return {}
        return revert_refs.decode_record(self._conn.resume_record(ad.uuid))

    def _migrate(
        self, engine: Any, saved: SavedAtoms, pending: list[Any], recorded: dict[str, Any]
    ) -> tuple[SavedAtoms, list[Any], bool]:
        """Applies the pending migrations in memory: ``(saved details now, details to write,
        whether the flow meta changed)``. Raises `MigrationError` (nothing applied) when they do
        not fit the saved details. A renamed detail's resume record is copied to its new detail
        (in ``recorded``, and in the records written with the details)."""
        fd = self.flow_detail
        if not pending:
            return saved, [], False
        saved_atoms = saved.details()  # migrations work on models (a rare path)
        factory = (fd.meta.get(models.FACTORY_META) or {}).get("name")
        live = [ad for ad in saved_atoms if ad.name != INJECTOR_NAME and not migrations.is_retired(ad)]
        if not live:
            records = migrations.not_needed(pending, factory)
            fd.meta[migrations.MIGRATIONS_META] = [*fd.meta.get(migrations.MIGRATIONS_META, ()), *records]
            return saved, [], True
        compilation = engine.compilation
        problems = _core.check_migrations(
            compilation.compiled,
            [resume_plan.saved_tuple(ad, recorded.get(ad.uuid)) for ad in saved_atoms],
            [m.as_tuple() for m in pending],
        )
        if problems:
            raise migrations.MigrationError(
                f"Cannot apply the migrations to flow {fd.name!r} ({fd.uuid}): " + "; ".join(problems)
            )
        targets = {
            atom.name: (spec[1] == _RETRY, spec[2])
            for atom, spec in zip(compilation.atoms, compilation.spec_atoms, strict=True)
        }
        changed, records, copies = migrations.apply(pending, saved_atoms, targets, factory)
        for old_uuid, new_uuid in copies:
            if old_uuid in recorded:
                recorded[new_uuid] = recorded[old_uuid]
                record = self._conn.resume_record(old_uuid)
                if record:
                    self._pending_records.append((new_uuid, record))
        by_uuid = {ad.uuid: ad for ad in changed}
        known = {ad.uuid for ad in saved_atoms}
        saved_atoms = [by_uuid.get(ad.uuid, ad) for ad in saved_atoms] + [ad for ad in changed if ad.uuid not in known]
        fd.meta[migrations.MIGRATIONS_META] = [*fd.meta.get(migrations.MIGRATIONS_META, ()), *records]
        return SavedAtoms.from_details(saved_atoms), changed, True

    def _refuse(self, engine: Any, saved: SavedAtoms, matched: list[int], actions: list[int]) -> None:
        """Raises for atoms resuming cannot go past: a task bound to a retry's detail (or the
        reverse), a version change whose policy is ``fail``."""
        if resume_plan.FAIL not in actions:  # (the usual case, at C speed)
            return
        failing = [index for index, action in enumerate(actions) if action == resume_plan.FAIL]
        compilation = engine.compilation
        fd = self.flow_detail
        for index in failing:
            ad = saved.detail(matched[index])
            is_retry = compilation.spec_atoms.is_retry(index)
            want = models.RetryDetail if is_retry else models.TaskDetail
            name = compilation.atoms[index].name
            if not isinstance(ad, want):
                raise exceptions.Duplicate(
                    f"Atom {name!r} of flow {fd.name!r} is a {want.__name__[:-6].lower()} but its saved "
                    f"detail {ad.uuid} is a {type(ad).__name__}; rename the atom or remove the old detail"
                )
            if index in self._misfits:
                raise migrations.ProvidesMismatch(name, self._misfits[index], f"{fd.name!r} ({fd.uuid})")
            if ad.state == states.SUCCESS:
                raise migrations.VersionMismatch(name, ad.version, compilation.spec_atoms.version(index))

    def _apply_policy(
        self,
        engine: Any,
        index: int,
        ad: Any,
        action: int,
        flow_reverted: bool,
        upserts: dict[str, Any],
        to_revert: list[int],
    ) -> bool:
        """Carries out the plan's decision for a saved detail; False when the atom starts over
        (its detail reset to PENDING, nothing to restore)."""
        version = engine.compilation.spec_atoms.version(index)
        completed = ad.state == states.SUCCESS and (ad.intention or states.EXECUTE) == states.EXECUTE
        if completed and not flow_reverted:
            if action == resume_plan.MIGRATE:
                self._migrate_result(engine, index, ad, version)
                upserts[ad.uuid] = ad
            elif action == resume_plan.RERUN:
                _start_over(ad, version)
                upserts[ad.uuid] = ad
                return False
            elif action == resume_plan.REVERT:
                to_revert.append(index)
            return True
        if not completed and ad.version != version and version is not None:
            ad.version = version  # it runs (or reverts) with the current code
            upserts[ad.uuid] = ad
        return True

    def _migrate_result(self, engine: Any, index: int, ad: Any, version: str | None) -> None:
        atom = engine.compilation.atoms[index]
        policy = resume_plan.version_policy(engine, atom)
        try:
            ad.results = policy(ad.version, ad.results)
            check_serializable(atom.name, ad.results)
        except Exception as exc:
            raise migrations.MigrationError(
                f"Migrating the result of atom {atom.name!r} from version {ad.version} to {version} failed: "
                f"{type(exc).__name__}: {exc}",
                cause=exc,
            ) from exc
        problem = resume_plan.result_misfit(ad.results, atom.save_as)
        if problem is not None:
            raise migrations.MigrationError(
                f"The migrated result of atom {atom.name!r} (version {ad.version} to {version}) does not fit what it "
                f"provides: {problem}; nothing was written"
            )
        ad.version = version

    def _record_reverts(self, engine: Any, indices: list[int]) -> None:
        """Adds ``revert_then_rerun`` atoms to the flow's pending reverts (latest first)."""
        compilation = engine.compilation
        position = {atom: rank for rank, atom in enumerate(compilation.compiled.topo)}
        names = [compilation.atoms[i].name for i in sorted(indices, key=lambda i: -position[i])]
        meta = self.flow_detail.meta
        record = resume_plan.pending_reverts(meta) or {
            "reason": "version changed (on_version_change=revert_then_rerun)",
            "revert": [],
            "rerun": [],
        }
        meta[resume_plan.PENDING_REVERTS] = {
            **record,
            "revert": [*record["revert"], *(name for name in names if name not in record["revert"])],
            "rerun": [*record["rerun"], *(name for name in names if name not in record["rerun"])],
        }

    def _write_prepared(self, rows: list[Any], meta_changed: bool, fresh: Any = None) -> None:
        """Writes what prepare created or changed, in one transaction where the backend can:
        ``rows`` are models, ``fresh`` new details made without one (the fast path: a
        `_core.FreshRows`)."""
        fd = self.flow_detail
        if not rows and not meta_changed and fresh is None:
            return
        if self.details is not None:
            for ad in rows:
                fd.add(ad)
        records, self._pending_records = self._pending_records, []
        if self._fast:
            self._conn.apply(
                new_atom_details=[(fd.uuid, ad) for ad in rows],
                flow_meta=(fd.uuid, fd.meta) if meta_changed else None,
                **({"resume_records": records} if records else {}),
                **({"fresh_atoms": (fd.uuid, fresh)} if fresh is not None else {}),
            )
            self._unsynced = True
        elif hasattr(self._conn, "save_flow_changes"):
            # One call (all or nothing on dir://): the details, then the flow's own record.
            self._conn.save_flow_changes(
                fd.uuid, new_atom_details=rows, flow_detail=fd if meta_changed else None, resume_records=records
            )
        else:
            self._conn.update_flow_details(fd)

    def write_flow_meta(self) -> None:
        """Writes the flow detail's meta (pending reverts done, ...)."""
        fd = self.flow_detail
        if self._fast:
            self._conn.apply(flow_meta=(fd.uuid, fd.meta))
        else:
            self._write_flow_row()

    def _write_flow_row(self) -> None:
        """Writes the flow detail's own record (state, meta), never its atom details: the
        engine saves each atom detail as it changes, so an atom written with the flow could only
        be a stale copy (what a third-party backend without ``update_flow_row`` is given: the
        current objects, see `_adopt`)."""
        fd = self.flow_detail
        if hasattr(self._conn, "update_flow_row"):
            self._conn.update_flow_row(fd)
        else:
            self._conn.update_flow_details(fd)

    def save_versions(self, engine: Any, indices: list[int]) -> None:
        """Records the current code's version in the details of atoms about to run again."""
        spec_atoms = engine.compilation.spec_atoms
        rows = []
        for index in indices:
            version = spec_atoms.version(index)
            if self._versions[index] != version:
                self._versions[index] = version
                ad = self._detail(engine, index)
                ad.version = version
                rows.append(ad)
        if rows:
            self._write_prepared(rows, meta_changed=False)

    def _detail(self, engine: Any, atom: int) -> models.AtomDetail:
        """The model of a compiled atom's detail (read from the store on the fast path)."""
        if self.details is not None:
            return self.details[atom]
        return self._conn.get_atom_details(engine.storage.atom_uuid(atom))

    def save_orphan(self, ad: Any) -> None:
        """Writes an orphan detail's state and revert outcome."""
        if self._fast:
            self._conn.apply(atom_updates=[(ad, ("state", "intention", "revert_results", "revert_failure"))])
        else:
            self._conn.update_atom_details(ad)

    @staticmethod
    def _restore(storage: Any, index: int, ad: models.AtomDetail, is_retry: bool) -> None:
        state, intention = ad.state or states.PENDING, ad.intention or states.EXECUTE
        what = f"atom detail '{ad.uuid}' ({ad.name!r})"
        try:
            storage.states[index] = STATE_CODES[state]
        except KeyError:
            raise _unknown(what, "state", state, states.ATOM_STATES) from None
        try:
            storage.intentions[index] = INTENTION_CODES[intention]
        except KeyError:
            raise _unknown(what, "intention", intention, states.INTENTIONS) from None
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
        if "progress_details" in ad.meta:
            storage.progress_details[index] = ad.meta["progress_details"]

    def _prepare_injector(self, storage: Any, saved: SavedAtoms, created: list[Any]) -> None:
        """Flow-level ``store`` values persist in TaskFlow's injector detail."""
        position = saved.position(INJECTOR_NAME)
        injector = None if position is None else saved.detail(position)
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
        backend can (the SQLite fast path writes only the changed columns of those rows).

        An atom completing also gets its resume record (where the backend keeps them): who
        provided its inputs, and how to revert it once its code is gone (`revert_refs`).
        """
        storage = engine.storage
        if self.details is None:
            steps = self._steps(engine, storage, transitions)
            if steps is not None:
                self._conn.apply_steps(steps)
                self._unsynced = True
                return
        touched: dict[int, frozenset[str]] = {}
        for atom, state, _ in transitions:
            fields = _FIELDS_BY_STATE[state]
            seen = touched.get(atom)
            touched[atom] = fields if seen is None or seen is fields else seen | fields
        records = None
        if self._records:
            for atom, state, intention in transitions:
                if state == _SUCCESS_CODE and intention == _EXECUTE_CODE:
                    if records is None:
                        records = []
                    records.append((storage.atom_uuid(atom), resume_record(engine, atom)))
        if self.details is None:
            changes = [self._change(engine, storage, atom, fields) for atom, fields in touched.items()]
            self._conn.apply(atom_changes=changes, **({"resume_records": records} if records else {}))
            self._unsynced = True
            return
        details = self.details
        for atom in touched:
            self._update_detail(engine, storage, atom)
        if self._fast:
            self._conn.apply(
                atom_updates=[(details[atom], fields) for atom, fields in touched.items()],
                **({"resume_records": records} if records else {}),
            )
        elif hasattr(self._conn, "save_flow_changes"):
            # One call for the batch (all or nothing on dir://), as one transaction on SQLite.
            self._conn.save_flow_changes(
                self.flow_detail.uuid, atom_details=[details[atom] for atom in touched], resume_records=records or ()
            )
        else:
            for atom in touched:
                self._conn.update_atom_details(details[atom])

    def _steps(
        self, engine: Any, storage: Any, transitions: list[tuple[int, int, int]]
    ) -> list[tuple[str, str, str, str | None, str | None, str | None]] | None:
        """The fast path's rows of a batch made only of the steps every forward run is made of (a
        task starting, a task succeeding with nothing but its progress in meta), as
        `SQLiteConnection.apply_steps` takes them; ``None`` for any other batch (the general
        path writes it)."""
        if len(transitions) > 1 and len({atom for atom, _, _ in transitions}) != len(transitions):
            return None  # an atom touched twice in one batch: the general path merges its fields
        steps = []
        is_retry = engine._is_retry
        for atom, state, intention in transitions:
            if intention != _EXECUTE_CODE or is_retry(atom):
                return None
            if state == _RUNNING_CODE:
                steps.append((storage.atom_uuid(atom), _RUNNING, _EXECUTE, None, None, None))
                continue
            if state != _SUCCESS_CODE or atom in self._metas or atom in storage.progress_details:
                return None
            meta = _PROGRESS_METAS.get(storage.progress_of(atom)[0])
            if meta is None:
                return None
            result = storage.results[atom]
            results = "null" if result is None else columns.dumps(result, "results")
            record = resume_record(engine, atom) if self._records else None
            steps.append((storage.atom_uuid(atom), _SUCCESS, _EXECUTE, results, meta, record))
        return steps

    def _change(self, engine: Any, storage: Any, atom: int, fields: frozenset[str]) -> dict[str, Any]:
        """The fast path's change of one atom row: its state and the ``fields`` it changed."""
        change: dict[str, Any] = {
            "uuid": storage.atom_uuid(atom),
            "state": STATE_NAMES[storage.states[atom]],
            "intention": INTENTION_NAMES[storage.intentions[atom]],
        }
        if len(fields) == 2:  # state and intention only (RUNNING, IGNORE)
            return change
        is_retry = engine._is_retry(atom)
        if "results" in fields:
            if is_retry:
                change["history"] = [list(entry) for entry in storage.retry_histories.get(atom, [])]
            else:
                change["results"] = storage.results[atom]
        if "failure" in fields:
            change["failure"] = storage.failures.get(atom)
        if "revert_results" in fields:
            change["revert_results"] = storage.revert_results.get(atom)
        if "revert_failure" in fields:
            change["revert_failure"] = storage.revert_failures.get(atom)
        if "meta" in fields:
            change["meta"] = self._meta(storage, atom, is_retry)
        return change

    def _meta(self, storage: Any, atom: int, is_retry: bool) -> Any:
        """An atom's meta to write (fast path): its progress merged into what else it holds."""
        meta = self._metas.get(atom)
        if is_retry:
            return meta if meta is not None else _EMPTY_META
        progress, details = storage.progress_of(atom)
        has_details = atom in storage.progress_details  # (TaskFlow writes None once erased)
        if meta is None and not has_details:
            text = _PROGRESS_METAS.get(progress)
            if text is not None:
                return text
        if meta is None:
            meta = self._metas[atom] = {}
        meta["progress"] = progress
        if has_details:
            meta["progress_details"] = details
        return meta

    def save_atom(self, engine: Any, atom: int) -> None:
        self.save(engine, [(atom, 0, 0)])

    def _update_detail(self, engine: Any, storage: Any, atom: int) -> None:
        assert self.details is not None
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
            if atom in storage.progress_details:
                ad.meta["progress_details"] = details

    def save_flow_state(self, engine: Any, state: str, release: bool = False) -> None:
        """Writes the flow's state (its own record only); when the run stops there, the user's
        flow detail is brought up to date on the fast path too (`_sync_user_detail`).

        With ``release`` (the run's last write), a backend that can gives the lease up in the same
        transaction (SQLite: one commit, not two); elsewhere `release` gives it up after."""
        fd = self.flow_detail
        fd.state = state
        if self.resave_at_run_end and state in states.RUN_ENDS:
            self.resave_at_run_end = False
            self.save(engine, [(index, STATE_CODES[states.PENDING], 0) for index in range(len(engine.storage.states))])
        if self._fast:
            lease = self.lease
            if not self._run_options:
                self._conn.apply(flow_state=(fd.uuid, state))
            elif release and lease is not None and lease.held:
                self._conn.apply(flow_state=(fd.uuid, state), release_lease=True)
                lease.released()
            else:
                # (a run starting joins the open group of steps with durability="batch")
                self._conn.apply(flow_state=(fd.uuid, state), grouped=state == states.RUNNING)
            if state in states.RUN_ENDS and self.details is None:
                self._sync_user_detail()
        else:
            self._write_flow_row()

    # -- ownership (ferroflow.persistence.ownership) --------------------------------------------
    def acquire(self) -> None:
        """Takes the flow detail's lease (fencing this persister's writes), or raises naming its
        owner; the process's heartbeat renews it until :meth:`release`.

        :raises NotImplementedError: the backend keeps no leases, so it cannot keep two engines
            from running one flow at once.
        """
        lease = self.lease
        if lease is None:
            if not hasattr(self._conn, "acquire_lease"):
                raise exceptions.NotImplementedError(
                    f"persistence backend {type(self.backend).__name__} keeps no flow leases "
                    "(acquire_lease/renew_lease/release_lease/get_lease/fence), so it cannot guarantee that one "
                    f"engine at a time runs flow detail {self.flow_detail.name!r}; use memory://, dir://, sqlite:// "
                    "or a backend that implements them"
                )
            lease = self.lease = ownership.Lease(self._conn, self.flow_detail.uuid, self.lease_seconds, self.owner)
        if not lease.held:
            lease.acquire()

    def lane_writer(self, engine: Any) -> tuple[Any, ...] | None:
        """What the serial engine's Rust lane needs to write the steps it runs itself (a task
        starting, a task succeeding with nothing but its progress in meta, as `_steps` writes
        them), or None: the engine writes every step. On SQLite's fast path: the lane writes the
        same rows in the same transactions (a round's starts with the completions before them),
        without the Python per step, which is most of the cost with ``durability="batch"`` and
        about a third of it otherwise. Atoms the lane cannot write that way (a result to check, a
        revert reference naming code, progress reported) it hands back to the engine's general
        path."""
        lane_parts = getattr(self._conn, "lane_parts", None)
        if not self._fast or self.details is not None or not self._records or lane_parts is None:
            return None
        store, fence = lane_parts()

        def result_text(index: int, value: Any) -> str | None:
            ok, _ = engine._check_serializable(index, value)
            if not ok:
                return None
            try:
                return columns.dumps(value, "results")
            except TypeError:
                return None

        uuids = engine.storage.uuid_column
        metas, details = self._metas, engine.storage.progress_details
        return (
            store,
            fence,
            uuids,
            self.lease,
            revert_refs.reverts_as_noop,
            result_text,
            _PROGRESS_METAS[1.0],
            metas,
            details,
        )

    def lane_wrote(self) -> None:
        """The lane wrote atoms: the caller's flow detail is brought up to date at the end."""
        self._unsynced = True

    def keep_lease(self) -> None:
        """Raises :class:`~ferroflow.exceptions.LeaseLost` once the heartbeat found the lease lost
        (cheap: called before every round)."""
        lease = self.lease
        if lease is not None:
            lease.check()

    def release(self) -> None:
        """Gives the lease up (kept by a lost lease's successor, never touched)."""
        lease = self.lease
        if lease is not None:
            lease.release()

    # -- metadata (listeners) --------------------------------------------------------------------
    def atom_meta(self, atom: int, uuid: str) -> dict[str, Any]:
        """The meta of compiled atom ``atom``, whose detail is ``uuid``."""
        if self.details is not None:
            return self.details[atom].meta
        meta = self._metas.get(atom)
        if meta is None:  # read on first use: most atoms' meta is only their progress
            meta = self._metas[atom] = dict(self._conn.get_atom_details(uuid).meta or {})
        return meta

    def save_atom_meta(self, atom: int, uuid: str) -> None:
        """Writes one atom detail's meta column only."""
        if self.details is None:
            self._conn.apply(atom_changes=[{"uuid": uuid, "meta": self.atom_meta(atom, uuid)}])
            return
        ad = self.details[atom]
        if self._fast:
            self._conn.apply(atom_updates=[(ad, ("meta",))])
        else:
            self._conn.update_atom_details(ad)

    def save_flow_meta(self) -> None:
        """Writes the flow detail's own row (not its atoms)."""
        self._write_flow_row()

    def close(self) -> None:
        self._conn.close()


def _plain_row(saved: SavedAtoms, position: int, action: int, version: str | None) -> bool:
    """Whether a saved row is restored as it is, from its columns: a task's detail without
    failures that no version policy touches (completed and reused, or not completed and saved
    at the current version)."""
    if saved.retries[position] or saved.failures[position] is not None or saved.revert_failures[position] is not None:
        return False
    if saved.states[position] == states.SUCCESS:
        return action == resume_plan.REUSE
    return version is None or saved.versions[position] == version


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


def _fresh_rows(storage: Any, compilation: Any, unmatched: Sequence[int], versions: list[str | None]) -> Any:
    """New details for the atoms ``unmatched`` (in atom order), made in Rust as rows to insert
    (`_core.FreshRows`, or None when there are none), their uuids and versions given to storage.
    The uuids are made in one go (``str(uuid.uuid4())`` costs about 2.5 µs, a third of preparing
    a new flow), ascending in the order the rows are inserted (the store's uuid index then grows
    at its end instead of taking each key on a page of its own). A new flow's rows (every atom)
    are laid out in the order its atoms will run (rounds of ready atoms), not in atom order: a
    graph flow run in atom order would write to a different page of the store at nearly every
    step. (Saved details are listed in that order too.)"""
    if not unmatched:
        return None
    compiled, spec_atoms = compilation.compiled, compilation.spec_atoms
    random = os.urandom(16 * len(unmatched))
    if len(unmatched) == len(compilation.atoms):
        uuids, rows = compiled.fresh_rows(random)  # (uuids in atom order)
        versions[:] = spec_atoms.versions()
        storage.set_atom_uuids(uuids)
        return rows
    uuids, rows = compiled.fresh_rows(random, list(unmatched))
    for index, uuid_, version in zip(unmatched, uuids, spec_atoms.versions(unmatched), strict=True):
        versions[index] = version
        storage.set_atom_uuid(index, uuid_)
    return rows


def _unknown(what: str, field: str, value: Any, known: Any) -> exceptions.StorageFailure:
    """A saved state or intention this code does not know: never read as a default (a finished
    atom read as PENDING would run again)."""
    return damaged(what, field, f"holds an unknown {field} {value!r} (known: {', '.join(known)})")


def _damaged_row(saved: SavedAtoms, position: int, error: Exception, field: str) -> exceptions.StorageFailure:
    """What `Persister._restore_row` found wrong in a saved row's columns."""
    what = f"atom detail '{saved.uuids[position]}' ({saved.names[position]!r})"
    if isinstance(error, KeyError):
        state = saved.states[position] or states.PENDING
        if state not in STATE_CODES:
            return _unknown(what, "state", state, states.ATOM_STATES)
        return _unknown(what, "intention", saved.intentions[position], states.INTENTIONS)
    if isinstance(error, TypeError):
        return damaged(what, field, str(error))
    return damaged(what, field, f"is not valid JSON ({type(error).__name__}: {error})")


def resume_record(engine: Any, atom: int) -> str:
    """The resume record of a completed atom (`revert_refs.encode_record`)."""
    inputs = _core.input_fingerprint(engine.compilation.compiled, atom)
    return revert_refs.encode_record(inputs, revert_refs.reference(engine, atom))


def _start_over(ad: Any, version: str | None) -> None:
    """A completed detail back to PENDING / EXECUTE, with nothing of its run kept."""
    ad.state = states.PENDING
    ad.intention = states.EXECUTE
    ad.results = None
    ad.failure = None
    ad.revert_results = None
    ad.revert_failure = None
    ad.version = version


__all__ = ["Persister", "attach", "check_serializable"]
