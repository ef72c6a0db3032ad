"""What TaskFlow programs rely on and ferroflow now does the same way (issue 14, "TaskFlow compatibility to
the last test"): module paths a plain import rewrite needs, the storage API programs call before and
after a run, and the engine behaviours TaskFlow's own tests assert.
"""

from __future__ import annotations

import pickle
import threading

import pytest

from ferroflow import engines, exceptions, retry, states, task
from ferroflow.engines.action_engine import engine as action_engine
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow
from ferroflow.persistence import backends, models
from ferroflow.persistence.backends import impl_dir, impl_memory, impl_sqlalchemy
from ferroflow.storage import Storage
from ferroflow.types import graph
from ferroflow.types.failure import Failure
from ferroflow.utils import persistence_utils


class Add(task.Task):
    def execute(self, x=0):
        return x + 1


class Fail(task.Task):
    def execute(self):
        raise RuntimeError("boom")


class Record(task.Task):
    """Appends ``name:execute`` / ``name:revert`` to a shared list."""

    def __init__(self, name, log, **kwargs):
        super().__init__(name=name, **kwargs)
        self._log = log

    def execute(self):
        self._log.append(f"{self.name}:execute")

    def revert(self, *args, **kwargs):
        self._log.append(f"{self.name}:revert")


def _events(engine):
    seen = []
    engine.atom_notifier.register("*", lambda state, details: seen.append(f"{details['task_name']} {state}"))
    return seen


# -- module paths --------------------------------------------------------------------------------


def test_engine_classes_live_where_taskflow_programs_import_them_from() -> None:
    engine = engines.load(linear_flow.Flow("f"), engine="parallel")
    assert isinstance(engine, action_engine.ParallelActionEngine)
    assert repr(engine).startswith("<ferroflow.engines.action_engine.engine.ParallelActionEngine object at ")
    assert isinstance(engines.load(linear_flow.Flow("f")), action_engine.SerialActionEngine)
    # pickled by reference to the same path, and found again there
    assert pickle.loads(pickle.dumps(action_engine.SerialActionEngine)) is action_engine.SerialActionEngine


def test_sqlalchemy_backend_serves_sqlite_natively(tmp_path) -> None:
    backend = impl_sqlalchemy.SQLAlchemyBackend({"connection": f"sqlite:///{tmp_path / 'flows.db'}"})
    assert isinstance(backend, impl_sqlalchemy.SQLAlchemyBackend)
    assert isinstance(backends.fetch({"connection": "sqlite://"}), impl_sqlalchemy.SQLAlchemyBackend)
    assert not isinstance(impl_memory.MemoryBackend({}), impl_sqlalchemy.SQLAlchemyBackend)
    with pytest.raises(exceptions.NotFound, match="mysql"):
        impl_sqlalchemy.SQLAlchemyBackend({"connection": "mysql://localhost/x"})
    with pytest.raises(ValueError, match="engine"):
        impl_sqlalchemy.SQLAlchemyBackend({"connection": "sqlite://"}, engine=object())


def test_dir_backend_file_cache_is_bounded_and_validated(tmp_path) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="greater than or equal to one"):
            impl_dir.DirBackend({"path": str(tmp_path), "max_cache_size": bad})
    backend = impl_dir.DirBackend({"path": str(tmp_path), "max_cache_size": 2})
    assert backend.max_cache_size == 2
    for key in "abc":
        backend.file_cache[key] = key
    assert backend.file_cache.currsize == 2 and "a" not in backend.file_cache


def test_compilation_execution_graph_has_the_atoms_and_their_order() -> None:
    a, b, c = Add("a", provides="x"), Add("b", provides="y"), Add("c")
    flow = linear_flow.Flow("f").add(a, unordered_flow.Flow("u").add(b, c))
    engine = engines.load(flow)
    engine.compile()
    execution = engine.compilation.execution_graph
    assert isinstance(execution, graph.DiGraph)
    assert set(execution) == {a, b, c}
    assert execution.has_edge(a, b) and execution.has_edge(a, c) and not execution.has_edge(b, c)
    assert execution.topological_sort()[0] is a


