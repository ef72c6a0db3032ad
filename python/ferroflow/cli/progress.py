"""Progress of a running flow: a line on stderr fed by the engine's atom notifications."""

from __future__ import annotations

import functools
import itertools
import operator
import sys
import threading
import time
from typing import Any, NamedTuple, TextIO

from ferroflow import states

_TTY_INTERVAL = 0.1  # redraw a terminal line at most 10 times a second
_LOG_INTERVAL = 1.0  # elsewhere (a pipe, a log file) write a new line at most once a second
_POLL = 0.1  # how often the watcher reads the engine's counts for the line
#: States only an atom that executed (in this run) can end in.
_EXECUTED = (states.RUNNING, states.SUCCESS, states.FAILURE, states.REVERTING, states.REVERTED, states.REVERT_FAILURE)


class ProgressLine:
    """``label: done/total atoms (pct%), rate atoms/s`` on a stream, refreshed at a bounded rate.

    On a terminal the line is redrawn in place; elsewhere each refresh is a new line. The rate
    counts only atoms done since the line was created (a resumed flow starts with some done).
    """

    def __init__(
        self,
        label: str,
        total: int,
        done: int = 0,
        stream: TextIO | None = None,
        enabled: bool = True,
        unit: str = "atoms",
    ) -> None:
        self.label = label
        #: What is counted (``atoms``; ``flows`` for a command resuming many).
        self.unit = unit
        self.total = total
        self.done = done
        #: Extra words shown after the counts (e.g. how many atoms were reverted).
        self.note = ""
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._tty = enabled and _isatty(self._stream)  # (a disabled line never writes: not asked)
        self._interval = _TTY_INTERVAL if self._tty else _LOG_INTERVAL
        self._done_at_start = done
        self._started = time.monotonic()
        self._next_refresh = self._started + self._interval
        self._shown: str | None = None

    def advance(self, count: int = 1) -> None:
        self.done += count
        self.refresh()

    def update(self, done: int) -> None:
        self.done = done
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Shows the line if the refresh interval has passed (or ``force``)."""
        if not self._enabled:
            return
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return
        self._next_refresh = now + self._interval
        text = self.text(now)
        if text == self._shown:
            return
        self._shown = text
        if self._tty:
            self._stream.write(f"\r{text}\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def text(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self._started
        done = min(self.done, self.total)  # an atom retried succeeds more than once
        percent = 100.0 * done / self.total if self.total else 100.0
        rate = (self.done - self._done_at_start) / elapsed if elapsed > 0 else 0.0
        unit = self.unit
        text = f"{self.label}: {done}/{self.total} {unit} ({percent:.0f}%), {rate:,.0f} {unit}/s"
        return f"{text}, {self.note}" if self.note else text

    def clear(self) -> None:
        """Erases the line from a terminal (before other output; the next refresh redraws it)."""
        if self._enabled and self._tty and self._shown is not None:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = None

    def finish(self) -> None:
        """Shows the final counts and ends the line."""
        if not self._enabled:
            return
        self.refresh(force=True)
        if self._tty and self._shown is not None:
            self._stream.write("\n")
            self._stream.flush()

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def interval(self) -> float:
        """Seconds between two refreshes of the line."""
        return self._interval

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


class _Codes(NamedTuple):
    """The state and intention codes a watcher counts by, with their byte tables for
    `bytes.translate` (codes are small ints: 1 where a code counts)."""

    success: int
    reverted: int
    executed: bytes
    not_success: bytes
    not_reverting: bytes


@functools.cache
def _codes() -> _Codes:
    """`_Codes`, made once (per engine, the tables cost a resumed small flow more than its run's
    bookkeeping; the engine modules are loaded by the first call: a command that runs no flow never
    loads them)."""
    from ferroflow.engines.storage import INTENTION_CODES, STATE_CODES

    success, revert_intention = STATE_CODES[states.SUCCESS], INTENTION_CODES[states.REVERT]
    executed = frozenset(STATE_CODES[state] for state in _EXECUTED)
    return _Codes(
        success,
        STATE_CODES[states.REVERTED],
        bytes(code in executed for code in range(256)),
        bytes(code != success for code in range(256)),
        bytes(code != revert_intention for code in range(256)),
    )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class EngineWatcher:
    """Follows one engine's run (use as a context manager around it): the progress line, the first
    atom that failed, and which atoms executed (``ran``).

    By default it registers no listener: a listener makes the engine build and deliver an event per
    transition, and commit each completion on its own rather than with the next atom's start, which
    costs a CLI run about as much as its atoms. Instead a thread refreshes ``progress`` from the
    engine's state array (`_POLL` times a second at most), and when the run ends ``ran`` and
    ``first_failure`` are read from storage: ``ran`` holds the atoms that were neither SUCCESS nor
    headed for a revert when the run started and ended in a state only executing reaches.

    With ``follow_events`` (a rewind, where atoms SUCCESS before run again) it follows the atom
    notifications instead: an atom resumed in state RUNNING runs again without a new RUNNING event,
    as in TaskFlow, so its completion counts too.
    """

    _EVENTS = (states.RUNNING, states.SUCCESS, states.FAILURE, states.REVERTED)

    def __init__(self, engine: Any, progress: ProgressLine | None = None, follow_events: bool = False) -> None:
        self._engine = engine
        self._notifier = engine.atom_notifier
        self._follow_events = follow_events
        self.progress = progress
        self.completed = 0
        self.reverted = 0
        self.ran: set[str] = set()
        self.first_failure: tuple[str, Any] | None = None
        codes = _codes()
        self._success, self._reverted = codes.success, codes.reverted
        self._executed, self._not_success, self._not_reverting = codes.executed, codes.not_success, codes.not_reverting
        #: The atoms' state and intention codes as the watch began.
        self._before: tuple[bytes, bytes] | None = None
        self._stop: threading.Event | None = None  # (made with the poller: `resume --all` watches many engines)
        self._poller: threading.Thread | None = None

    def __enter__(self) -> EngineWatcher:
        if self._follow_events:
            for event in self._EVENTS:
                self._notifier.register(event, self._on_event)
            return self
        storage = self._engine.storage
        self._before = (bytes(storage.states), bytes(storage.intentions))
        if self.progress is not None and self.progress.enabled:
            self._stop = threading.Event()
            self._poller = threading.Thread(target=self._poll, name="ferroflow-progress", daemon=True)
            self._poller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._follow_events:
            for event in self._EVENTS:
                self._notifier.deregister(event, self._on_event)
        else:
            if self._poller is not None:
                assert self._stop is not None
                self._stop.set()
                self._poller.join()
            self.collect()
        if self.progress is not None:
            self.progress.finish()

    def _counts(self) -> tuple[int, int]:
        """``(atoms SUCCESS, atoms REVERTED)`` now (C-speed counts over the state array)."""
        codes = self._engine.storage.states
        return codes.count(self._success), codes.count(self._reverted)

    def _poll(self) -> None:
        progress, stop = self.progress, self._stop
        assert progress is not None and stop is not None
        while not stop.wait(min(progress.interval, _POLL)):
            self._show(*self._counts())

    def _show(self, done: int, reverted: int) -> None:
        progress = self.progress
        if progress is None:
            return
        if reverted:
            progress.note = f"reverting: {reverted} reverted"
        progress.update(done)

    def collect(self) -> None:
        """Reads ``ran``, ``completed``, ``reverted`` and ``first_failure`` from storage as they are
        now (done when the watcher exits; call it earlier to see them inside the block). Following
        events, they are always up to date and this does nothing."""
        if self._follow_events:
            return
        engine, (before_states, before_intentions) = self._engine, self._before or (b"", b"")
        storage = engine.storage
        atoms = engine.compilation.atoms
        # The atoms that ran: executed now, not done before, not being reverted (masks of the
        # code arrays ANDed as big ints: a 100,000-atom flow in milliseconds, not a Python loop).
        size = len(before_states)
        ran = (
            int.from_bytes(bytes(storage.states[:size]).translate(self._executed), "little")
            & int.from_bytes(before_states.translate(self._not_success), "little")
            & int.from_bytes(before_intentions.translate(self._not_reverting), "little")
        )
        self.ran = set(map(operator.attrgetter("name"), itertools.compress(atoms, ran.to_bytes(size, "little"))))
        done, self.reverted = self._counts()
        self.completed = done - before_states.count(self._success)
        self._show(done, self.reverted)
        failures = storage.failures
        if failures:
            first = min(failures)
            self.first_failure = (atoms[first].name, failures[first])

    def _on_event(self, event_type: str, details: dict[str, Any]) -> None:
        name = details.get("task_name") or details.get("retry_name") or "?"
        if event_type == states.RUNNING:
            self.ran.add(name)
        elif event_type == states.SUCCESS:
            self.ran.add(name)
            self.completed += 1
            if self.progress is not None:
                self.progress.advance()
        elif event_type == states.FAILURE:
            self.ran.add(name)
            if self.first_failure is None:
                self.first_failure = (name, details.get("result"))
        elif event_type == states.REVERTED:
            self.reverted += 1
            if self.progress is not None:
                self.progress.note = f"reverting: {self.reverted} reverted"
                self.progress.refresh()
