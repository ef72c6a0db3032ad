"""Atoms, tasks and retries: argument mapping and attributes identical to TaskFlow's."""

from __future__ import annotations

import pickle

import pytest

from ferroflow import atom, exceptions, retry, task
from ferroflow.patterns import linear_flow
from ferroflow.retry import History
from ferroflow.types.failure import Failure

try:
    import taskflow.retry as tf_retry
    import taskflow.task as tf_task
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    tf_task = tf_retry = None

needs_taskflow = pytest.mark.skipif(tf_task is None, reason="taskflow is not installed")


def public_attrs(a) -> dict:
    return {
        "name": a.name,
        "str": str(a),
        "version": a.version,
        "requires": list(a.requires),
        "optional": list(a.optional),
        "revert_optional": list(a.revert_optional),
        "provides": list(a.provides),
        "save_as": list(a.save_as.items()),
        "rebind": list(a.rebind.items()),
        "revert_rebind": list(a.revert_rebind.items()),
        "priority": a.priority,
    }


def task_class(module):
    class Sample(module.Task):
        def execute(self, a, b, c=3):
            return a + b + c

        def revert(self, a, d=1, *args, **kwargs):
            pass

    return Sample


def kwargs_task_class(module):
    class Open(module.Task):
        def execute(self, a, **kwargs):
            return a

    return Open


TASK_CASES = [
    {},
    {"rebind": ["x", "y"]},
    {"rebind": ("x",)},
    {"rebind": {"c": "z"}},
    {"rebind": {"a": "aa", "b": "bb"}, "revert_rebind": {"a": "ra"}},
    {"inject": {"a": 1}},
    {"inject": {"c": 1, "b": 2}},
    {"provides": "out"},
    {"provides": ("p", "q")},
    {"provides": ["p", "q", "p"]},
    {"provides": frozenset({"p"})},
]

OPEN_CASES = [
    {"requires": ["zz"], "revert_requires": ["qq"]},
    {"requires": "zz"},
    {"rebind": ["x", "y", "w"]},
    {"requires": ["a", "b"], "auto_extract": False},
    {"rebind": {"a": "x", "extra": "e"}},
]


@needs_taskflow
@pytest.mark.parametrize("kwargs", TASK_CASES)
def test_task_attributes_match_taskflow(kwargs):
    ours = task_class(task)(name="t", **kwargs)
    theirs = task_class(tf_task)(name="t", **kwargs)
    assert public_attrs(ours) == public_attrs(theirs)


@needs_taskflow
@pytest.mark.parametrize("kwargs", OPEN_CASES)
def test_kwargs_task_attributes_match_taskflow(kwargs):
    ours = kwargs_task_class(task)(name="t", **kwargs)
    theirs = kwargs_task_class(tf_task)(name="t", **kwargs)
    assert public_attrs(ours) == public_attrs(theirs)


def test_mapping_rules():
    t = task_class(task)(name="t", rebind={"c": "z"}, inject={"a": 1}, provides=("p", "q"))
    # Rebinding an argument with a default makes it required; injected names leave requires.
    assert list(t.requires) == ["b", "z"]
    assert list(t.optional) == []
    assert dict(t.rebind) == {"a": "a", "b": "b", "c": "z"}
    assert dict(t.save_as) == {"p": 0, "q": 1}
    assert dict(t.revert_rebind) == {"a": "a", "c": "z", "d": "d"}
    assert list(t.revert_optional) == ["d"]


def test_extra_and_missing_arguments():
    cls = task_class(task)
    with pytest.raises(ValueError, match=r"Extra arguments given to atom t: \['zz'\]"):
        cls(name="t", requires=["zz"])
    with pytest.raises(ValueError, match=r"Missing arguments for atom t: \['a', 'b'\]"):
        cls(name="t", auto_extract=False)


@needs_taskflow
def test_error_messages_match_taskflow():
    for kwargs in ({"requires": ["zz"]}, {"auto_extract": False}):
        with pytest.raises(ValueError) as ours:
            task_class(task)(name="t", **kwargs)
        with pytest.raises(ValueError) as theirs:
            task_class(tf_task)(name="t", **kwargs)
        assert str(ours.value) == str(theirs.value)


def test_invalid_provides_and_rebind_types():
    cls = task_class(task)
    with pytest.raises(TypeError, match="Atom provides parameter"):
        cls(provides=3)
    with pytest.raises(TypeError, match="Invalid rebind value"):
        cls(rebind="x")


def test_default_name_str_repr_and_version():
    t = task_class(task)()
    assert t.name == f"{__name__}.Sample"
    assert str(t) == f'"{__name__}.Sample==1.0"'
    assert repr(t) == f'<{__name__}.Sample "{__name__}.Sample==1.0">'
    assert t.version == (1, 0)
    assert atom.get_version_string(t) == "1.0"
    t.version = (2, 1, 3)
    assert str(t) == f'"{__name__}.Sample==2.1.3"'
    t.version = 4
    assert atom.get_version_string(t) == "4"
    t.version = None
    assert atom.get_version_string(t) is None


