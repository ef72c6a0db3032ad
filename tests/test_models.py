"""Persistence models (LogBook, FlowDetail, TaskDetail, RetryDetail), persistence_utils and codecs."""

from __future__ import annotations

import datetime
import json

import pytest

from ferroflow import exceptions as exc
from ferroflow import states
from ferroflow.codec import JSON, PICKLE, get_codec
from ferroflow.persistence import models
from ferroflow.persistence.backends import fetch
from ferroflow.types.failure import Failure
from ferroflow.utils import persistence_utils


class CustomError(Exception):
    pass


def make_failure(exc_value: BaseException | None = None) -> Failure:
    try:
        raise exc_value or CustomError("boom")
    except BaseException as e:
        return Failure.from_exception(e)


def json_round_trip(data):
    """What a JSON backend does to a record."""
    return json.loads(json.dumps(data))


def full_task_detail() -> models.TaskDetail:
    ad = models.TaskDetail("task-a", "ad-1")
    ad.state = states.FAILURE
    ad.intention = states.REVERT
    ad.results = {"k": [1, 2]}
    ad.failure = make_failure()
    ad.revert_results = "undone"
    ad.revert_failure = make_failure(KeyError("gone"))
    ad.meta = {"progress": 0.5, "nested": {"a": 1}}
    ad.version = (1, 2)
    return ad


# -- defaults and shapes -------------------------------------------------------------------------


def test_defaults_match_taskflow():
    ad = models.TaskDetail("t", "u")
    assert (ad.state, ad.intention, ad.results, ad.failure, ad.version) == (None, "EXECUTE", None, None, None)
    assert (ad.revert_results, ad.revert_failure, ad.meta) == (None, None, {})
    assert models.RetryDetail("r", "u").results == []
    fd = models.FlowDetail("f", "u")
    assert (fd.state, fd.meta, len(fd)) == (None, {}, 0)
    book = models.LogBook("b")
    assert isinstance(book.created_at, datetime.datetime) and book.updated_at is None
    assert book.created_at.tzinfo is None  # naive UTC, like TaskFlow
    assert len(book.uuid) == 36 and models.LogBook("b").uuid != book.uuid


def test_to_dict_keys_match_taskflow():
    tf_models = pytest.importorskip("taskflow.persistence.models")
    pairs = [
        (models.LogBook("b").to_dict(), tf_models.LogBook("b").to_dict()),
        (models.FlowDetail("f", "u").to_dict(), tf_models.FlowDetail("f", "u").to_dict()),
        (models.TaskDetail("t", "u").to_dict(), tf_models.TaskDetail("t", "u").to_dict()),
        (models.RetryDetail("r", "u").to_dict(), tf_models.RetryDetail("r", "u").to_dict()),
    ]
    for ours, theirs in pairs:
        assert set(ours) == set(theirs)
    marshalled = models.LogBook("b").to_dict(marshal_time=True)["created_at"]
    assert set(marshalled) == set(tf_models.LogBook("b").to_dict(marshal_time=True)["created_at"])
    assert models.ATOM_TYPES == tf_models.ATOM_TYPES


def test_taskflow_reads_our_dicts_and_we_read_theirs():
    tf_models = pytest.importorskip("taskflow.persistence.models")
    ours = full_task_detail()
    theirs = tf_models.TaskDetail.from_dict(json_round_trip(ours.to_dict()))
    assert (theirs.state, theirs.intention, theirs.version) == ("FAILURE", "REVERT", "1.2")
    assert theirs.failure.check("test_models.CustomError") is not None
    back = models.TaskDetail.from_dict(json_round_trip(theirs.to_dict()))
    assert back.failure.check(CustomError) is CustomError
    assert back.to_dict() == models.TaskDetail.from_dict(json_round_trip(ours.to_dict())).to_dict()

    book = tf_models.LogBook("tf-book")
    book.meta = {"k": "v"}
    loaded = models.LogBook.from_dict(json_round_trip(book.to_dict(marshal_time=True)), unmarshal_time=True)
    assert (loaded.name, loaded.uuid, loaded.meta, loaded.created_at) == (
        "tf-book",
        book.uuid,
        {"k": "v"},
        book.created_at,
    )


