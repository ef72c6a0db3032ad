"""Flow factories: what ``load_from_factory`` saves, how a resuming engine rebuilds the flow, and
what is refused — when it is saved, not when a resume needs it (every durable backend, real files)."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path

import pytest

import resume_factories as rf
from ferroflow import engines, states
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends


@pytest.fixture
def backend(tmp_path: Path, durable_backend):
    """A store of each durable backend (SQLite, dir://)."""
    be = backends.fetch(durable_backend.uri(tmp_path))
    yield be
    be.close()


def _nothing_saved(backend) -> bool:
    with contextlib.closing(backend.get_connection()) as conn:
        return not any(True for book in conn.get_logbooks() for _ in book)


def _names(flow) -> list[str]:
    return [atom.name for atom in flow]


def test_module_level_function_is_saved_by_name_and_rebuilds_the_flow(tmp_path, backend) -> None:
    rf.configure(tmp_path)
    engine = engines.load_from_factory(rf.chain, factory_kwargs={"workdir": str(tmp_path)}, backend=backend)
    engine.run()

    fd = rf.saved(backend, engine.storage.flow_uuid)
    assert fd.meta["factory"] == {
        "name": "resume_factories.chain",
        "args": [],
        "kwargs": {"workdir": str(tmp_path)},
    }
    rebuilt = engines.flow_from_detail(fd)
    assert _names(rebuilt) == ["a", "b", "c"]
    assert rebuilt is not engine._flow


def test_dotted_name_with_args_and_kwargs_is_saved_and_called_again_on_resume(tmp_path, backend) -> None:
    rf.configure(tmp_path)
    engine = engines.load_from_factory(
        "resume_factories.with_args",
        factory_args=(str(tmp_path), "x", "y"),
        factory_kwargs={"prefix": "p-"},
        backend=backend,
    )
    engine.atom_notifier.register(states.SUCCESS, lambda event, details: engine.suspend())
    engine.run()
    assert rf.take_journal(tmp_path) == ["execute p-x"]

    fd = rf.saved(backend, engine.storage.flow_uuid)
    assert fd.meta["factory"] == {
        "name": "resume_factories.with_args",
        "args": [str(tmp_path), "x", "y"],
        "kwargs": {"prefix": "p-"},
    }
    resumed = engines.load_from_detail(fd, backend=backend)
    resumed.run()
    assert rf.take_journal(tmp_path) == ["execute p-y p-x=p-x@1"]
    assert rf.saved(backend, fd.uuid).state == states.SUCCESS


def test_static_method_is_reimportable_by_its_dotted_name(tmp_path, backend) -> None:
    engine = engines.load_from_factory(rf.Factories.static, factory_args=[str(tmp_path)], backend=backend)
    fd = rf.saved(backend, engine.storage.flow_uuid)
    assert fd.meta["factory"]["name"] == "resume_factories.Factories.static"
    assert _names(engines.flow_from_detail(fd)) == ["s"]


def _nested_factory_and_calls():
    calls = []

    def nested(workdir):
        calls.append(workdir)
        return rf.chain(workdir)

    return nested, calls


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("lambda", "not reimportable.*lambda"),
        ("nested", "not reimportable.*inside another function"),
        ("bound", "not reimportable.*bound"),
    ],
)
def test_factory_that_cannot_be_reimported_is_refused_when_saved(tmp_path, backend, kind, message) -> None:
    calls: list[str] = []
    if kind == "lambda":
        factory = lambda workdir: calls.append(workdir) or rf.chain(workdir)  # noqa: E731
    elif kind == "nested":
        factory, calls = _nested_factory_and_calls()
    else:
        factory = rf.Factories().bound

    with pytest.raises(ValueError, match=message):
        engines.load_from_factory(factory, factory_args=[str(tmp_path)], backend=backend)

    assert calls == [], "refused before the factory is called"
    assert _nothing_saved(backend), "no flow detail is saved for a flow that could never be resumed"
    fd = rf.saved(backend, engines.load(rf.chain(str(tmp_path)), backend=backend).storage.flow_uuid)
    with pytest.raises(ValueError, match="not reimportable"):
        engines.save_factory_details(fd, factory, [str(tmp_path)], {}, backend=backend)
    assert "factory" not in rf.saved(backend, fd.uuid).meta


def test_flow_detail_without_factory_information_cannot_be_rebuilt(tmp_path, backend) -> None:
    engine = engines.load(rf.chain(str(tmp_path)), backend=backend)
    engine.run()
    fd = rf.saved(backend, engine.storage.flow_uuid)

    with pytest.raises(ValueError, match="no factory information"):
        engines.flow_from_detail(fd)
    with pytest.raises(ValueError, match="no factory information"):
        engines.load_from_detail(fd, backend=backend)


def test_factory_function_gone_from_its_module_is_an_import_error_naming_it(
    tmp_path, backend, monkeypatch
) -> None:
    engine = engines.load_from_factory(rf.chain, factory_args=[str(tmp_path)], backend=backend)
    fd = rf.saved(backend, engine.storage.flow_uuid)
    monkeypatch.delattr(rf, "chain")

    with pytest.raises(ImportError, match=r"resume_factories\.chain"):
        engines.load_from_detail(fd, backend=backend)


def test_factory_module_gone_is_an_import_error_naming_it(tmp_path, backend, monkeypatch) -> None:
    module_dir = tmp_path / "code"
    module_dir.mkdir()
    module_file = module_dir / "vanishing_factories.py"
    module_file.write_text(
        "from ferroflow.patterns import linear_flow\n"
        "from ferroflow import task\n\n"
        "class Noop(task.Task):\n"
        "    def execute(self):\n"
        "        return 1\n\n"
        "def make():\n"
        "    return linear_flow.Flow('vanishing').add(Noop('only'))\n"
    )
    monkeypatch.syspath_prepend(str(module_dir))
    engine = engines.load_from_factory("vanishing_factories.make", backend=backend)
    fd = rf.saved(backend, engine.storage.flow_uuid)
    assert isinstance(engines.flow_from_detail(fd), linear_flow.Flow)

    module_file.unlink()  # the next release no longer ships it
    monkeypatch.delitem(sys.modules, "vanishing_factories")
    importlib.invalidate_caches()
    with pytest.raises(ImportError, match=r"vanishing_factories\.make"):
        engines.load_from_detail(fd, backend=backend)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(["x", object()], {}), (["x"], {"prefix": {1, 2}}), (["x"], {"prefix": b"bytes"})],
    ids=["object-arg", "set-kwarg", "bytes-kwarg"],
)
def test_factory_arguments_that_cannot_be_saved_are_refused(tmp_path, backend, args, kwargs) -> None:
    with pytest.raises(ValueError, match=r"resume_factories\.with_args"):
        engines.load_from_factory(
            rf.with_args, factory_args=[str(tmp_path), *args], factory_kwargs=kwargs, backend=backend
        )
    assert _nothing_saved(backend)