def test_default_provides_and_priority_class_attributes():
    class Tagged(task.Task):
        default_provides = ("x", "y")
        priority = 7

        def execute(self):
            return 1, 2

    t = Tagged()
    assert list(t.provides) == ["x", "y"]
    assert t.priority == 7
    assert list(Tagged(provides="z").provides) == ["z"]


def test_signature_cache_handles_distinct_functions_and_methods():
    class A(task.Task):
        def execute(self, a):
            pass

    class B(task.Task):
        def execute(self, b, c=1):
            pass

    assert list(A().requires) == ["a"]
    assert list(B().requires) == ["b"]
    assert list(B().optional) == ["c"]
    assert list(A().requires) == ["a"]


def test_functor_task():
    def add(x, y=2):
        return x + y

    t = task.FunctorTask(add, provides="sum")
    assert t.name == f"{__name__}.test_functor_task.<locals>.add"
    assert list(t.requires) == ["x"]
    assert list(t.optional) == ["y"]
    assert t.execute(x=1) == 3
    assert t.revert(x=1) is None

    undone = []
    t = task.FunctorTask(add, revert=lambda x, result, flow_failures: undone.append(result), version=(2, 1))
    assert str(t).endswith('==2.1"')
    # Difference from TaskFlow: result/flow_failures of a revert callable are not requirements.
    assert list(t.requires) == ["x"]
    t.revert(x=1, result=5, flow_failures={})
    assert undone == [5]

    with pytest.raises(ValueError, match="executing must be callable"):
        task.FunctorTask(1)
    with pytest.raises(ValueError, match="reverting must be callable"):
        task.FunctorTask(add, revert=1)


@needs_taskflow
def test_functor_task_matches_taskflow():
    def run(a, b=2, **kwargs):
        return a

    for kwargs in ({}, {"rebind": ["z"]}, {"provides": ("p",), "inject": {"a": 1}}, {"requires": ["q"]}):
        assert public_attrs(task.FunctorTask(run, **kwargs)) == public_attrs(tf_task.FunctorTask(run, **kwargs))


def test_map_and_reduce_functor_tasks():
    m = task.MapFunctorTask(lambda v: v * 2, requires=["a", "b"], provides=("a2", "b2"))
    assert m.execute(a=1, b=2) == [2, 4]
    r = task.ReduceFunctorTask(lambda x, y: x + y, requires=["a", "b", "c"])
    assert r.execute(a=1, b=2, c=3) == 6
    # A rebind dict works (TaskFlow looked values up by storage name and failed).
    m = task.MapFunctorTask(lambda v: v, requires=["a", "b"], rebind={"a": "stored_a"})
    assert list(m.requires) == ["stored_a", "b"]
    assert m.execute(a=1, b=2) == [1, 2]

    with pytest.raises(ValueError, match="exactly 1 argument"):
        task.MapFunctorTask(lambda x, y: x, requires=["a"])
    with pytest.raises(ValueError, match="exactly 2 arguments"):
        task.ReduceFunctorTask(lambda x: x, requires=["a", "b"])
    with pytest.raises(ValueError, match="at least 2 elements"):
        task.ReduceFunctorTask(lambda x, y: x, requires=["a"])
    with pytest.raises(TypeError, match="must be an iterable"):
        task.MapFunctorTask(lambda x: x, requires="a")
    with pytest.raises(ValueError, match="must be callable"):
        task.ReduceFunctorTask(None, requires=["a", "b"])


@needs_taskflow
def test_map_reduce_match_taskflow():
    def double(v):
        return v

    kwargs = {"requires": ["a", "b"], "provides": ("x", "y"), "inject": {"b": 1}}
    assert public_attrs(task.MapFunctorTask(double, **kwargs)) == public_attrs(tf_task.MapFunctorTask(double, **kwargs))
    ours = task.MapFunctorTask(double, requires=["a", "b"], rebind=["x", "y"])
    theirs = tf_task.MapFunctorTask(double, requires=["a", "b"], rebind=["x", "y"])
    values = {"a": 1, "b": 2, "x": 3, "y": 4}
    assert ours.execute(**values) == theirs.execute(**values)


def test_progress_notifier_clamps_and_restricts():
    t = task_class(task)()
    seen = []
    t.notifier.register(task.EVENT_UPDATE_PROGRESS, lambda event, details: seen.append((event, details)))
    t.update_progress(0.5)
    t.update_progress(7)
    t.update_progress(-1)
    assert seen == [
        ("update_progress", {"progress": 0.5}),
        ("update_progress", {"progress": 1.0}),
        ("update_progress", {"progress": 0.0}),
    ]
    with pytest.raises(ValueError, match="Disallowed event type"):
        t.notifier.register("other", lambda event, details: None)
    t.notifier.register("*", lambda event, details: None)

    clone = t.copy(retain_listeners=False)
    assert len(clone.notifier) == 0 and len(t.notifier) == 2
    assert len(t.copy().notifier) == 2


