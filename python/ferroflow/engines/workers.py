"""How the parallel engine hands ready atoms to threads: in chunks, with outcomes reported in batches.

A `concurrent.futures.Executor` costs a `Future` and a work item per atom, and waiting on a set of
futures costs time that grows with the set: 12-20 µs per no-op atom on 2 cores. Here the engine
appends a round's actions to one list; a worker takes the next *chunk* of it under one lock,
runs it and puts each outcome, as it comes, into one `queue.SimpleQueue` that the engine drains
in batches.

The workers are the pool's own threads (named ``ferroflow_<n>``, started as work needs them and
kept, idle, until `WorkerPool.shutdown`), or *runners* submitted to a caller's executor: each
takes chunks until the list is empty, then returns its thread to the executor.

Chunks adapt to the atoms' duration. A worker takes at most ``queued // (workers * CHUNK_FACTOR)``
actions (guided: the chunks shrink to one action as the list empties, so the workers end
together), and at most what it would run in about `CHUNK_BUDGET` seconds at the pace measured so
far: the first chunk is one action, and the limit at most doubles with each chunk run. Quick atoms
go out hundreds at a time; atoms that take a millisecond or more go out one by one.

A worker that finds the queue empty steals the later half of the longest chunk another worker has
not started: an atom that blocks or runs long (after quick ones set the pace) never holds back
those handed out with it while a worker is free.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

from ferroflow.utils import pacing

#: A worker takes at most ``1 / (workers * CHUNK_FACTOR)`` of what is queued at once ...
CHUNK_FACTOR = 4
#: ... and at most what it runs in about this many seconds at the pace measured so far.
CHUNK_BUDGET = 0.002
#: Taken actions are dropped from the list once there are this many and they are half of it.
_COMPACT_AT = 4096
#: The seq of a report that a runner submitted to a caller's executor never ran or broke.
BROKEN = -1


def default_workers() -> int:
    """`concurrent.futures.ThreadPoolExecutor`'s default size."""
    return min(32, (os.cpu_count() or 1) + 4)


