"""Module-level flow factories and tasks for the resumption, factory and ownership tests.

Everything here is importable by name, so a resuming engine (in this process or another one) can
rebuild the flows from ``FlowDetail.meta['factory']``. Tasks talk to the test through files in a
work directory given to the factory:

- ``journal``: one line appended per call, ``"execute b a=a@1"`` or ``"revert b"``, written before
  the task acts, so an attempt killed by ``os._exit`` is still recorded;
- ``behaviour.json``: read on every call, saying which atoms exit the process, fail or block, and
  the current ``generation`` (a task's result is ``"<name>@<generation>"``, so a result reused from an
  earlier run is told apart from one computed again).

``python resume_factories.py <command> ...`` is the entry point of the child processes (see `main`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

from ferroflow import engines, exceptions, task
from ferroflow.patterns import graph_flow, linear_flow
from ferroflow.persistence import backends

#: Exit status of a task that kills its process (as a SIGKILL would leave it: no cleanup at all).
CRASH_STATUS = 137
JOURNAL = "journal"
BEHAVIOUR = "behaviour.json"
FLOW_UUID = "flow_uuid"


class Boom(Exception):
    """An execute failure, re-raised by the engines."""


class RevertBoom(Exception):
    """A revert failure."""


# -- the work directory ---------------------------------------------------------------------------


def configure(workdir: str | os.PathLike, generation: int = 1, **actions: list[str]) -> None:
    """Sets what the tasks do from now on: ``exit``/``fail``/``block`` (executes) and
    ``revert_exit``/``revert_fail`` (reverts) list atom names; ``generation`` tags results."""
    data = {"generation": generation, **{key: list(names) for key, names in actions.items()}}
    pathlib.Path(workdir, BEHAVIOUR).write_text(json.dumps(data))


def take_journal(workdir: str | os.PathLike) -> list[str]:
    """The journal lines written since the last call (the journal is emptied)."""
    path = pathlib.Path(workdir, JOURNAL)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    path.write_text("")
    return lines


def _behaviour(workdir: str) -> dict[str, Any]:
    path = pathlib.Path(workdir, BEHAVIOUR)
    return json.loads(path.read_text()) if path.exists() else {"generation": 1}


def _journal(workdir: str, line: str) -> None:
    with open(os.path.join(workdir, JOURNAL), "a") as journal:
        journal.write(line + "\n")
        journal.flush()


def _block(workdir: str, name: str) -> None:
    """Waits until the test creates ``release-<name>`` (a task that keeps its engine running)."""
    pathlib.Path(workdir, f"blocking-{name}").touch()
    release = pathlib.Path(workdir, f"release-{name}")
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


# -- tasks ----------------------------------------------------------------------------------------


class Step(task.Task):
    """Journals its calls, obeys ``behaviour.json``, returns ``"<name>@<generation>"``."""

    def __init__(self, name: str, workdir: str, requires: list[str] | None = None) -> None:
        super().__init__(name=name, provides=name, requires=requires or [])
        self.workdir = workdir

    def execute(self, **inputs: Any) -> str:
        shown = " ".join(f"{key}={inputs[key]}" for key in sorted(inputs))
        _journal(self.workdir, f"execute {self.name} {shown}".rstrip())
        behaviour = _behaviour(self.workdir)
        if self.name in behaviour.get("exit", ()):
            os._exit(CRASH_STATUS)
        if self.name in behaviour.get("block", ()):
            _block(self.workdir, self.name)
        if self.name in behaviour.get("fail", ()):
            raise Boom(f"{self.name} failed")
        return f"{self.name}@{behaviour['generation']}"

    def revert(self, **kwargs: Any) -> None:
        _journal(self.workdir, f"revert {self.name}")
        behaviour = _behaviour(self.workdir)
        if self.name in behaviour.get("revert_exit", ()):
            os._exit(CRASH_STATUS)
        if self.name in behaviour.get("revert_fail", ()):
            raise RevertBoom(f"{self.name} revert failed")


# -- factories ------------------------------------------------------------------------------------


def chain(workdir: str, names: list[str] | None = None, store_names: list[str] | None = None) -> Any:
    """A linear flow of `Step` atoms, each requiring its predecessor's result (and ``store_names``
    for the last one)."""
    names = list(names or ["a", "b", "c"])
    flow = linear_flow.Flow("chain")
    previous: list[str] = []
    for position, name in enumerate(names):
        extra = list(store_names or []) if position == len(names) - 1 else []
        flow.add(Step(name, workdir, requires=previous + extra))
        previous = [name]
    return flow


def never(history: Any) -> bool:
    """A decider that always says no."""
    return False


def decided(workdir: str) -> Any:
    """``a -> b`` with a decider that refuses ``b`` (which is then IGNORE), and an independent ``c``."""
    flow = graph_flow.Flow("decided")
    a, b, c = Step("a", workdir), Step("b", workdir), Step("c", workdir)
    flow.add(a, b, c)
    flow.link(a, b, decider=never)
    return flow


def with_args(workdir: str, *names: str, prefix: str = "") -> Any:
    """A chain named by positional arguments, each prefixed by ``prefix`` (factory arguments test)."""
    return chain(workdir, [prefix + name for name in names])


class Factories:
    """Holds factories reachable by dotted names (static and class methods re-import fine)."""

    @staticmethod
    def static(workdir: str) -> Any:
        return chain(workdir, ["s"])

    def bound(self, workdir: str) -> Any:
        return chain(workdir, ["m"])


# -- helpers for the tests ----------------------------------------------------------------------


def saved(backend: Any, flow_uuid: str) -> Any:
    """The flow detail as the store holds it now."""
    with contextlib.closing(backend.get_connection()) as conn:
        return conn.get_flow_details(flow_uuid)


def atom_states(flow_detail: Any) -> dict[str, tuple[str, str]]:
    """``{atom name: (state, intention)}`` of a saved flow detail (the store injector left out)."""
    return {ad.name: (ad.state, ad.intention) for ad in flow_detail if not ad.name.startswith("_TaskFlow")}


def atom_results(flow_detail: Any) -> dict[str, Any]:
    return {ad.name: ad.results for ad in flow_detail if not ad.name.startswith("_TaskFlow")}


def raised_failures(error: BaseException) -> list[tuple[str, str]]:
    """``(exception class name, message)`` of what a run re-raised: the exception itself, or each
    failure of a WrappedFailure (failures loaded back from a store lost their exception object)."""
    if not isinstance(error, exceptions.WrappedFailure):
        return [(type(error).__name__, str(error))]
    found = []
    for failure in error:
        cls = failure.check(Boom, RevertBoom)
        found.append((cls.__name__ if isinstance(cls, type) else next(iter(failure)), failure.exception_str))
    return sorted(found)


def child_command(
    db: str | os.PathLike,
    workdir: str | os.PathLike,
    factory_kwargs: dict | None = None,
    store: dict | None = None,
    options: dict | None = None,
) -> list[str]:
    """The command of a child process running a new `chain` flow (see `main`)."""
    kwargs = {"workdir": str(workdir), **(factory_kwargs or {})}
    return [
        sys.executable,
        os.path.abspath(__file__),
        str(db),
        str(workdir),
        json.dumps(kwargs),
        json.dumps(store or {}),
        json.dumps(options or {}),
    ]


def run_child(db: str | os.PathLike, workdir: str | os.PathLike, **kwargs: Any) -> tuple[int, str, str]:
    """Runs a new `chain` flow in a child process to its end (or death):
    ``(exit status, its output, flow detail uuid)``."""
    done = subprocess.run(child_command(db, workdir, **kwargs), capture_output=True, text=True, timeout=60)
    flow_uuid = pathlib.Path(workdir, FLOW_UUID).read_text()
    return done.returncode, done.stdout + done.stderr, flow_uuid


# -- child processes ------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Child process entry point: ``<db> <workdir> <factory kwargs json> <store json> <options json>
    [--resume FLOW_UUID]``.

    Loads a new flow from `chain` into the store ``<db>`` (a SQLite file, or a backend URI), writes
    the flow detail's uuid to ``<workdir>/flow_uuid``, then runs it and prints ``done <flow state>``
    or ``raised <type> <message>``.
    """
    db, workdir = argv[0], argv[1]
    factory_kwargs, store, options = (json.loads(text) for text in argv[2:5])
    backend = backends.fetch(db if "://" in db else f"sqlite:///{db}")
    if argv[5:6] == ["--resume"]:  # resume the saved flow ``argv[6]`` in this (fresh) process instead
        engine = engines.load_from_detail(saved(backend, argv[6]), backend=backend, **options)
    else:
        engine = engines.load_from_factory(
            chain, factory_kwargs=factory_kwargs, store=store or None, backend=backend, **options
        )
        pathlib.Path(workdir, FLOW_UUID).write_text(engine.storage.flow_uuid)
    try:
        engine.run()
    except Exception as exc:
        print("raised", type(exc).__name__, exc, flush=True)
        return 1
    print("done", engine.storage.get_flow_state(), flush=True)
    return 0


if __name__ == "__main__":
    # Run through the importable module, so that saved factory names are ``resume_factories.*``
    # (not ``__main__.*``); the script's directory is already first on sys.path.
    import resume_factories

    sys.exit(resume_factories.main(sys.argv[1:]))