class PicklableTask(task.Task):
    def execute(self, a, b=1):
        return a


def test_tasks_pickle():
    t = PicklableTask(name="t", provides="out", rebind={"a": "x"})
    clone = pickle.loads(pickle.dumps(t))
    assert public_attrs(clone) == public_attrs(t)


# -- retries ------------------------------------------------------------------------------------------


def test_decision_enum_and_constants():
    assert retry.REVERT == "REVERT" and retry.REVERT_ALL == "REVERT_ALL" and retry.RETRY == "RETRY"
    assert retry.Decision("RETRY") is retry.RETRY
    assert retry.EXECUTE_REVERT_HISTORY == "history"
    assert retry.REVERT_FLOW_FAILURES == "flow_failures"
    assert task.REVERT_RESULT == "result" and task.REVERT_FLOW_FAILURES == "flow_failures"


def _failure(exc: Exception) -> Failure:
    return Failure.from_exception(exc)


def test_history():
    history = History([(1, {"a": _failure(ValueError("x"))}), (2, {"b": _failure(KeyError("y"))})])
    assert len(history) == 2
    assert list(history.provided_iter()) == [1, 2]
    assert [name for name, _f in history.outcomes_iter()] == ["a", "b"]
    assert [name for name, _f in history.outcomes_iter(index=1)] == ["b"]
    assert history.caused_by(KeyError) and not history.caused_by(KeyError, index=0)
    assert not history.caused_by(IOError)
    own = History([], failure=_failure(OSError("z")))
    assert not own.caused_by(OSError) and own.caused_by(OSError, include_retry=True)
    assert history[0][0] == 1 and [p for p, _o in history] == [1, 2]


def test_times():
    r = retry.Times(3, revert_all=True)
    assert r.name is None
    assert r.execute(History([])) == 1
    assert r.on_failure(History([(1, {}), (2, {})])) == retry.RETRY
    assert r.on_failure(History([(1, {}), (2, {}), (3, {})])) == retry.REVERT_ALL
    assert retry.Times(1).on_failure(History([(1, {})])) == retry.REVERT


def test_for_each_and_parameterized():
    r = retry.ForEach([1, 2, 2])
    assert r.execute(History([])) == 1
    assert r.execute(History([(1, {})])) == 2
    assert r.execute(History([(1, {}), (2, {})])) == 2
    assert r.on_failure(History([(1, {}), (2, {})])) == retry.RETRY
    assert r.on_failure(History([(1, {}), (2, {}), (2, {})])) == retry.REVERT
    with pytest.raises(exceptions.NotFound, match="No elements left"):
        r.execute(History([(1, {}), (2, {}), (2, {})]))

    p = retry.ParameterizedForEach(rebind=["choices"], revert_all=True)
    assert list(p.requires) == ["choices"]
    assert dict(p.rebind) == {"values": "choices"}
    assert p.execute(["a", "b"], History([("a", {})])) == "b"
    assert p.on_failure(["a"], History([("a", {})])) == retry.REVERT_ALL


def test_always_revert():
    assert retry.AlwaysRevert("r").on_failure(history=History([])) == retry.REVERT
    assert retry.AlwaysRevertAll("r").on_failure(history=History([])) == retry.REVERT_ALL
    assert retry.AlwaysRevert("r").execute(History([])) is None


def test_retry_gets_its_name_from_its_flow():
    r = retry.Times(2)
    linear_flow.Flow("outer", retry=r)
    assert r.name == "outer_retry"
    named = retry.Times(2, name="mine")
    linear_flow.Flow("outer", retry=named)
    assert named.name == "mine"


def test_retry_history_is_never_required():
    class Custom(retry.Retry):
        def execute(self, history, x):
            return x

        def on_failure(self, history, x):
            return retry.RETRY

        def revert(self, history, y, **kwargs):
            pass

    r = Custom("c")
    assert list(r.requires) == ["x", "y"]
    assert dict(r.rebind) == {"x": "x"}
    assert dict(r.revert_rebind) == {"y": "y"}


@needs_taskflow
@pytest.mark.parametrize(
    "build",
    [
        lambda m: m.Times(3, name="t", provides="attempt"),
        lambda m: m.ForEach([1, 2], name="f", provides=("v",)),
        lambda m: m.ParameterizedForEach(name="p", rebind=["vals"], provides="v"),
        lambda m: m.ParameterizedForEach(name="p", rebind={"values": "vals"}),
        lambda m: m.AlwaysRevert("a", requires=["x"]),
        lambda m: m.AlwaysRevertAll("a"),
    ],
)
def test_retry_attributes_match_taskflow(build):
    assert public_attrs(build(retry)) == public_attrs(build(tf_retry))