# -- round trips ---------------------------------------------------------------------------------


def test_logbook_round_trip_with_and_without_marshalled_times():
    book = models.LogBook("book", "b-1")
    book.meta = {"owner": "me"}
    book.add(models.FlowDetail("f", "f-1"))
    assert book.updated_at is not None
    plain = models.LogBook.from_dict(book.to_dict())
    assert plain.to_dict() == book.to_dict()
    marshalled = json_round_trip(book.to_dict(marshal_time=True))
    assert isinstance(marshalled["created_at"], dict)
    again = models.LogBook.from_dict(marshalled, unmarshal_time=True)
    assert (again.created_at, again.updated_at) == (book.created_at, book.updated_at)
    assert len(again) == 0  # to_dict never includes children


def test_aware_times_keep_their_zone():
    book = models.LogBook("b")
    book.created_at = datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=datetime.UTC)
    data = json_round_trip(book.to_dict(marshal_time=True))
    assert data["created_at"]["tzname"] == "UTC"
    assert models.LogBook.from_dict(data, unmarshal_time=True).created_at == book.created_at


def test_flow_detail_round_trip_and_bad_meta_fixed():
    fd = models.FlowDetail("flow", "f-1")
    fd.state = states.RUNNING
    fd.meta = {"factory": {"name": "mod.make", "args": [1], "kwargs": {}}}
    assert models.FlowDetail.from_dict(json_round_trip(fd.to_dict())).to_dict() == fd.to_dict()
    assert models.FlowDetail.from_dict({"name": "x", "uuid": "u", "meta": "junk"}).meta == {}


def test_task_detail_round_trip_keeps_failures_as_failures():
    ad = full_task_detail()
    data = json_round_trip(ad.to_dict())
    assert data["version"] == "1.2"
    assert isinstance(data["failure"], dict) and "exc_type_names" in data["failure"]
    back = models.TaskDetail.from_dict(data)
    assert isinstance(back.failure, Failure) and isinstance(back.revert_failure, Failure)
    # Matched by type name, although the reloaded failure has no exception object.
    assert back.failure.check(ValueError, CustomError) is CustomError
    assert back.failure.check("test_models.CustomError") == "test_models.CustomError"
    assert back.revert_failure.check(KeyError) is KeyError
    assert back.failure.check(KeyError) is None
    assert back.to_dict() == models.TaskDetail.from_dict(data).to_dict()
    assert (back.results, back.intention, back.meta) == ({"k": [1, 2]}, "REVERT", ad.meta)


def test_from_dict_without_intention_defaults_to_execute():
    assert models.TaskDetail.from_dict({"name": "t", "uuid": "u"}).intention == states.EXECUTE


@pytest.mark.parametrize(
    ("version", "stored"), [((1, 0), "1.0"), ([2, 3, 4], "2.3.4"), ("1.5", "1.5"), (3, "3"), (None, None)]
)
def test_version_is_stored_as_a_string(version, stored):
    ad = models.TaskDetail("t", "u")
    ad.version = version
    assert ad.to_dict()["version"] == stored
    assert models.TaskDetail.from_dict(ad.to_dict()).version == stored


def test_retry_detail_history_round_trip():
    rd = models.RetryDetail("retry", "r-1")
    rd.put(states.SUCCESS, "first")
    rd.results[-1][1]["task-a"] = make_failure()
    rd.put(states.SUCCESS, {"second": 2})
    data = json_round_trip(rd.to_dict())
    assert data["results"][0][0] == "first"
    back = models.RetryDetail.from_dict(data)
    assert [value for value, _ in back.results] == ["first", {"second": 2}]
    assert all(isinstance(entry, tuple) for entry in back.results)
    failure = back.results[0][1]["task-a"]
    assert isinstance(failure, Failure) and failure.check(CustomError) is CustomError
    assert back.last_results == {"second": 2} and back.last_failures == {}


