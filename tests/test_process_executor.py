"""The parallel engine with ``executor='processes'``: tasks run in worker processes, their
picklability is checked at compile time, progress they report comes back."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent import futures

import pytest

from ferroflow import engines, exceptions, task
from ferroflow.patterns import linear_flow, unordered_flow
from ferroflow.persistence import backends


class Square(task.Task):
    def execute(self, x: int) -> tuple[int, int]:
        return x * x, os.getpid()


class Boom(task.Task):
    def execute(self) -> None:
        raise RuntimeError("boom in a worker")


class Undoable(task.Task):
    def execute(self) -> int:
        return 1

    def revert(self, result, flow_failures, **kwargs) -> None:
        # (what revert got, saved where the parent can read it: a file named by the test)
        with open(os.environ["FERROFLOW_TEST_REVERT_FILE"], "a") as out:
            out.write(f"reverted result={result} in {os.getpid()}\n")


class Reporter(task.Task):
    def execute(self) -> int:
        self.update_progress(0.25)
        self.notifier.notify(task.EVENT_UPDATE_PROGRESS, {"progress": 0.5, "step": "half"})
        return os.getpid()


class HoldsALock(task.Task):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.lock = threading.Lock()

    def execute(self) -> None:
        pass


def _squares(n: int) -> unordered_flow.Flow:
    return unordered_flow.Flow("squares").add(
        *[Square(f"sq{i}", provides=f"out{i}", rebind={"x": f"in{i}"}) for i in range(n)]
    )


@pytest.mark.parametrize("kind", ["process", "processes", "processpool", "Processes"])
def test_tasks_run_in_worker_processes(kind: str) -> None:
    store = {f"in{i}": i for i in range(4)}
    engine = engines.load(_squares(4), store=store, engine="parallel", executor=kind, max_workers=2)
    engine.run()
    results = [engine.storage.fetch(f"out{i}") for i in range(4)]
    assert [value for value, _ in results] == [0, 1, 4, 9]
    assert os.getpid() not in {pid for _, pid in results}


def test_a_process_pool_given_is_used_and_left_open() -> None:
    with futures.ProcessPoolExecutor(max_workers=2) as pool:
        engine = engines.load(_squares(3), store={f"in{i}": i for i in range(3)}, engine="parallel", executor=pool)
        engine.run()
        assert engine.storage.fetch("out2")[0] == 4
        assert pool.submit(abs, -3).result() == 3  # (not shut down by the engine)


def test_engine_conf_spelling() -> None:
    engine = engines.load(
        _squares(2), store={"in0": 3, "in1": 4}, engine_conf={"engine": "parallel", "executor": "processes"}
    )
    engine.run()
    assert engine.storage.fetch("out1")[0] == 16


def _local_class_flow() -> linear_flow.Flow:
    class Local(task.Task):
        def execute(self) -> None:
            pass

    return linear_flow.Flow("with-local").add(Local("local-task"))


@pytest.mark.parametrize(
    ("make", "atom_name", "flow_name"),
    [
        (_local_class_flow, "local-task", "with-local"),
        (lambda: linear_flow.Flow("lambdas").add(task.FunctorTask(lambda: 1, name="anon")), "anon", "lambdas"),
        (lambda: linear_flow.Flow("locked").add(HoldsALock("locker")), "locker", "locked"),
    ],
)
def test_unpicklable_tasks_fail_at_compile_naming_atom_and_flow(make, atom_name: str, flow_name: str) -> None:
    engine = engines.load(make(), engine="parallel", executor="processes")
    with pytest.raises(exceptions.CompilationFailure) as caught:
        engine.compile()
    message = str(caught.value)
    assert repr(atom_name) in message and repr(flow_name) in message and "pickle" in message


def test_unpicklable_tasks_are_fine_on_threads() -> None:
    engine = engines.load(_local_class_flow(), engine="parallel", executor="threads")
    engine.run()


def test_a_failure_in_a_worker_reverts_the_flow_there(tmp_path, monkeypatch) -> None:
    revert_file = tmp_path / "reverts.txt"
    monkeypatch.setenv("FERROFLOW_TEST_REVERT_FILE", str(revert_file))
    flow = linear_flow.Flow("fails").add(Undoable("undoable"), Boom("boom"))
    engine = engines.load(flow, engine="parallel", executor="processes", max_workers=2)
    with pytest.raises(RuntimeError, match="boom in a worker"):
        engine.run()
    lines = revert_file.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reverted result=1 in ")
    assert int(lines[0].rsplit(" ", 1)[1]) != os.getpid()
    assert engine.storage.get_flow_state() == "REVERTED"


def test_progress_reported_in_a_worker_reaches_listeners_and_storage() -> None:
    reporter = Reporter("reporter")
    heard: list[tuple[float, dict]] = []
    reporter.notifier.register(task.EVENT_UPDATE_PROGRESS, lambda event, details: heard.append(details))
    engine = engines.load(linear_flow.Flow("progress").add(reporter), engine="parallel", executor="processes")
    engine.run()
    # (0.0 and 1.0: the engine's own, around the task, as on threads and in TaskFlow)
    assert [d["progress"] for d in heard] == [0.0, 0.25, 0.5, 1.0]
    assert heard[2].get("step") == "half"
    assert engine.storage.get_task_progress("reporter") == 1.0  # (the engine's own 1.0 at completion)
    assert engine.storage.get_task_progress_details("reporter")["details"] == {"step": "half"}


def test_results_from_workers_are_persisted(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'flows.db'}"
    store = {f"in{i}": i + 1 for i in range(3)}
    engine = engines.load(_squares(3), store=store, backend=uri, engine="parallel", executor="processes")
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    backend = backends.fetch({"connection": uri})
    with backend.get_connection() as conn:
        details = [fd for book in conn.get_logbooks() for fd in book if fd.uuid == flow_uuid]
    assert len(details) == 1
    results = {ad.name: ad.results for ad in details[0]}
    assert [results[f"sq{i}"][0] for i in range(3)] == [1, 4, 9]


def test_functor_tasks_of_module_functions_run_in_workers() -> None:
    flow = linear_flow.Flow("functors").add(
        task.FunctorTask(_triple, name="triple", provides="tripled", requires=["x"])
    )
    engine = engines.load(flow, store={"x": 5}, engine="parallel", executor="processes")
    engine.run()
    assert engine.storage.fetch("tripled") == 15


def _triple(x: int) -> int:
    return 3 * x


def test_spawned_workers() -> None:
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        engine = engines.load(_squares(2), store={"in0": 2, "in1": 3}, engine="parallel", executor=pool)
        engine.run()
    assert [engine.storage.fetch(f"out{i}")[0] for i in range(2)] == [4, 9]
