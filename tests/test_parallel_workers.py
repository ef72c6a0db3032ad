"""How the parallel engine hands atoms to threads (`ferroflow.engines.workers`): chunks that adapt
to the atoms' pace, outcomes analysed in submission order and committed together, runners in a
caller's executor. Everything is asserted by counting (chunks, hand-offs, events), never by time."""

from __future__ import annotations

import queue
import threading
from concurrent import futures
from typing import Any

import pytest

from ferroflow import engines, states, task
from ferroflow.engines import workers
from ferroflow.engines.engine import _take_outcomes
from ferroflow.engines.storage import STATE_CODES
from ferroflow.patterns import unordered_flow

WAIT = 10  # seconds a blocked atom waits before giving up (a failed assertion, never a hang)


class _Clock:
    """A fake clock advancing ``step`` seconds at each reading."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _drain(done: queue.SimpleQueue, n: int) -> list[tuple]:
    return [done.get(timeout=WAIT) for _ in range(n)]


def test_pool_reports_every_action_once_numbered_in_submission_order() -> None:
    done: queue.SimpleQueue = queue.SimpleQueue()
    pool = workers.WorkerPool(lambda index, kind: (True, index * 10 + kind), done, max_workers=3, record=True)
    try:
        pool.submit([(i, 0) for i in range(500)])
        pool.submit([(i, 1) for i in range(500, 700)])
        outcomes = _drain(done, 700)
    finally:
        assert pool.shutdown() == []
    assert sorted(seq for seq, *_ in outcomes) == list(range(700))
    for seq, index, kind, ok, value in outcomes:
        assert (index, kind) == ((seq, 0) if seq < 500 else (seq, 1))
        assert ok is True and value == index * 10 + kind
    assert sum(pool.chunks) == 700


def test_quick_actions_go_out_in_growing_chunks_capped_by_the_queue() -> None:
    """At a pace that fits the budget the limit doubles per chunk, but a chunk never holds more
    than queued / (workers * CHUNK_FACTOR): the last actions go out one by one."""
    done: queue.SimpleQueue = queue.SimpleQueue()
    gate = threading.Event()
    first = [True]

    def call(index: int, kind: int) -> tuple[bool, Any]:
        if first[0]:  # hold the only worker until every action is queued
            first[0] = False
            assert gate.wait(WAIT)
        return True, None

    pool = workers.WorkerPool(call, done, max_workers=1, clock=_Clock(0.0), record=True)
    try:
        pool.submit([(0, 0)])
        pool.submit([(i, 0) for i in range(1, 2001)])
        gate.set()
        _drain(done, 2001)
    finally:
        pool.shutdown()
    chunks = pool.chunks
    assert sum(chunks) == 2001
    assert chunks[:7] == [1, 2, 4, 8, 16, 32, 64]  # the limit doubles with each chunk run ...
    queued = 2000
    for size in chunks[1:]:  # ... and what is queued caps each chunk
        assert size <= max(1, queued // workers.CHUNK_FACTOR)
        queued -= size
    assert max(chunks) > 100
    assert chunks[-workers.CHUNK_FACTOR :] == [1] * workers.CHUNK_FACTOR
    assert len(chunks) < 60  # 2,001 actions in few hand-offs


def test_slow_actions_go_out_one_by_one() -> None:
    """Actions slower than the chunk budget are never grouped: no action waits behind another
    in one worker's chunk while a worker is free."""
    done: queue.SimpleQueue = queue.SimpleQueue()
    pool = workers.WorkerPool(lambda index, kind: (True, None), done, max_workers=4, clock=_Clock(1.0), record=True)
    try:
        pool.submit([(i, 0) for i in range(400)])
        _drain(done, 400)
    finally:
        pool.shutdown()
    assert pool.chunks == [1] * 400