def test_retry_detail_history_from_taskflow_keeps_values():
    # TaskFlow's own RetryDetail.from_dict puts failures where the values were (DESIGN: fixed here).
    tf_models = pytest.importorskip("taskflow.persistence.models")
    tf_failure = pytest.importorskip("taskflow.types.failure")
    theirs = tf_models.RetryDetail("r", "u")
    theirs.put(states.SUCCESS, "value-1")
    try:
        raise CustomError("x")
    except CustomError:
        theirs.results[-1][1]["a"] = tf_failure.Failure()
    ours = models.RetryDetail.from_dict(json_round_trip(theirs.to_dict()))
    assert ours.last_results == "value-1"
    assert ours.last_failures["a"].check(CustomError) is CustomError


def test_retry_last_results_and_failures_raise_not_found_when_empty():
    rd = models.RetryDetail("r", "u")
    with pytest.raises(exc.NotFound):
        _ = rd.last_results
    with pytest.raises(exc.NotFound):
        _ = rd.last_failures


# -- merge, update, copy -------------------------------------------------------------------------


def test_logbook_merge_takes_meta_and_times_not_name_or_contents():
    old = models.LogBook("old-name", "b")
    new = models.LogBook("new-name", "b")
    new.meta = {"a": {"deep": 1}}
    new.add(models.FlowDetail("f", "f-1"))
    assert old.merge(new) is old
    assert old.name == "old-name" and len(old) == 0
    assert old.meta is new.meta and old.updated_at == new.updated_at and old.created_at == new.created_at
    deep = models.LogBook("x", "b").merge(new, deep_copy=True)
    assert deep.meta == new.meta and deep.meta is not new.meta and deep.meta["a"] is not new.meta["a"]
    assert old.merge(old) is old


def test_flow_detail_merge_and_update():
    a = models.FlowDetail("a", "f")
    b = models.FlowDetail("b", "f")
    b.state, b.meta = states.SUCCESS, {"k": [1]}
    b.add(models.TaskDetail("t", "t-1"))
    a.merge(b, deep_copy=True)
    assert (a.name, a.state, a.meta, len(a)) == ("a", "SUCCESS", {"k": [1]}, 0)
    assert a.meta["k"] is not b.meta["k"]
    a.update(b)
    assert len(a) == 1 and a.find("t-1") is b.find("t-1") and a.meta is b.meta


def test_task_detail_merge_shares_results_and_copies_failures_on_deep_copy():
    target = models.TaskDetail("t", "u")
    source = full_task_detail()
    target.merge(source)
    assert target.results is source.results and target.failure is source.failure
    assert (target.state, target.intention, target.version) == (
        source.state,
        source.intention,
        source.version,
    )
    deep = models.TaskDetail("t", "u").merge(source, deep_copy=True)
    assert deep.results is source.results  # never deep-copied (user objects may not be copyable)
    assert deep.failure is not source.failure and deep.failure.check(CustomError) is CustomError
    assert deep.meta == source.meta and deep.meta is not source.meta
    source.failure = None
    target.merge(source)
    assert target.failure is None


def test_merge_refuses_other_detail_types():
    with pytest.raises(NotImplementedError):
        models.TaskDetail("t", "u").merge(models.RetryDetail("t", "u"))
    with pytest.raises(exc.NotImplementedError):
        models.RetryDetail("t", "u").merge(models.TaskDetail("t", "u"))


def test_retry_merge_copies_history_list():
    source = models.RetryDetail("r", "u")
    source.put(states.SUCCESS, [1])
    source.results[-1][1]["a"] = make_failure()
    target = models.RetryDetail("r", "u").merge(source)
    assert target.results == source.results and target.results is not source.results
    assert target.results[0][1] is not source.results[0][1]
    assert target.results[0][0] is source.results[0][0]