# -- ferroflow.storage.Storage (a flow detail's storage without an engine) -----------------------


@pytest.fixture(params=["memory", "sqlite"])
def backend(request, tmp_path):
    conf = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store.db'}"
    with backends.backend(conf) as be:
        yield be


def test_storage_over_a_saved_flow_detail_writes_through(backend) -> None:
    _book, fd = persistence_utils.temporary_flow_detail(backend)
    storage = Storage(fd, backend=backend)
    storage.ensure_atom(Add("a", provides="x"))
    storage.save("a", 5)
    storage.inject({"y": 1})
    again = Storage(backend.get_connection().get_flow_details(fd.uuid), backend=backend)
    assert again.get_atom_state("a") == states.SUCCESS
    assert again.fetch_all() == {"y": 1}  # what "a" provides is known once the atom is ensured again
    again.ensure_atom(Add("a", provides="x"))
    assert again.fetch_all() == {"x": 5, "y": 1}
    assert again.fetch_mapped_args({"value": "x", "other": "y"}) == {"value": 5, "other": 1}


def test_storage_keeps_failures_with_their_traceback_while_they_match(backend) -> None:
    _book, fd = persistence_utils.temporary_flow_detail(backend)
    storage = Storage(fd, backend=backend)
    storage.ensure_atom(Add("a"))
    failure = Failure.from_exception(RuntimeError("boom"))
    storage.save("a", failure, states.FAILURE)
    assert storage.get("a") is failure
    reloaded = Storage(backend.get_connection().get_flow_details(fd.uuid), backend=backend).get("a")
    assert reloaded.matches(failure) and reloaded.exc_info is None


def test_storage_retry_history_and_progress_details() -> None:
    _book, fd = persistence_utils.temporary_flow_detail()
    storage = Storage(fd)
    storage.ensure_atom(retry.Times(3, name="r"))
    storage.save("r", 1)
    storage.save_retry_failure("r", "t", Failure.from_exception(ValueError("no")))
    ((name, history),) = storage.get_retry_histories()
    assert name == "r" and history.caused_by(ValueError) and list(history.provided_iter()) == [1]
    storage.ensure_atom(Add("t"))
    storage.set_task_progress("t", 0.5, {"step": 1})
    storage.set_task_progress("t", 0.7)
    assert storage.get_task_progress("t") == 0.7
    assert storage.get_task_progress_details("t") == {"at_progress": 0.5, "details": {"step": 1}}


def test_storage_refuses_a_task_and_a_retry_of_one_name() -> None:
    storage = Storage(persistence_utils.temporary_flow_detail()[1])
    storage.ensure_atom(Add("same"))
    with pytest.raises(exceptions.Duplicate, match="same"):
        storage.ensure_atom(retry.Times(2, name="same"))


