"""Harness of the crash tests: run a saved flow in child processes, SIGKILL them, resume, record.

`CrashRunner` creates a flow detail in a store of a durable backend (the ``durable_backend``
fixture: a SQLite file, a dir:// directory; child ``crash.worker create``), then starts
``crash.worker resume`` in a fresh interpreter again and again. Each child is SIGKILLed at a seeded
random moment, planned one of three ways:

- `PROGRESS`: once it has journaled a random number of lines, plus a random pause (so the kill
  lands mid-run whatever the machine's speed);
- `CLOCK`: a random wall-clock delay after its start (kills in interpreter start-up, loading and
  ``prepare`` too);
- `TRIGGER` (revert scenarios, before any revert): a random pause after the failing atom journals
  its execute — the moment the failure is resolved and the revert starts while other atoms may
  still be running, a window too short for the other two plans to hit often. A scenario may
  also give `PROGRESS` kills lines to stop at early (``progress_triggers`` of `CrashRunner.run_round`).

After each kill the child is reaped (a zombie would still look alive to the lease takeover), the
store is checked whole (`store_cases.StoreCase.integrity`: SQLite's ``PRAGMA integrity_check``, or
every file of a dir:// store readable, linked and private) and read through the public Connection
API, and a `Snapshot` records what the store knew with the journal's length at that instant.
When a child finishes on its own, one more child is started and must find nothing to do.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ferroflow import exceptions
from ferroflow.persistence import models

from .flows import atom_name

TESTS_DIR = Path(__file__).resolve().parents[1]
WORKER_MODULE = "crash.worker"
#: States a flow detail ends in; a kill seeing one of these landed after the flow finished.
FINAL_FLOW_STATES = frozenset({"SUCCESS", "REVERTED", "FAILURE"})
#: Share of kills timed by the clock from the child's start rather than by its progress.
CLOCK_KILL_SHARE = 0.15
#: Range of those clock delays (seconds): interpreter start-up, loading, ``prepare`` and the first
#: atoms (a child needs about 0.2 s to start running atoms; longer delays would let whole phases
#: of a fast flow pass unkilled).
CLOCK_KILL_DELAY = (0.0, 0.3)
#: Share of kills, while nothing has been reverted yet, timed by the failing atom's journal line.
TRIGGER_KILL_SHARE = 0.15
#: Pause after the trigger line: the failure is being resolved, the revert starting, and atoms
#: scheduled alongside the failing one are still running or queued.
TRIGGER_KILL_JITTER = 0.005
#: Pause after the target journal line, so a kill may land inside the next task or commit.
PROGRESS_KILL_JITTER = 0.003
#: A child that neither finishes nor reaches its kill moment in this time is hung.
LIFE_TIMEOUT = 60.0
POLL_INTERVAL = 0.001

CLOCK, PROGRESS, TRIGGER = "clock", "progress", "trigger"


@dataclass(frozen=True)
class AtomRow:
    state: str | None
    intention: str
    results: Any


@dataclass(frozen=True)
class StoreView:
    """What the store holds for one flow detail (read through the public Connection API)."""

    flow_state: str | None
    atoms: dict[str, AtomRow]
    integrity: str

    def names_in(self, state: str) -> set[str]:
        return {name for name, row in self.atoms.items() if row.state == state}


@dataclass(frozen=True)
class Snapshot:
    """The store right after a kill, and how many journal lines existed then."""

    offset: int
    journaled_this_life: int
    #: How the kill was timed: `CLOCK`, `PROGRESS` or `TRIGGER`.
    how: str
    store: StoreView

    @property
    def finished(self) -> bool:
        return self.store.flow_state in FINAL_FLOW_STATES


@dataclass(frozen=True)
class Entry:
    """One journal line: ``kind`` is ``execute`` or ``revert``; ``value`` is an execute's result.

    Retried flows also journal ``start`` lines: an execute beginning, ``value`` being the attempt
    the retry gave it (see `crash.flows.Flaky`).
    """

    kind: str
    name: str
    value: int | None


@dataclass
class Round:
    """One flow run to its end through killed and resumed processes."""

    seed: int
    lives: int = 0
    snapshots: list[Snapshot] = field(default_factory=list)
    journal: list[Entry] = field(default_factory=list)
    final: StoreView | None = None
    final_reported: str | None = None
    #: Standard output of the child that finished the flow.
    final_output: str = ""

    @property
    def kills(self) -> int:
        return len(self.snapshots)


def _results(ad: Any) -> Any:
    """A detail's results as saved (a retry's history as ``[[value, {atom: failure dict}], ...]``)."""
    if isinstance(ad, models.RetryDetail):
        return [[value, {name: f.to_dict() for name, f in failures.items()}] for value, failures in ad.results]
    return ad.results


def read_store(store: Any, uri: str, flow_uuid: str) -> StoreView:
    """Checks the whole store (`StoreCase.integrity`), then reads the flow's state and atoms."""
    integrity = store.integrity(uri)
    try:
        fd = store.flow(uri, flow_uuid)
    except exceptions.NotFound:
        raise AssertionError(f"flow detail {flow_uuid} vanished from {uri}") from None
    atoms = {ad.name: AtomRow(ad.state, ad.intention, _results(ad)) for ad in fd}
    return StoreView(fd.state, atoms, integrity)