def test_copies_are_shallow_but_independent_containers():
    ad = full_task_detail()
    clone = ad.copy()
    assert clone is not ad and clone.results is ad.results and clone.meta == ad.meta
    clone.meta["new"] = 1
    assert "new" not in ad.meta
    rd = models.RetryDetail("r", "u")
    rd.put(states.SUCCESS, 1)
    rclone = rd.copy()
    rclone.put(states.SUCCESS, 2)
    assert len(rd.results) == 1 and len(rclone.results) == 2
    book = models.LogBook("b")
    book.add(models.FlowDetail("f", "f-1"))
    assert len(book.copy()) == 1 and len(book.copy(retain_contents=False)) == 0
    fd = models.FlowDetail("f", "u")
    fd.add(ad)
    assert fd.copy().find("ad-1") is ad and len(fd.copy(retain_contents=False)) == 0


# -- put / reset ---------------------------------------------------------------------------------


def test_task_put_transitions():
    ad = models.TaskDetail("t", "u")
    assert ad.put(states.SUCCESS, 5) is True and ad.results == 5
    assert ad.put(states.SUCCESS, ad.results) is False  # same object, same state
    failure = make_failure()
    assert ad.put(states.FAILURE, failure) is True
    assert ad.failure is failure and ad.results is None
    assert ad.put(states.REVERTED, "undone") is True and ad.revert_results == "undone"
    revert_failure = make_failure(KeyError("r"))
    ad.put(states.REVERT_FAILURE, revert_failure)
    assert ad.revert_failure is revert_failure and ad.revert_results is None
    ad.put(states.SUCCESS, 7)
    assert (ad.failure, ad.revert_failure, ad.results) == (None, None, 7)
    ad.intention = states.REVERT
    ad.reset(states.PENDING)
    assert (ad.state, ad.intention, ad.results, ad.failure) == ("PENDING", "EXECUTE", None, None)


def test_retry_put_appends_history_and_reset_clears_it():
    rd = models.RetryDetail("r", "u")
    rd.put(states.SUCCESS, "a")
    rd.put(states.FAILURE, make_failure())
    rd.put(states.SUCCESS, "b")
    assert [v for v, _ in rd.results] == ["a", "b"] and rd.failure is None
    rd.reset(states.PENDING)
    assert rd.results == [] and rd.state == states.PENDING


# -- containers, type tags, formatting -----------------------------------------------------------


def test_add_find_iter_len():
    book = models.LogBook("b")
    fds = [models.FlowDetail(f"f{i}", f"u{i}") for i in range(3)]
    for fd in fds:
        book.add(fd)
    assert len(book) == 3 and list(book) == fds and book.find("u1") is fds[1] and book.find("x") is None
    book.add(models.FlowDetail("replacement", "u1"))
    assert len(book) == 3 and book.find("u1").name == "replacement"


def test_atom_detail_type_tags():
    assert models.atom_detail_type(models.TaskDetail("t", "u")) == "TASK_DETAIL"
    assert models.atom_detail_type(models.RetryDetail("r", "u")) == "RETRY_DETAIL"
    assert models.atom_detail_class("TASK_DETAIL") is models.TaskDetail
    assert models.atom_detail_class("RETRY_DETAIL") is models.RetryDetail
    with pytest.raises(TypeError, match="NOPE"):
        models.atom_detail_class("NOPE")
    with pytest.raises(TypeError):
        models.atom_detail_type(object())
    with pytest.raises(TypeError):
        models.AtomDetail("abstract", "u")


def test_pformat():
    book = models.LogBook("my-book")
    fd = models.FlowDetail("my-flow", "f-1")
    ad = full_task_detail()
    fd.add(ad)
    book.add(fd)
    text = book.pformat()
    assert text.splitlines()[0] == "LogBook: 'my-book'"
    assert " FlowDetail: 'my-flow'" in text and "  TaskDetail: 'task-a'" in text
    assert "- version = 1.2" in text and "+ progress = 50.00%" in text and "- failure = True" in text
    assert " - state = FAILURE" in ad.pformat()


# -- persistence_utils ---------------------------------------------------------------------------


class NamedFlow:
    name = "named-flow"


