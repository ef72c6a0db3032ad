"""Progress of a running flow: a line on stderr fed by the engine's atom notifications."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ferroflow import states

_TTY_INTERVAL = 0.1  # redraw a terminal line at most 10 times a second
_LOG_INTERVAL = 1.0  # elsewhere (a pipe, a log file) write a new line at most once a second


class ProgressLine:
    """``label: done/total atoms (pct%), rate atoms/s`` on a stream, refreshed at a bounded rate.

    On a terminal the line is redrawn in place; elsewhere each refresh is a new line. The rate
    counts only atoms done since the line was created (a resumed flow starts with some done).
    """

    def __init__(
        self, label: str, total: int, done: int = 0, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.label = label
        self.total = total
        self.done = done
        #: Extra words shown after the counts (e.g. how many atoms were reverted).
        self.note = ""
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._tty = _isatty(self._stream)
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
        text = f"{self.label}: {done}/{self.total} atoms ({percent:.0f}%), {rate:,.0f} atoms/s"
        return f"{text}, {self.note}" if self.note else text

    def finish(self) -> None:
        """Shows the final counts and ends the line."""
        if not self._enabled:
            return
        self.refresh(force=True)
        if self._tty and self._shown is not None:
            self._stream.write("\n")
            self._stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class EngineWatcher:
    """Follows one engine's atom notifications while registered (use as a context manager).

    Counts atoms that completed (advancing ``progress``) and were reverted, remembers the names of
    the atoms that executed (an atom resumed in state RUNNING runs again without a new RUNNING
    event, as in TaskFlow, so its completion counts too), and the first atom that failed.
    """

    _EVENTS = (states.RUNNING, states.SUCCESS, states.FAILURE, states.REVERTED)

    def __init__(self, engine: Any, progress: ProgressLine | None = None) -> None:
        self._notifier = engine.atom_notifier
        self.progress = progress
        self.completed = 0
        self.reverted = 0
        self.ran: set[str] = set()
        self.first_failure: tuple[str, Any] | None = None

    def __enter__(self) -> EngineWatcher:
        for event in self._EVENTS:
            self._notifier.register(event, self._on_event)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for event in self._EVENTS:
            self._notifier.deregister(event, self._on_event)
        if self.progress is not None:
            self.progress.finish()

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
