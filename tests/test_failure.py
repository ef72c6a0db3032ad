"""Failure and the exception hierarchy: dict form, matching, re-raising and pickling as in TaskFlow."""

from __future__ import annotations

import pickle

import pytest

from ferroflow import exceptions as exc
from ferroflow.types.failure import Failure

try:
    import taskflow.exceptions as tf_exc
    from taskflow.types.failure import Failure as TfFailure
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    tf_exc = None

needs_taskflow = pytest.mark.skipif(tf_exc is None, reason="taskflow is not installed")


class AppError(Exception):
    pass


def capture(failure_cls, raiser):
    try:
        raiser()
    except Exception:
        return failure_cls()
    raise AssertionError("nothing raised")


def chained(not_found_cls):
    def raiser():
        try:
            try:
                raise KeyError("k")
            except KeyError:
                raise ValueError("v", 2)  # noqa: B904 - an implicit __context__ on purpose
        except ValueError as e:
            raise not_found_cls("nf") from e

    return raiser


def test_capture_properties():
    f = capture(Failure, chained(exc.NotFound))
    assert f.exception_str == "nf"
    assert f.exception_args == ("nf",)
    assert isinstance(f.exception, exc.NotFound)
    assert f.exc_info[0] is exc.NotFound
    assert list(f) == ["ferroflow.exceptions.NotFound", "ferroflow.exceptions.TaskFlowException", "Exception"]
    assert str(f) == "Failure: ferroflow.exceptions.NotFound: nf"
    assert "in raiser" in f.traceback_str
    assert [c.exception_str for c in f.causes] == ["('v', 2)", "'k'"]
    assert f.pformat(traceback=True).splitlines()[1] == "Traceback (most recent call last):"


def test_builtin_type_names_are_unqualified():
    f = Failure.from_exception(OSError("x"))
    assert list(f) == ["OSError", "Exception"]
    assert Failure.from_exception(AppError()).check(f"{__name__}.AppError") == f"{__name__}.AppError"


def test_capture_needs_an_exception():
    with pytest.raises(TypeError, match="Invalid exception type"):
        Failure()
    with pytest.raises(ValueError, match="three elements"):
        Failure(exc_info=(ValueError, ValueError()))
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        with pytest.raises(TypeError):
            Failure()


@needs_taskflow
def test_dict_form_matches_taskflow():
    ours = capture(Failure, chained(exc.NotFound)).to_dict()
    theirs = capture(TfFailure, chained(tf_exc.NotFound)).to_dict()

    def normalize(d):
        d = dict(d)
        d["exc_type_names"] = [n.replace("taskflow.", "") for n in d["exc_type_names"]]
        d["exc_type_names"] = [n.replace("ferroflow.", "") for n in d["exc_type_names"]]
        d["traceback_str"] = bool(d["traceback_str"])
        d["causes"] = [normalize(c) for c in d["causes"]]
        return d

    assert list(ours) == list(theirs)
    assert normalize(ours) == normalize(theirs)
    assert ours["version"] == 1


def test_round_trip_through_dict():
    f = capture(Failure, chained(exc.NotFound))
    loaded = Failure.from_dict(f.to_dict())
    assert loaded.exc_info is None and loaded.exception is None
    assert loaded.to_dict() == f.to_dict()
    assert loaded.check(exc.NotFound) is exc.NotFound
    assert loaded.check(exc.TaskFlowException, "Exception") is exc.TaskFlowException
    assert loaded.check(KeyError) is None
    assert loaded.causes[0].check(ValueError) is ValueError
    assert loaded.matches(Failure.from_dict(f.to_dict()))
    assert f.to_dict(include_args=False)["exc_args"] == ()
    with pytest.raises(ValueError, match="Invalid dict version"):
        Failure.from_dict({**f.to_dict(), "version": 2})
    with pytest.raises(TypeError, match="unexpected keyword"):
        Failure.from_dict({**f.to_dict(), "bogus": 1})


def test_check_matches_taskflow_names_after_migration():
    saved_by_taskflow = {
        "exception_str": "nf",
        "traceback_str": "",
        "exc_type_names": ["taskflow.exceptions.NotFound", "taskflow.exceptions.TaskFlowException", "Exception"],
        "version": 1,
        "exc_args": ["nf"],
        "causes": [],
    }
    loaded = Failure.from_dict(saved_by_taskflow)
    assert loaded.check(exc.NotFound) is exc.NotFound
    assert loaded.check("taskflow.exceptions.NotFound") == "taskflow.exceptions.NotFound"
    assert loaded.check(exc.StorageFailure) is None


def test_reraise():
    f = capture(Failure, chained(exc.NotFound))
    with pytest.raises(exc.NotFound) as info:
        f.reraise()
    assert info.value is f.exception
    loaded = Failure.from_dict(f.to_dict())
    with pytest.raises(exc.WrappedFailure) as wrapped:
        loaded.reraise()
    assert len(wrapped.value) == 1 and wrapped.value[0] is loaded
    assert wrapped.value.check(exc.NotFound) is exc.NotFound
    assert str(wrapped.value) == "WrappedFailure: [Failure: ferroflow.exceptions.NotFound: nf]"

    Failure.reraise_if_any([])
    with pytest.raises(exc.NotFound):
        Failure.reraise_if_any(iter([f]))
    with pytest.raises(exc.WrappedFailure) as both:
        Failure.reraise_if_any([f, loaded])
    assert list(both.value) == [f, loaded]