def test_storage_ensures_an_atom_once_under_concurrent_callers() -> None:
    _book, fd = persistence_utils.temporary_flow_detail()
    storage = Storage(fd)
    threads = [threading.Thread(target=storage.ensure_atom, args=(Add("a"),)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fd) == 1


# -- engine.storage: what a program sets before a run is where the run starts --------------------


def test_states_set_before_a_run_are_where_it_starts(backend) -> None:
    flow = linear_flow.Flow("f", retry=retry.Times(3, name="r")).add(Add("t1"), Add("t2"))
    engine = engines.load(flow, backend=backend)
    engine.compile()
    engine.prepare()
    engine.storage.set_atom_intention("r", states.RETRY)
    engine.storage.set_atom_state("r", states.SUCCESS)
    engine.storage.set_atom_state("t1", states.REVERTED)
    engine.storage.set_atom_state("t2", states.REVERTED)
    seen = []
    engine.atom_notifier.register("*", lambda state, details: seen.append((details.get("retry_name"), state)))
    engine.run()
    assert (("r", states.RETRYING)) in seen
    assert engine.storage.get_atom_state("t2") == states.SUCCESS
    assert engine.storage.get_retry_history("r").provided_iter() is not None
    saved = {ad.name: ad.state for ad in backend.get_connection().get_atoms_for_flow(engine.storage.flow_uuid)}
    assert saved["t1"] == saved["t2"] == states.SUCCESS


def test_saved_results_are_reused_by_the_run() -> None:
    ran = []

    class Note(task.Task):
        def execute(self):
            ran.append(self.name)
            return self.name

    engine = engines.load(linear_flow.Flow("f").add(Note("a", provides="x"), Add("b", rebind={"x": "x"})))
    engine.compile()
    engine.prepare()
    engine.storage.save("a", 41)
    engine.run()
    assert ran == [] and engine.storage.get("b") == 42


def test_fetch_mapped_args_sees_what_the_atom_sees() -> None:
    flow = linear_flow.Flow("f").add(
        Add("a", rebind={"x": "source"}, provides="x"), Add("b", provides="x"), Add("c", provides="x")
    )
    engine = engines.load(flow, store={"source": 0})
    engine.run()
    assert engine.storage.fetch_mapped_args({"x": "x"}, atom_name="b") == {"x": 1}
    assert engine.storage.fetch_mapped_args({"x": "x"}, atom_name="c") == {"x": 2}
    with pytest.raises(exceptions.NotFound, match="nothing"):
        engine.storage.fetch_mapped_args({"x": "nothing"}, atom_name="c")
    assert engine.storage.fetch_mapped_args({"x": "nothing"}, atom_name="c", optional_args={"x"}) == {}


# -- engine behaviours (issue 14's items) ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["serial", "parallel"])
@pytest.mark.parametrize("pattern", [linear_flow, unordered_flow, graph_flow])
def test_run_iter_of_a_flow_with_nothing_to_run_still_schedules_waits_and_analyses(kind, pattern) -> None:
    """Item 1."""
    engine = engines.load(pattern.Flow("empty"), engine=kind)
    assert list(engine.run_iter()) == [
        states.RESUMING,
        states.SCHEDULING,
        states.WAITING,
        states.ANALYZING,
        states.SUCCESS,
    ]


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_a_reverted_flow_runs_again_from_the_start(kind) -> None:
    """Item 2: the second run resets every atom and runs them again (and fails again here)."""
    log = []
    engine = engines.load(linear_flow.Flow("f").add(Record("a", log), Fail("b")), engine=kind)
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    assert engine.storage.get_flow_state() == states.REVERTED
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    assert log == ["a:execute", "a:revert", "a:execute", "a:revert"]


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_suspending_while_reverting_stops_between_reverts(kind) -> None:
    """Item 3: a listener suspends when b is reverted; a is reverted by the next run."""
    log = []
    flow = linear_flow.Flow("f").add(Record("a", log), Record("b", log), Fail("c"))
    engine = engines.load(flow, engine=kind)

    def suspend_after_b(state, details):
        if details["task_name"] == "b" and state == states.REVERTED:
            engine.suspend()

    engine.atom_notifier.register("*", suspend_after_b)
    engine.run()
    assert engine.storage.get_flow_state() == states.SUSPENDED
    assert log == ["a:execute", "b:execute", "b:revert"]
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    assert log[-1] == "a:revert" and engine.storage.get_flow_state() == states.REVERTED


def test_an_exception_thrown_into_run_iter_fails_the_flow() -> None:
    """Item 6."""
    log = []
    engine = engines.load(linear_flow.Flow("f").add(Record("a", log), Record("b", log)))
    steps = engine.run_iter()
    next(steps)
    next(steps)
    with pytest.raises(OSError, match="unplugged"):
        steps.throw(OSError("unplugged"))
    assert engine.storage.get_flow_state() == states.FAILURE


def test_missing_dependencies_name_each_atom_as_the_cause() -> None:
    """Item 7."""
    flow = graph_flow.Flow("g").add(Add("one", rebind={"x": "p"}), Add("two", rebind={"x": "q"}))
    engine = engines.load(flow)
    engine.compile()
    engine.prepare()
    with pytest.raises(exceptions.MissingDependencies) as info:
        engine.validate()
    cause = info.value.cause
    assert isinstance(cause, exceptions.MissingDependencies)
    causes = []
    while cause is not None:
        causes.append(cause)
        cause = cause.cause
    assert sorted(n for c in causes for n in c.missing_requirements) == ["p", "q"]


def test_loading_something_that_is_not_a_flow_fails_at_compile() -> None:
    """Item 8: load() accepts it (TaskFlow does too); compile() says what is wrong."""
    engine = engines.load(Add)
    assert isinstance(engine, action_engine.SerialActionEngine)
    with pytest.raises((TypeError, exceptions.TaskFlowException)):
        engine.compile()


def test_flow_detail_of_a_storage_created_model_round_trips() -> None:
    fd = models.FlowDetail("f", uuid="aaaa")
    fd.meta = {"k": 1}
    storage = Storage(fd)
    assert (storage.flow_name, storage.flow_uuid, storage.flow_meta) == ("f", "aaaa", {"k": 1})
    assert storage.get_flow_state() == states.PENDING
    assert storage.change_flow_state(states.RUNNING) == (True, states.PENDING)
    assert storage.change_flow_state(states.RESUMING) == (True, states.RUNNING)


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_a_revert_waits_for_what_ran_after_an_ignored_atom(kind) -> None:
    """Item 4: a → b (ignored by a decider) → c; c fails: a is reverted only after c is."""
    seen = []
    flow = graph_flow.Flow("g")
    a, b, c = Add("a"), Add("b"), Fail("c")
    flow.add(a, b, c)
    flow.link(a, b, decider=lambda history: False, decider_depth="atom")
    flow.link(b, c)
    engine = engines.load(flow, engine=kind)
    engine.atom_notifier.register("*", lambda state, details: seen.append(f"{details['task_name']} {state}"))
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    assert seen[-4:] == ["c REVERTING", "c REVERTED", "a REVERTING", "a REVERTED"]


def test_fetch_all_lists_names_in_the_order_taskflow_registers_atoms() -> None:
    """Item 11: a graph flow's atoms are registered in topological order, not in the order added."""

    class Sum(task.Task):
        def execute(self, x, y):
            return x + y

    flow = graph_flow.Flow("root").add(
        linear_flow.Flow("nested").add(
            Sum("add2", provides="x2", rebind=["y3", "y4"]), Sum("add1", provides="x1", rebind=["y1", "y2"])
        ),
        Sum("add5", provides="x5", rebind=["x1", "x3"]),
        Sum("add3", provides="x3", rebind=["x1", "x2"]),
        Sum("add4", provides="x4", rebind=["x2", "y5"]),
    )
    store = {"y1": 1, "y2": 3, "y3": 5, "y4": 7, "y5": 9}
    for kind in ("serial", "parallel"):
        result = engines.run(flow, engine=kind, store=store)
        assert list(result) == ["y1", "y2", "y3", "y4", "y5", "x2", "x1", "x3", "x4", "x5"]


def test_a_task_overriding_update_progress_hears_the_engine_steps() -> None:
    heard = []

    class Loud(task.Task):
        def execute(self):
            self.update_progress(0.5)

        def update_progress(self, progress, **kwargs):
            heard.append(progress)
            super().update_progress(progress, **kwargs)

    engines.run(linear_flow.Flow("f").add(Loud("loud"), Add("quiet")))
    assert heard == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_progress_details_are_kept_as_taskflow_keeps_them(store, tmp_path) -> None:
    """meta['progress_details'] = {'at_progress', 'details'} of the last report with details, None
    once progress was reported without; details a task notifies directly are kept too."""

    class Detailed(task.Task):
        def execute(self):
            self.notifier.notify(task.EVENT_UPDATE_PROGRESS, {"progress": 0.5, "rows": 3})

    class Plain(task.Task):
        def execute(self):
            self.update_progress(0.5)

    backend = backends.fetch("memory://" if store == "memory" else f"sqlite:///{tmp_path / 'p.db'}")
    _book, fd = persistence_utils.temporary_flow_detail(backend)
    engine = engines.load(linear_flow.Flow("f").add(Detailed("d"), Plain("p")), flow_detail=fd, backend=backend)
    engine.run()
    assert engine.storage.get_task_progress("d") == 1.0
    assert engine.storage.get_task_progress_details("d") == {"at_progress": 0.5, "details": {"rows": 3}}
    assert engine.storage.get_task_progress_details("p") is None
    saved = {ad.name: ad.meta for ad in backend.get_connection().get_atoms_for_flow(fd.uuid)}
    assert saved["d"] == {"progress": 1.0, "progress_details": {"at_progress": 0.5, "details": {"rows": 3}}}
    assert saved["p"] == {"progress": 1.0, "progress_details": None}


def test_progress_details_reach_storage_from_the_serial_lane() -> None:
    class Detailed(task.Task):
        def execute(self):
            self.notifier.notify(task.EVENT_UPDATE_PROGRESS, {"progress": 0.25, "step": "one"})

    engine = engines.load(Detailed("d"))
    engine.run()
    assert engine.storage.get_task_progress_details("d") == {"at_progress": 0.25, "details": {"step": "one"}}


@pytest.mark.parametrize("scheme", ["dir", "sqlite", "memory"])
def test_the_flow_detail_given_to_a_resuming_engine_shows_the_run(scheme, tmp_path) -> None:
    """Item 10: the flow detail a program loaded and passed to load() reflects what the run did."""
    conf = {"dir": {"connection": "dir", "path": str(tmp_path / "d")}, "sqlite": f"sqlite:///{tmp_path}/s.db"}
    backend = backends.fetch(conf.get(scheme, "memory://"))
    backend.get_connection().upgrade()
    book = models.LogBook("example")
    fd = models.FlowDetail("resume", uuid="4d2f9f51-97b5-4bbf-a7c1-bb3b2b0b6b7e")
    book.add(fd)
    backend.get_connection().save_logbook(book)
    holder = {}

    class Interrupt(task.Task):
        def execute(self):
            holder["engine"].suspend()

    def make():
        return linear_flow.Flow("resume").add(Add("first", provides="x"), Interrupt("boom"), Add("second"))

    holder["engine"] = engines.load(make(), flow_detail=fd, book=book, backend=backend)
    holder["engine"].run()
    again = backend.get_connection().get_logbook(book.uuid).find(fd.uuid)
    assert {ad.name: ad.state for ad in again}["second"] == states.PENDING
    engines.load(make(), flow_detail=again, backend=backend).run()
    assert {ad.name: (ad.state, ad.results) for ad in again}["second"] == (states.SUCCESS, 2)
    assert again.state == states.SUCCESS


def test_graph_flow_added_without_resolving_takes_the_nearest_provider_with_a_result() -> None:
    """Item 5: a → b → c linked by hand (resolve_requires=False), all providing and requiring x; b is
    ignored by a decider, so c gets a's x (TaskFlow resolves by scope at run time)."""

    class Inc(task.Task):
        def execute(self, x):
            return x + 1

    flow = graph_flow.Flow("g")
    a, b, c = Inc("a", provides="x", inject={"x": 0}), Inc("b", provides="x"), Inc("c", provides="x")
    flow.add(a, b, c, resolve_requires=False)
    flow.link(a, b, decider=lambda history: False, decider_depth="atom")
    flow.link(b, c)
    engine = engines.load(flow)
    engine.run()
    assert engine.storage.get("c") == 2 and engine.storage.get_atom_state("b") == states.IGNORE


def test_a_resumed_engine_reraises_the_original_exception_type(tmp_path) -> None:
    """Item 9: the second engine, given the same flow detail, re-raises the RuntimeError itself."""
    backend = backends.fetch(f"sqlite:///{tmp_path}/f.db")
    _book, fd = persistence_utils.temporary_flow_detail(backend)
    first = engines.load(linear_flow.Flow("f").add(Add("a"), Fail("b")), flow_detail=fd, backend=backend)
    first.atom_notifier.register(states.FAILURE, lambda state, details: first.suspend())
    first.run()
    second = engines.load(linear_flow.Flow("f").add(Add("a"), Fail("b")), flow_detail=fd, backend=backend)
    with pytest.raises(RuntimeError, match="boom"):
        second.run()


@pytest.mark.parametrize("scheme", ["dir", "sqlite", "memory"])
def test_the_flow_detail_load_creates_in_the_callers_book_holds_the_run(scheme, tmp_path) -> None:
    """TaskFlow's ``persistence_example``: ``load(flow, backend=..., book=book)`` adds a new flow detail
    to ``book``; after the run (here one that fails and reverts) it holds every atom detail, in flow
    order, on SQLite's fast path too (filled once, when the run stops)."""
    conf = {"dir": {"connection": "dir", "path": str(tmp_path / "d")}, "sqlite": f"sqlite:///{tmp_path}/s.db"}
    backend = backends.fetch(conf.get(scheme, "memory://"))
    backend.get_connection().upgrade()
    book = models.LogBook("my-test")
    engine = engines.load(linear_flow.Flow("hello").add(Add("hi"), Fail("bye")), backend=backend, book=book)
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    (fd,) = list(book)
    assert fd.state == states.REVERTED
    assert [(ad.name, ad.state, ad.failure is not None) for ad in fd] == [
        ("hi", states.REVERTED, False),
        ("bye", states.REVERTED, True),
    ]


def test_the_storage_flow_detail_of_an_engine_without_a_backend_holds_its_details() -> None:
    """``engine.storage._flowdetail`` (TaskFlow's attribute): the flow detail the storage writes; an
    engine loaded without a backend makes it, with its memory backend, on first access, keeping
    the atom uuids it gave out and the metadata set before."""
    engine = engines.load(linear_flow.Flow("f").add(Add("a")))
    engine.run()
    engine.storage.update_atom_metadata("a", {"seen": True})
    uuid = engine.storage.get_atom_uuid("a")
    fd = engine.storage._flowdetail
    assert fd is engine.storage._flowdetail
    ad = fd.find(uuid)
    assert (ad.name, ad.state, ad.results, ad.meta) == ("a", states.SUCCESS, 1, {"seen": True, "progress": 1.0})
    assert fd.state == states.SUCCESS


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_a_resumed_rollback_reraises_the_failure_of_an_atom_since_removed(kind) -> None:
    """A flow suspended while reverting the failure of ``c`` resumes without ``c`` (an orphan): the
    rollback finishes and ``run()`` re-raises ``c``'s failure, as TaskFlow does, rather than
    ending REVERTED without an error."""
    backend = impl_memory.MemoryBackend()
    log: list[str] = []
    engine = engines.load(
        linear_flow.Flow("f").add(Record("a", log), Record("b", log), Fail("c")), backend=backend, engine=kind
    )

    def suspend_after_b(state, details):
        if details["task_name"] == "b" and state == states.REVERTED:
            engine.suspend()

    engine.atom_notifier.register("*", suspend_after_b)
    engine.run()
    assert engine.storage.get_flow_state() == states.SUSPENDED
    resumed = engines.load(
        linear_flow.Flow("f").add(Record("a", log), Record("b", log)),
        flow_detail=engine.storage._flowdetail,
        backend=backend,
        engine=kind,
    )
    with pytest.raises(RuntimeError, match="boom"):
        resumed.run()
    assert resumed.storage.get_flow_state() == states.REVERTED
    assert log[-1] == "a:revert"


def test_exc_info_tuples_compare_by_type_text_and_traceback() -> None:
    """``failure._are_equal_exc_info_tuples`` (TaskFlow's name for what ``Failure.__eq__`` uses)."""
    from ferroflow.types import failure as failure_mod

    try:
        raise RuntimeError("Woot!")
    except RuntimeError as exc:
        info = (RuntimeError, exc, exc.__traceback__)
    assert failure_mod._are_equal_exc_info_tuples(None, None)
    assert not failure_mod._are_equal_exc_info_tuples(None, info)
    assert not failure_mod._are_equal_exc_info_tuples(info, None)
    assert failure_mod._are_equal_exc_info_tuples(info, failure_mod._copy_exc_info(info))
    assert not failure_mod._are_equal_exc_info_tuples(info, (RuntimeError, RuntimeError("other"), None))


def test_the_graph_flow_examples_result_lists_names_as_taskflow_prints_them() -> None:
    """Item 11, TaskFlow's ``graph_flow`` example as it is: its printed result (``engines.run``'s
    dict) lists the store, then what the atoms provide in the order TaskFlow registers them (a
    topological order of the graph, the nested linear flow in its own order), the same over runs
    and on both engines; which of the atoms ready together TaskFlow's serial engine runs first is
    not part of it (that follows a set of task objects, so it changes between TaskFlow's runs)."""

    class Adder(task.Task):
        def execute(self, x, y):
            return x + y

    def example_flow():
        return graph_flow.Flow("root").add(
            linear_flow.Flow("nested_linear").add(
                Adder("add2", provides="x2", rebind=["y3", "y4"]), Adder("add1", provides="x1", rebind=["y1", "y2"])
            ),
            Adder("add5", provides="x5", rebind=["x1", "x3"]),
            Adder("add3", provides="x3", rebind=["x1", "x2"]),
            Adder("add4", provides="x4", rebind=["x2", "y5"]),
            Adder("add6", provides="x6", rebind=["x5", "x4"]),
            Adder("add7", provides="x7", rebind=["x6", "x6"]),
        )

    store = {"y1": 1, "y2": 3, "y3": 5, "y4": 7, "y5": 9}
    printed_by_taskflow = (
        "{'y1': 1, 'y2': 3, 'y3': 5, 'y4': 7, 'y5': 9, 'x2': 12, 'x1': 4, 'x3': 16, 'x4': 21, 'x5': 20, 'x6': 41, "
        "'x7': 82}"
    )
    for kind in ("serial", "parallel", "serial"):
        assert str(engines.run(example_flow(), engine=kind, store=store)) == printed_by_taskflow


@pytest.mark.parametrize("kind", ["serial", "parallel"])
@pytest.mark.parametrize("pattern", [unordered_flow, graph_flow])
def test_atoms_failing_in_one_round_are_raised_together_as_a_wrapped_failure(kind, pattern) -> None:
    """Item 9, second half: two atoms ready together both fail; the serial engine, like the parallel
    one (and TaskFlow's), runs both and raises a WrappedFailure of the two, not the first alone."""

    class Other(task.Task):
        def execute(self):
            raise ValueError("other")

    with pytest.raises(exceptions.WrappedFailure) as wrapped:
        engines.run(pattern.Flow("both").add(Fail("a"), Other("b")), engine=kind)
    assert sorted(str(failure) for failure in wrapped.value) == [
        "Failure: RuntimeError: boom",
        "Failure: ValueError: other",
    ]


def test_the_flow_detail_load_creates_in_a_book_reads_its_details_only_when_looked_at(tmp_path, monkeypatch) -> None:
    """On SQLite's fast path the engine keeps no model per atom: the flow detail ``load()`` created in
    the caller's book reads its atom details from the store when first looked at, not before (a run
    nobody inspects pays nothing), and shows the store as it is then."""
    from ferroflow.persistence.backends import impl_sqlite

    backend = backends.fetch(f"sqlite:///{tmp_path}/lazy.db")
    backend.get_connection().upgrade()
    made: list[str] = []
    original = impl_sqlite._atom_from

    def counting(row):
        made.append(row[2])
        return original(row)

    monkeypatch.setattr(impl_sqlite, "_atom_from", counting)
    book = models.LogBook("lazy")
    engine = engines.load(linear_flow.Flow("f").add(Add("a"), Add("b"), Add("c")), backend=backend, book=book)
    engine.run()
    assert made == []
    (fd,) = list(book)
    assert [(ad.name, ad.state) for ad in fd] == [("a", states.SUCCESS), ("b", states.SUCCESS), ("c", states.SUCCESS)]
    assert sorted(made) == ["a", "b", "c"]
    assert fd.find(engine.storage.get_atom_uuid("b")).results == 1