def parse_journal(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split(" ")
        if parts[0] in ("execute", "start") and len(parts) == 3:
            entries.append(Entry(parts[0], parts[1], int(parts[2])))
        elif parts[0] == "revert" and len(parts) == 2:
            entries.append(Entry("revert", parts[1], None))
        else:
            raise AssertionError(f"journal {path} line {number} is malformed: {line!r}")
    return entries


class _JournalTail:
    """Follows the journal as it grows: counts its lines and revert lines, spots a trigger line."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: Any = None
        self._partial = b""
        self.lines = 0
        self.reverts = 0
        self.trigger: bytes | None = None
        self.triggered = False

    def poll(self) -> int:
        if self._file is None:
            if not self._path.exists():
                return self.lines
            self._file = self._path.open("rb")
        chunk = self._partial + self._file.read()
        *complete, self._partial = chunk.split(b"\n")
        self.lines += len(complete)
        self.reverts += sum(line.startswith(b"revert ") for line in complete)
        if self.trigger is not None and any(line.startswith(self.trigger) for line in complete):
            self.triggered = True
        return self.lines

    def arm(self, trigger: str | None) -> None:
        """From now on, watch for a line starting with ``trigger`` (None: watch nothing)."""
        self.trigger = None if trigger is None else trigger.encode()
        self.triggered = False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass(frozen=True)
class _KillPlan:
    """When to kill one child: `CLOCK` (``pause`` after its start), `PROGRESS` (``pause`` after
    ``lines`` more journal lines — or after a line starting with ``trigger``, if one comes first)
    or `TRIGGER` (``pause`` after the trigger line)."""

    how: str
    pause: float
    lines: int = 0
    trigger: str | None = None


@dataclass(frozen=True)
class _Flow:
    #: The store's URI.
    db: str
    uuid: str
    engine: str
    #: Journal line of the failing atom's execute (revert scenarios), else None.
    trigger: str | None
    #: Starts of journal lines a `PROGRESS` kill may follow instead (one, drawn per life).
    progress_triggers: tuple[str, ...] = ()


class CrashRunner:
    """Runs flows in child processes of a fresh interpreter each, killing them at random, on the
    durable backend ``store`` (a `store_cases.StoreCase`)."""

    def __init__(self, workdir: Path, store: Any, worker: str = WORKER_MODULE) -> None:
        self.workdir = workdir
        self.store = store
        self._worker = worker
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
        self._env = env

    def _command(self, *args: object) -> list[str]:
        return [sys.executable, "-m", self._worker, *map(str, args)]

    def _run(self, *args: object) -> subprocess.CompletedProcess:
        """Runs a child to its end (never killed)."""
        return subprocess.run(
            self._command(*args),
            cwd=TESTS_DIR,
            env=self._env,
            capture_output=True,
            text=True,
            timeout=LIFE_TIMEOUT,
            check=False,
        )

    def run_round(
        self,
        seed: int,
        kind: str,
        n: int,
        engine: str,
        fail_at: int = -1,
        max_pause_us: int = 2000,
        max_lines_per_life: int = 20,
        trigger_at: int | None = None,
        progress_triggers: tuple[str, ...] = (),
    ) -> Round:
        """Creates a flow, then resumes it in killed children until one finishes it.

        `TRIGGER` kills follow the execute line of atom ``trigger_at`` (default: ``fail_at``; -1:
        none), while nothing has been reverted. With ``progress_triggers`` (starts of journal lines),
        each `PROGRESS` life is also armed on one of them, drawn at random, and killed right after
        it if it comes within the life's budget of lines: kills then hit the moments those lines
        mark however rare they are, and no life waits long for them.
        """
        rng = random.Random(seed)
        folder = self.workdir / f"round-{seed}"
        folder.mkdir()
        db, journal = self.store.uri(folder), folder / "journal"
        created = self._run("create", db, kind, n, seed, journal, fail_at, max_pause_us)
        assert created.returncode == 0, f"creating the flow failed:\n{created.stderr}"
        trigger_at = fail_at if trigger_at is None else trigger_at
        trigger = None if trigger_at < 0 else f"execute {atom_name(trigger_at)} "
        flow = _Flow(db, created.stdout.strip(), engine, trigger, tuple(progress_triggers))
        result = Round(seed)
        tail = _JournalTail(journal)
        try:
            finished = False
            while not finished:
                result.lives += 1
                after_trigger = bool(result.snapshots) and result.snapshots[-1].how == TRIGGER
                plan = self._plan(rng, tail, flow, max_lines_per_life, after_trigger)
                finished = self._one_life(flow, plan, tail, result)
            self._clean_run(flow, tail, result)
        finally:
            tail.close()
        result.journal = parse_journal(journal)
        result.final = read_store(self.store, db, flow.uuid)
        return result

    @staticmethod
    def _plan(rng: random.Random, tail: _JournalTail, flow: _Flow, max_lines: int, after_trigger: bool) -> _KillPlan:
        """How the next life is killed. A life right after a trigger kill is not armed on a progress
        trigger: the resumed engine often repeats the very line first (an interrupted atom runs
        again), and re-arming would kill it there again and again without progress."""
        draw = rng.random()
        if draw < CLOCK_KILL_SHARE:
            return _KillPlan(CLOCK, rng.uniform(*CLOCK_KILL_DELAY))
        if flow.trigger is not None and tail.reverts == 0 and draw < CLOCK_KILL_SHARE + TRIGGER_KILL_SHARE:
            return _KillPlan(TRIGGER, rng.uniform(0, TRIGGER_KILL_JITTER))
        pause, lines = rng.uniform(0, PROGRESS_KILL_JITTER), rng.randint(1, max_lines)
        if flow.progress_triggers and not after_trigger:
            return _KillPlan(PROGRESS, pause, lines, rng.choice(flow.progress_triggers))
        return _KillPlan(PROGRESS, pause, lines)

    def _one_life(self, flow: _Flow, plan: _KillPlan, tail: _JournalTail, result: Round) -> bool:
        """One child: killed (a snapshot is recorded, returns False) or finished (returns True)."""
        at_start = tail.poll()
        tail.arm(flow.trigger if plan.how == TRIGGER else plan.trigger)
        proc = subprocess.Popen(
            self._command("resume", flow.db, flow.uuid, flow.engine),
            cwd=TESTS_DIR,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > LIFE_TIMEOUT:
                    raise AssertionError(f"resume child hung for {LIFE_TIMEOUT} s (life {result.lives})")
                if _due(plan, elapsed, tail, at_start):
                    if plan.how != CLOCK:
                        time.sleep(plan.pause)
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(POLL_INTERVAL)
            out, err = proc.communicate(timeout=LIFE_TIMEOUT)  # reaps it: its lease is seen as dead
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
        if proc.returncode == -signal.SIGKILL:
            offset = tail.poll()
            store = read_store(self.store, flow.db, flow.uuid)
            assert store.integrity == "ok", f"integrity check after kill {result.kills + 1}: {store.integrity}"
            how = TRIGGER if tail.triggered else plan.how  # a PROGRESS life may end at its trigger
            result.snapshots.append(Snapshot(offset, offset - at_start, how, store))
            return False
        assert proc.returncode == 0, f"resume child failed (exit {proc.returncode}):\n{err}"
        result.final_reported = _final_state(out, err)
        result.final_output = out
        return True

    def _clean_run(self, flow: _Flow, tail: _JournalTail, result: Round) -> None:
        """One more resume of the finished flow: it must end the same and run nothing at all."""
        before = tail.poll()
        done = self._run("resume", flow.db, flow.uuid, flow.engine)
        assert done.returncode == 0, f"resuming the finished flow failed:\n{done.stderr}"
        assert _final_state(done.stdout, done.stderr) == result.final_reported
        assert tail.poll() == before, "resuming a finished flow ran atoms again"


def _due(plan: _KillPlan, elapsed: float, tail: _JournalTail, at_start: int) -> bool:
    if plan.how == CLOCK:
        return elapsed >= plan.pause
    lines = tail.poll()
    if plan.how == TRIGGER:
        return tail.triggered
    return lines >= at_start + plan.lines or tail.triggered


def _final_state(out: str, err: str) -> str:
    for line in out.splitlines():
        if line.startswith("FINAL "):
            return line.split(" ", 1)[1]
    raise AssertionError(f"the child printed no final state:\nstdout: {out}\nstderr: {err}")


def scaled(count: int, store: Any) -> int:
    """A scenario's ``count`` of rounds or kills on the backend ``store``: scaled by its
    `crash_share` (the SQLite store gets them all, others fewer), at least one."""
    return max(1, math.ceil(count * store.crash_share))


@pytest.fixture
def crash_runner(tmp_path: Path, durable_backend: Any) -> CrashRunner:
    return CrashRunner(tmp_path, durable_backend)