def test_an_idle_worker_steals_what_a_blocked_worker_holds() -> None:
    """At a quick pace a worker takes many actions at once; one of them blocks until all the
    others ran, which only happens if the other worker steals the rest of its chunk."""
    done: queue.SimpleQueue = queue.SimpleQueue()
    others_ran = threading.Event()
    count = [0]
    lock = threading.Lock()
    blocker, total = 1_000, 200  # (the blocking action, and the round it is first of)

    def call(index: int, kind: int) -> tuple[bool, Any]:
        if index == blocker:
            return True, others_ran.wait(WAIT)
        if index > blocker:
            with lock:
                count[0] += 1
                if count[0] == total - 1:
                    others_ran.set()
        return True, None

    pool = workers.WorkerPool(call, done, max_workers=2, clock=_Clock(0.0), record=True)
    try:
        pool.submit([(i, 0) for i in range(400)])  # quick: the limit grows
        _drain(done, 400)
        assert pool.chunks is not None and max(pool.chunks) >= 32
        pool.chunks.clear()
        pool.submit([(blocker + i, 0) for i in range(total)])
        outcomes = {index: value for _, index, _, _, value in _drain(done, total)}
    finally:
        pool.shutdown()
    assert outcomes[blocker] is True  # the others ran while it blocked
    assert pool.chunks[0] > 1  # the blocker's chunk held others ...
    assert pool.stolen > 0  # ... which the other worker took


@pytest.mark.parametrize("max_workers", [2, 4, 8])
def test_with_stealing_every_action_is_reported_exactly_once(max_workers: int) -> None:
    done: queue.SimpleQueue = queue.SimpleQueue()
    blocked = threading.Event()

    def call(index: int, kind: int) -> tuple[bool, Any]:
        if index % 97 == 0:  # now and then an action that lets the others steal
            blocked.wait(0.0005)
        return True, index

    pool = workers.WorkerPool(call, done, max_workers=max_workers)
    seen: list[int] = []
    try:
        first = 0
        for size in [1, 3, 700, 2, 5_000, 64, 1, 1_500]:
            pool.submit([(i, 0) for i in range(first, first + size)])
            first += size
            outcomes = _drain(done, size)
            assert all(seq == index == value for seq, index, _, _, value in outcomes)
            seen.extend(seq for seq, *_ in outcomes)
    finally:
        pool.shutdown()
    assert sorted(seen) == list(range(first))
    assert done.empty()


def test_next_limit_follows_the_pace() -> None:
    budget = workers.CHUNK_BUDGET
    assert workers.next_limit(1, 1, 0.0) == 2  # too quick to measure: double
    assert workers.next_limit(64, 64, 64 * budget / 1000) == 128  # quick: at most twice the chunk
    assert workers.next_limit(64, 64, 64 * budget / 10) == 10  # what fits the budget
    assert workers.next_limit(64, 64, 64 * budget) == 1  # one action fills the budget
    assert workers.next_limit(8, 8, 100.0) == 1


def test_a_call_that_raises_is_reported_and_the_worker_goes_on() -> None:
    done: queue.SimpleQueue = queue.SimpleQueue()

    def call(index: int, kind: int) -> tuple[bool, Any]:
        if index == 1:
            raise KeyError("engine bug")
        return True, index

    pool = workers.WorkerPool(call, done, max_workers=1)
    try:
        pool.submit([(0, 0), (1, 0), (2, 0)])
        outcomes = sorted(_drain(done, 3))
    finally:
        pool.shutdown()
    assert [(seq, ok) for seq, _, _, ok, _ in outcomes] == [(0, True), (1, None), (2, True)]
    assert isinstance(outcomes[1][4], KeyError)