def test_wrapped_failures_flatten():
    inner = exc.WrappedFailure([Failure.from_exception(KeyError("a")), Failure.from_exception(OSError("b"))])
    outer = exc.WrappedFailure([Failure.from_exception(inner), Failure.from_exception(ValueError("c"))])
    assert [next(iter(f)) for f in outer] == ["KeyError", "OSError", "ValueError"]
    assert outer.check(OSError) is OSError and outer.check() is None


def test_equality_hash_copy_and_pickle():
    f = capture(Failure, chained(exc.NotFound))
    assert f == f.copy() and f.matches(f.copy())
    assert f != Failure.from_exception(ValueError("x"))
    with pytest.raises(TypeError):
        hash(f)
    clone = pickle.loads(pickle.dumps(f))
    assert isinstance(clone.exception, exc.NotFound)
    assert clone.to_dict() == f.to_dict()
    assert clone.exc_info[2] is None


def test_validate():
    good = capture(Failure, chained(exc.NotFound)).to_dict()
    Failure.validate(good)
    bad_inputs = [
        [],
        {},
        {**good, "exc_type_names": []},
        {**good, "exc_type_names": ["NotAnException"]},
        {**good, "traceback_str": None},
        {**good, "version": -1},
        {**good, "version": True},
        {**good, "exc_args": "x"},
        {**good, "causes": [{"exception_str": "x"}]},
        {**good, "causes": [{**good, "causes": [], "exc_type_names": ["X"]}]},
    ]
    for bad in bad_inputs:
        with pytest.raises(exc.InvalidFormat):
            Failure.validate(bad)


@needs_taskflow
def test_validate_agrees_with_taskflow():
    good = capture(TfFailure, chained(tf_exc.NotFound)).to_dict()
    candidates = [good, {}, {**good, "version": -1}, {**good, "exc_args": (1,)}, {**good, "exc_type_names": ["X"]}]
    for candidate in candidates:
        try:
            TfFailure.validate(candidate)
            expected = True
        except tf_exc.InvalidFormat:
            expected = False
        try:
            Failure.validate(candidate)
            got = True
        except exc.InvalidFormat:
            got = False
        assert got == expected, candidate


# -- exceptions -----------------------------------------------------------------------------------------


def test_exception_messages_and_causes():
    e = exc.NotFound("outer", cause=exc.StorageFailure("inner", cause=KeyError("k")))
    assert str(e) == "outer\n  StorageFailure: inner\n    KeyError: 'k'"
    assert e.pformat(show_root_class=True).startswith("NotFound: outer")
    missing = exc.MissingDependencies("t", ["a"], method="revert")
    assert str(missing) == "'revert' method on 't' requires ['a'] but no other entity produces said requirements"
    assert missing.missing_requirements == ["a"]
    assert exc.DisallowedAccess("m", state="PENDING").state == "PENDING"
    with pytest.raises(ValueError):
        e.pformat(indent=-1)


@needs_taskflow
def test_exception_formatting_matches_taskflow():
    ours = exc.NotFound("outer", cause=exc.StorageFailure("inner", cause=KeyError("k")))
    theirs = tf_exc.NotFound("outer", cause=tf_exc.StorageFailure("inner", cause=KeyError("k")))
    assert str(ours) == str(theirs)
    assert str(exc.MissingDependencies("t", ["a"])) == str(tf_exc.MissingDependencies("t", ["a"]))


def test_raise_with_cause():
    with pytest.raises(exc.StorageFailure) as info:
        try:
            raise KeyError("k")
        except KeyError:
            exc.raise_with_cause(exc.StorageFailure, "boom")
    assert isinstance(info.value.cause, KeyError) and info.value.__cause__ is info.value.cause
    with pytest.raises(ValueError):
        exc.raise_with_cause(KeyError, "x")


@pytest.mark.parametrize(
    "error",
    [
        exc.NotFound("x", cause=ValueError("v")),
        exc.MissingDependencies("t", ["a"], method="execute"),
        exc.DisallowedAccess("m", state="S"),
        exc.NotImplementedError("n"),
        exc.WrappedFailure([Failure.from_exception(KeyError("k"))]),
    ],
)
def test_exceptions_pickle(error):
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.__dict__.keys() == error.__dict__.keys()


def test_hierarchy():
    assert issubclass(exc.AmbiguousDependency, exc.DependencyFailure)
    assert issubclass(exc.InvalidState, exc.ExecutionFailure)
    assert issubclass(exc.UnclaimableJob, exc.JobFailure)
    assert issubclass(exc.NotImplementedError, NotImplementedError)
    assert not issubclass(exc.WrappedFailure, exc.TaskFlowException)
    assert list(Failure.from_exception(exc.NotImplementedError("x"))) == [
        "ferroflow.exceptions.NotImplementedError",
        "NotImplementedError",
        "RuntimeError",
        "Exception",
    ]