def test_persistence_utils_save_to_backend():
    backend = fetch("memory://")
    book = persistence_utils.temporary_log_book(backend)
    with backend.get_connection() as conn:
        assert conn.get_logbook(book.uuid).name == "tmp"
        tmp_book, tmp_fd = persistence_utils.temporary_flow_detail(backend, meta={"k": 1})
        assert conn.get_flow_details(tmp_fd.uuid).meta == {"k": 1}
        assert tmp_book.find(tmp_fd.uuid) is tmp_fd and tmp_fd.name == "tmp-flow-detail"
        fd = persistence_utils.create_flow_detail(NamedFlow(), book=book, backend=backend, meta={"m": 2})
        assert fd.name == "named-flow" and book.find(fd.uuid) is fd
        assert [f.uuid for f in conn.get_flows_for_book(book.uuid)] == [fd.uuid]
        assert conn.get_flow_details(fd.uuid).meta == {"m": 2}


def test_create_flow_detail_without_backend_or_name():
    fd = persistence_utils.create_flow_detail(object())
    assert fd.name == fd.uuid and len(fd.uuid) == 36
    book = models.LogBook("b")
    fd2 = persistence_utils.create_flow_detail(NamedFlow(), book=book)
    assert book.find(fd2.uuid) is fd2


def test_create_flow_detail_with_backend_but_no_book_saves_a_temporary_one():
    backend = fetch("memory://")
    fd = persistence_utils.create_flow_detail(NamedFlow(), backend=backend)
    with backend.get_connection() as conn:
        (book,) = conn.get_logbooks()
        assert book.name == "tmp" and book.find(fd.uuid) is not None


# -- codecs --------------------------------------------------------------------------------------


def test_json_codec_round_trip_and_documented_losses():
    value = {"a": [1, 2.5, None, True, "é"], "b": {"c": (1, 2)}}
    data = JSON.dumps(value)
    assert isinstance(data, bytes)
    assert JSON.loads(data) == {"a": [1, 2.5, None, True, "é"], "b": {"c": [1, 2]}}
    assert JSON.loads(JSON.dumps({1: "x"})) == {"1": "x"}  # as with TaskFlow's JSON backends


@pytest.mark.parametrize(
    ("value", "type_name", "where"),
    [
        (object(), "object", ""),
        ({"a": [1, {"b": {1, 2}}]}, "set", "value['a'][1]['b']"),
        ({"k": {(1, 2): "v"}}, "tuple", "value['k'] (a dictionary key)"),
        ([CustomError("x")], "test_models.CustomError", "value[0]"),
    ],
)
def test_json_codec_names_the_type_it_cannot_serialize(value, type_name, where):
    with pytest.raises(TypeError) as info:
        JSON.dumps(value)
    message = str(info.value)
    assert f"type {type_name}" in message and where in message and "return JSON-compatible data" in message
    assert "pickle" not in message  # no backend accepts another codec: it must not be advised


def test_json_codec_circular_reference_is_a_type_error():
    loop: list = []
    loop.append(loop)
    with pytest.raises(TypeError, match="Circular reference"):
        JSON.dumps(loop)


def test_pickle_codec_is_exact_and_names_unpicklable_types():
    value = {1: (2, 3), "e": CustomError("x"), "s": {1}}
    back = PICKLE.loads(PICKLE.dumps(value))
    assert back[1] == (2, 3) and isinstance(back["e"], CustomError) and back["s"] == {1}
    with pytest.raises(TypeError, match="type function"):
        PICKLE.dumps(lambda: None)


def test_get_codec():
    assert get_codec() is JSON and get_codec("json") is JSON and get_codec("pickle") is PICKLE
    assert get_codec(PICKLE) is PICKLE
    with pytest.raises(ValueError, match="msgpack"):
        get_codec("msgpack")


def test_details_pickle():
    import pickle

    ad = full_task_detail()
    back = pickle.loads(pickle.dumps(ad))
    assert back.to_dict() == ad.to_dict() and back.failure.check(CustomError) is CustomError
    rd = models.RetryDetail("r", "u")
    rd.put(states.SUCCESS, 1)
    assert pickle.loads(pickle.dumps(rd)).results == [(1, {})]