def test_shutdown_with_cancel_returns_what_no_worker_took() -> None:
    done: queue.SimpleQueue = queue.SimpleQueue()
    gate = threading.Event()
    started = threading.Event()

    def call(index: int, kind: int) -> tuple[bool, Any]:
        started.set()
        assert gate.wait(WAIT)
        return True, None

    pool = workers.WorkerPool(call, done, max_workers=1)
    pool.submit([(0, 0)])
    assert started.wait(WAIT)  # the only worker holds action 0 (a first chunk is one action)
    pool.submit([(i, 0) for i in range(1, 5)])
    dropped: list[list[tuple[int, int]]] = []
    stopping = threading.Thread(target=lambda: dropped.append(pool.shutdown(cancel=True)))
    stopping.start()
    for _ in range(WAIT * 1000):
        if pool._closing:
            break
        threading.Event().wait(0.001)
    gate.set()
    stopping.join(WAIT)
    assert dropped == [[(1, 0), (2, 0), (3, 0), (4, 0)]]
    assert done.get(timeout=WAIT)[:2] == (0, 0)
    assert done.empty()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit([(9, 0)])


def test_outcomes_taken_together_are_sorted_by_submission() -> None:
    done: queue.SimpleQueue = queue.SimpleQueue()
    for seq in (3, 0, 2, 1):
        done.put((seq, seq, 0, True, None))
    assert [seq for seq, *_ in _take_outcomes(done, None)] == [0, 1, 2, 3]
    assert _take_outcomes(done, 0.001) == []  # (a timeout: nothing arrived)


# -- the engine -------------------------------------------------------------------------------


class Waits(task.Task):
    """Waits for ``gate`` (up to `WAIT` s); returns whether it was set in time."""

    def __init__(self, name: str, gate: threading.Event, priority: int = 0) -> None:
        super().__init__(name, provides=name)
        self.priority = priority
        self._gate = gate

    def execute(self) -> bool:
        return self._gate.wait(WAIT)


class Counts(task.Task):
    """Records the thread it ran on; the last of ``total`` to run sets ``all_ran``."""

    def __init__(self, name: str, ran: list[str], total: int, all_ran: threading.Event) -> None:
        super().__init__(name, provides=name)
        self._ran = ran
        self._total = total
        self._all_ran = all_ran

    def execute(self) -> str:
        self._ran.append(threading.current_thread().name)
        if len(self._ran) == self._total:
            self._all_ran.set()
        return self.name


def _flow(n: int, first_waits_for_the_rest: bool) -> tuple[Any, list[str], threading.Event]:
    """``n`` counting atoms and, first in line (highest priority), one that waits until they all ran."""
    ran: list[str] = []
    all_ran = threading.Event()
    atoms: list[task.Task] = [Counts(f"c{i}", ran, n, all_ran) for i in range(n)]
    if first_waits_for_the_rest:
        atoms.insert(0, Waits("first", all_ran, priority=10))
    return unordered_flow.Flow("f").add(*atoms), ran, all_ran


def test_a_slow_atom_holds_back_none_of_the_others() -> None:
    """The first atom handed out waits until all the others ran: they must go to the other
    worker, not sit in the first one's chunk."""
    flow, ran, _ = _flow(60, first_waits_for_the_rest=True)
    engine = engines.load(flow, engine="parallel", max_workers=2)
    engine.run()
    assert engine.storage.fetch("first") is True  # the others ran while it waited
    assert len(ran) == 60


class _Threads(futures.Executor):
    """Runs each submitted callable on a new thread; `join` waits for them all."""

    _max_workers = 2  # (read by the engine as the executor's width)

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future:
        future: futures.Future = futures.Future()

        def run() -> None:
            future.set_result(fn(*args, **kwargs))

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()
        return future

    def join(self) -> None:
        for thread in self.threads:
            thread.join(WAIT)
            assert not thread.is_alive()