def chunk_size(queued: int, workers: int, limit: int) -> int:
    """How many of ``queued`` actions a worker takes at once, with the pace's ``limit``."""
    return max(1, min(limit, queued // (workers * CHUNK_FACTOR)))


def next_limit(limit: int, size: int, seconds: float) -> int:
    """The chunk limit after a chunk of ``size`` actions ran in ``seconds``: what runs in
    `CHUNK_BUDGET` at that pace, at most twice the chunk (and at least one action)."""
    return pacing.next_size(limit, size, seconds, CHUNK_BUDGET)


class WorkerPool:
    """Runs ``call(index, kind)`` for submitted ``(index, kind)`` actions on up to ``max_workers``
    workers; each outcome is put into ``done`` as ``(seq, index, kind, ok, value)``, ``seq``
    numbering the actions in submission order from 0.

    ``call`` is expected not to raise (the engine's `_call` makes every error a failure); if it
    does, the outcome has ``ok`` None and the exception as ``value``, and the worker goes on. A
    runner that the caller's ``executor`` cancels (or that breaks) is reported with seq `BROKEN`
    and the exception, so that the engine raises it instead of waiting for outcomes that will
    never come.
    """

    def __init__(
        self,
        call: Callable[[int, int], tuple[bool, Any]],
        done: queue.SimpleQueue,
        max_workers: int | None = None,
        executor: futures.Executor | None = None,
        prefix: str = "ferroflow",
        clock: Callable[[], float] = time.perf_counter,
        record: bool = False,
    ) -> None:
        if max_workers is None:
            width = getattr(executor, "_max_workers", None)  # a ThreadPoolExecutor's size
            max_workers = width if isinstance(width, int) and width > 0 else default_workers()
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._call = call
        self._done = done
        self._max_workers = max_workers
        self._executor = executor
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        #: Actions not yet taken: ``_queued[_taken:]``; ``_base`` is the seq of ``_queued[0]``.
        self._queued: list[tuple[int, int]] = []
        self._taken = 0
        self._base = 0
        #: Own threads waiting for work and not yet woken; runners in the caller's executor.
        self._idle = 0
        self._runners = 0
        self._closing = False
        #: The most actions a chunk may hold at the pace measured so far (see `next_limit`).
        self._limit = 1
        self._threads: list[threading.Thread] = []
        #: Each busy worker's chunk (by thread id): the ``(seq, action)`` pairs it has not started.
        self._chunks: dict[int, deque[tuple[int, tuple[int, int]]]] = {}
        #: Actions idle workers took from others' chunks.
        self.stolen = 0
        #: With ``record``, the size of each chunk taken so far (what the tests count).
        self.chunks: list[int] | None = [] if record else None

    @property
    def max_workers(self) -> int:
        return self._max_workers

    def submit(self, actions: list[tuple[int, int]]) -> None:
        """Queues ``actions`` after those submitted before, and wakes or starts workers for them."""
        if not actions:
            return
        if self._executor is None:
            # Own threads start before the actions are queued: a thread's start waits until it
            # runs, which, once a worker runs quick atoms, can take the GIL's switch interval.
            with self._lock:
                if self._closing:
                    raise RuntimeError("cannot submit to a worker pool that was shut down")
                waiting = len(self._queued) - self._taken + len(actions)
                start = min(waiting - self._idle, self._max_workers - len(self._threads))
            for _ in range(start):
                self._start_thread()
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit to a worker pool that was shut down")
            queued = self._queued
            taken = self._taken
            if taken == len(queued) or (taken >= _COMPACT_AT and 2 * taken >= len(queued)):
                del queued[:taken]  # forget what workers took (amortised: at most half the list)
                self._base += taken
                self._taken = 0
            queued.extend(actions)
            waiting = len(queued) - self._taken
            if self._executor is None:
                wake = min(self._idle, waiting)
                if wake:
                    self._idle -= wake
                    self._wake.notify(wake)
                return
            start = min(waiting, self._max_workers - self._runners)
            self._runners += start
        for _ in range(start):
            self._start_runner()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _start_runner(self) -> None:
        assert self._executor is not None
        try:
            future = self._executor.submit(self._work)
        except BaseException:
            with self._lock:
                self._runners -= 1
            raise
        future.add_done_callback(self._runner_done)

    def _runner_done(self, future: futures.Future) -> None:
        error = futures.CancelledError() if future.cancelled() else future.exception()
        if error is not None:  # it never took its chunks (or broke between them)
            with self._lock:
                self._runners -= 1
            self._done.put((BROKEN, BROKEN, BROKEN, None, error))

    def _take(self, ran: int, seconds: float) -> deque[tuple[int, tuple[int, int]]] | None:
        """The calling worker's next chunk, as ``(seq, action)`` pairs, after its last chunk ran
        ``ran`` actions in ``seconds``: from the queue, else stolen from another worker's chunk.
        None when there is none: at once for a runner (it returns to its executor), once shut
        down for an own thread (it waits till then)."""
        me = threading.get_ident()
        with self._lock:
            if ran:
                self._limit = next_limit(self._limit, ran, seconds)
            while True:
                start = self._taken
                queued = self._queued
                if start < len(queued):
                    size = chunk_size(len(queued) - start, self._max_workers, self._limit)
                    self._taken = start + size
                    seq = self._base + start
                    chunk = deque(zip(range(seq, seq + size), queued[start : start + size], strict=True))
                    break
                chunk = self._steal(me)
                if chunk is not None:
                    break
                self._chunks.pop(me, None)
                if self._executor is not None:
                    self._runners -= 1
                    return None
                if self._closing:
                    return None
                self._idle += 1  # (`submit` takes it back when it wakes this thread)
                self._wake.wait()
            self._chunks[me] = chunk
            if self.chunks is not None:
                self.chunks.append(len(chunk))
            return chunk

    def _steal(self, me: int) -> deque[tuple[int, tuple[int, int]]] | None:
        """The later half (rounded up) of the longest chunk another worker has not started yet:
        an atom that blocks, or runs long, never holds back those handed out with it while a
        worker is free."""
        victim = None
        for owner, chunk in self._chunks.items():
            if owner != me and chunk and (victim is None or len(chunk) > len(victim)):
                victim = chunk
        if victim is None:
            return None
        stolen = []
        pop = victim.pop  # (the owner pops from the left meanwhile: each pop is atomic)
        for _ in range((len(victim) + 1) // 2):
            try:
                stolen.append(pop())
            except IndexError:
                break
        if not stolen:
            return None
        stolen.reverse()
        self.stolen += len(stolen)
        return deque(stolen)

    def _work(self) -> None:
        call, put, take, clock = self._call, self._done.put, self._take, self._clock
        ran, seconds = 0, 0.0
        try:
            while True:
                chunk = take(ran, seconds)
                if chunk is None:
                    return
                popleft = chunk.popleft
                ran = 0
                started = clock()
                while True:
                    try:
                        seq, (index, kind) = popleft()
                    except IndexError:  # done (or the rest was stolen)
                        break
                    try:
                        ok, value = call(index, kind)
                    except BaseException as exc:  # reported (raised on the engine thread), never lost
                        ok, value = None, exc
                    put((seq, index, kind, ok, value))
                    ran += 1
                seconds = clock() - started
        finally:
            with self._lock:
                self._chunks.pop(threading.get_ident(), None)

    def shutdown(self, cancel: bool = False) -> list[tuple[int, int]]:
        """Lets the own threads end once what is queued has run (or, with ``cancel``, drops what
        no worker took yet and returns it) and waits for them; runners in a caller's executor
        end by themselves when nothing is left."""
        with self._lock:
            self._closing = True
            dropped: list[tuple[int, int]] = []
            if cancel:
                for chunk in self._chunks.values():  # (what the workers hold and did not start)
                    while True:
                        try:
                            dropped.append(chunk.pop()[1])
                        except IndexError:
                            break
                dropped.reverse()
                dropped.extend(self._queued[self._taken :])
                del self._queued[self._taken :]
            self._wake.notify_all()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join()
        return dropped