def test_completions_arriving_together_are_analysed_in_submission_order_and_committed_once() -> None:
    """The first atom handed out finishes last. The engine, held at WAITING until every runner
    returned (so every outcome is queued), takes the outcomes together: they are analysed in the
    order the atoms were handed out, not the order they finished, and published in one group."""
    flow, ran, _ = _flow(20, first_waits_for_the_rest=True)
    executor = _Threads()
    engine = engines.load(flow, engine="parallel", executor=executor)
    running: list[str] = []
    succeeded: list[str] = []

    def record(state: str, details: dict[str, Any]) -> None:
        if state == states.RUNNING:
            running.append(details["task_name"])
        elif state == states.SUCCESS:
            succeeded.append(details["task_name"])

    engine.atom_notifier.register(engine.atom_notifier.ANY, record)
    groups: list[int] = []
    publish = engine._publish
    success = STATE_CODES[states.SUCCESS]

    def counting_publish(batches: list[Any]) -> None:
        groups.append(sum(state == success for transitions, _, _ in batches for _, state, _ in transitions))
        publish(batches)

    engine._publish = counting_publish  # type: ignore[method-assign]
    waits = 0
    for state in engine.run_iter():
        if state == states.WAITING:
            waits += 1
            if waits == 1:  # all was handed out: let it all run before the engine analyses
                executor.join()
    assert engine.storage.get_flow_state() == states.SUCCESS
    assert waits == 1
    assert len(executor.threads) == 2
    assert len(ran) == 20 and engine.storage.fetch("first") is True  # it finished last
    assert running[0] == "first" and len(running) == 21
    assert succeeded == running  # analysed in hand-out order
    assert [n for n in groups if n] == [21]  # one group: one transaction on a durable backend


def test_a_callers_executor_gets_a_runner_per_worker_not_a_future_per_atom() -> None:
    class Counting(futures.ThreadPoolExecutor):
        def __init__(self) -> None:
            super().__init__(max_workers=3, thread_name_prefix="callers")
            self.submitted = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future:
            self.submitted += 1
            return super().submit(fn, *args, **kwargs)

    flow, ran, _ = _flow(200, first_waits_for_the_rest=False)
    with Counting() as executor:
        engine = engines.load(flow, engine="parallel", executor=executor)
        engine.run()
        assert engine.storage.get_flow_state() == states.SUCCESS
        assert len(ran) == 200
        assert {name.split("_")[0] for name in ran} == {"callers"}
        assert 1 <= executor.submitted <= 3  # one round of 200 atoms: at most a runner per thread
        assert executor.submit(lambda: 42).result(WAIT) == 42  # never shut down, its threads free


def test_own_threads_are_named_and_no_more_than_max_workers() -> None:
    flow, ran, _ = _flow(300, first_waits_for_the_rest=False)
    engine = engines.load(flow, engine="parallel", max_workers=3)
    engine.run()
    assert len(ran) == 300
    assert all(name.startswith("ferroflow_") for name in ran)
    assert 1 <= len(set(ran)) <= 3
    assert not [t for t in threading.enumerate() if t.name.startswith("ferroflow_")]  # all ended


@pytest.mark.timeout(60)
def test_a_runner_the_callers_executor_cancels_is_raised_not_waited_for() -> None:
    class Cancels(futures.Executor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future:
            future: futures.Future = futures.Future()
            future.cancel()
            return future

    flow, _, _ = _flow(5, first_waits_for_the_rest=False)
    engine = engines.load(flow, engine="parallel", executor=Cancels())
    with pytest.raises(futures.CancelledError):
        engine.run()


def test_an_inline_executor_runs_the_flow() -> None:
    class Inline(futures.Executor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future:
            future: futures.Future = futures.Future()
            future.set_result(fn(*args, **kwargs))
            return future

    flow, ran, _ = _flow(50, first_waits_for_the_rest=False)
    engine = engines.load(flow, engine="parallel", executor=Inline())
    engine.run()
    assert engine.storage.get_flow_state() == states.SUCCESS
    assert len(ran) == 50


def test_run_timeout_wakes_the_engine_while_atoms_run() -> None:
    """With ``timeout`` the engine comes back (WAITING, ANALYZING, ...) while nothing finished."""
    gate = threading.Event()
    engine = engines.load(unordered_flow.Flow("f").add(Waits("w", gate)), engine="parallel", max_workers=2)
    waits = 0
    for state in engine.run_iter(timeout=0.001):
        if state == states.WAITING:
            waits += 1
            if waits == 3:
                gate.set()
    assert waits >= 3
    assert engine.storage.fetch("w") is True  # released by the test, not by its own time-out
