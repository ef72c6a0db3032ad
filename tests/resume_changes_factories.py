"""Flows whose code changes between runs, and the child processes that run and resume them.

The factory `make(workdir)` is what a deployed program would be: it builds the flow described by
``<workdir>/code.json`` *at the time it is called*, so a test changes the code between two runs by
rewriting that file (a shape, per-atom versions and version policies). What the tasks do is read
from ``<workdir>/behaviour.json`` on every call (as in `resume_factories`): which atoms kill their
process (``kill``: a real SIGKILL, no cleanup), fail, or kill it from inside their revert, and the
``generation`` their results are tagged with (``"<name>@<generation>"``), so a reused result is told
apart from one computed again. Every call is journaled (``execute c b=b@1``, ``revert b``) before
the task acts.

``python resume_changes_factories.py <command> ...`` is the entry point of the child processes
(``DB`` is a backend URI, or the path of a SQLite file):

- ``start DB WORKDIR OPTIONS``: a new flow from `make`, its uuid written to ``WORKDIR/flow_uuid``,
  then run;
- ``resume DB WORKDIR FLOW_UUID OPTIONS``: the saved flow rebuilt by its factory; ``engine.plan()``
  written to ``WORKDIR/plan.json`` before anything runs; then run;
- ``rewind DB WORKDIR FLOW_UUID ATOM OPTIONS``: the same with ``plan(rewind_to=ATOM)`` and
  ``engine.rewind(to=ATOM)``.

``OPTIONS`` is JSON: engine options, where ``migrations`` names a set in `MIGRATIONS` (or lists
them: ``[["rename", old, new], ["split", old, [new, ...]]]``, without functions) and an
``on_version_change`` of ``"migrate"`` stands for `migrate_result`. A shape is a name in `make`, or a
spec (`_from_spec`). Each prints ``done <state>`` or
``raised <type> <message>``.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
from typing import Any

from ferroflow import engines, migrations, task
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow
from ferroflow.persistence import backends

JOURNAL = "journal"
BEHAVIOUR = "behaviour.json"
CODE = "code.json"
PLAN = "plan.json"
FLOW_UUID = "flow_uuid"


class Boom(Exception):
    """An execute failure."""


# -- the work directory ---------------------------------------------------------------------------


def deploy(
    workdir: str | os.PathLike,
    shape: str | dict[str, Any],
    versions: dict[str, str] | None = None,
    policies: dict[str, str] | None = None,
    classes: dict[str, str] | None = None,
) -> None:
    """Sets the code `make` builds from now on (``classes``: a class of `CLASSES` per atom)."""
    data = {"shape": shape, "versions": versions or {}, "policies": policies or {}, "classes": classes or {}}
    pathlib.Path(workdir, CODE).write_text(json.dumps(data))


def configure(workdir: str | os.PathLike, generation: int = 1, **actions: Any) -> None:
    """What tasks (and migration functions) do from now on: ``kill`` / ``fail`` (executes),
    ``revert_kill`` (inside a revert), ``kill_after_revert`` (once that atom is saved REVERTED),
    ``kill_in_migration`` (inside a migration function)."""
    data = {"generation": generation, **actions}
    pathlib.Path(workdir, BEHAVIOUR).write_text(json.dumps(data))


def take_journal(workdir: str | os.PathLike) -> list[str]:
    path = pathlib.Path(workdir, JOURNAL)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    path.write_text("")
    return lines


def _behaviour(workdir: str) -> dict[str, Any]:
    path = pathlib.Path(workdir, BEHAVIOUR)
    return json.loads(path.read_text()) if path.exists() else {"generation": 1}


def journal(workdir: str, line: str) -> None:
    with open(os.path.join(workdir, JOURNAL), "a") as out:
        out.write(line + "\n")
        out.flush()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# -- tasks ----------------------------------------------------------------------------------------


class Step(task.Task):
    """Journals its calls, obeys ``behaviour.json``, returns ``"<name>@<generation>"``."""

    def __init__(
        self, name: str, workdir: str, requires: list[str] | None = None, provides: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, provides=provides or name, requires=requires or [], **kwargs)
        self.workdir = workdir

    def execute(self, **inputs: Any) -> Any:
        shown = " ".join(f"{key}={inputs[key]}" for key in sorted(inputs))
        journal(self.workdir, f"execute {self.name} {shown}".rstrip())
        behaviour = _behaviour(self.workdir)
        if self.name in behaviour.get("kill", ()):
            _die()
        if self.name in behaviour.get("fail", ()):
            raise Boom(f"{self.name} failed")
        generation = behaviour["generation"]
        keys = [key for key in self.save_as.values() if key is not None]
        if keys:  # provides a list (items by position) or a set (items by name)
            if all(isinstance(key, int) for key in keys):
                return [f"{name}@{generation}" for name in self.save_as]
            return {name: f"{name}@{generation}" for name in self.save_as}
        return f"{self.name}@{generation}"

    def revert(self, result: Any = None, **kwargs: Any) -> None:
        journal(self.workdir, f"revert {self.name}")
        if self.name in _behaviour(self.workdir).get("revert_kill", ()):
            _die()


class StepV2(Step):
    """A step whose code is versioned by its class: ``version = (2, 0)``."""

    version = (2, 0)


#: Step classes a deployment may pick per atom (``classes`` in ``code.json``).
CLASSES = {"Step": Step, "StepV2": StepV2}


def migrate_result(old_version: str, old_result: Any) -> str:
    """A version ``migrate`` callable: the old result, tagged with the version it came from."""
    return f"{old_result}~{old_version}"


def split_b(result: str) -> list[str]:
    """``Split("b", ["b1", "b2"], split_b)``: b's result cut in two."""
    workdir = os.environ["RESUME_CHANGES_WORKDIR"]
    journal(workdir, f"split {result}")
    if _behaviour(workdir).get("kill_in_migration"):
        _die()
    return [f"{result}/1", f"{result}/2"]


def merge_xy(results: dict[str, str]) -> str:
    """``Merge(["x", "y"], "xy", merge_xy)``."""
    return "+".join(results[name] for name in sorted(results))


MIGRATIONS: dict[str, list[migrations.Migration]] = {
    "rename_b": [migrations.Rename("b", "b2")],
    "split_b": [migrations.Split("b", ["b1", "b2"], split_b)],
    "merge_xy": [migrations.Merge(["x", "y"], "xy", merge_xy)],
    "unknown": [migrations.Rename("nope", "b2")],
    "taken": [migrations.Rename("a", "b2")],
    "cycle": [migrations.Rename("a", "b2"), migrations.Rename("b2", "a")],
}


# -- the factory ----------------------------------------------------------------------------------


def _chain(workdir: str, names: list[str], code: dict[str, Any], flow: Any = None) -> Any:
    flow = flow or linear_flow.Flow("chain")
    previous: list[str] = []
    for name in names:
        flow.add(_step(name, workdir, code, requires=previous))
        previous = [name]
    return flow


def _from_spec(workdir: str, spec: dict[str, Any], code: dict[str, Any]) -> Any:
    """A flow from a spec: ``{"kind": "graph" | "linear", "atoms": [{"name", "requires",
    "provides", "provides_set"}]}`` (a graph flow orders its atoms by what they require; a linear
    one as listed). ``provides`` is a name (default: the atom's) or a list of names, picked out
    of the result by position, or by name with ``provides_set``."""
    flow = (graph_flow.Flow if spec.get("kind", "graph") == "graph" else linear_flow.Flow)("spec")
    for atom in spec["atoms"]:
        provides = atom.get("provides") or atom["name"]
        if isinstance(provides, list) and atom.get("provides_set"):
            provides = set(provides)
        flow.add(_step(atom["name"], workdir, code, requires=list(atom.get("requires", ())), provides=provides))
    return flow


def _step(name: str, workdir: str, code: dict[str, Any], **kwargs: Any) -> Step:
    policy = code["policies"].get(name)
    if policy == "migrate":
        policy = migrate_result
    step = CLASSES[code.get("classes", {}).get(name, "Step")](name, workdir, on_version_change=policy, **kwargs)
    if name in code["versions"]:
        step.version = code["versions"][name]
    return step


def make(workdir: str) -> Any:
    """The flow the current code (``code.json``) describes."""
    code = json.loads(pathlib.Path(workdir, CODE).read_text())
    shape = code["shape"]
    if isinstance(shape, dict):
        return _from_spec(workdir, shape, code)
    if shape in SHAPES:
        return _chain(workdir, SHAPES[shape], code)
    if shape == "xy":  # a, then x and y side by side, then c needing both
        parallel = unordered_flow.Flow("xy").add(
            _step("x", workdir, code, requires=["a"]), _step("y", workdir, code, requires=["a"])
        )
        return linear_flow.Flow("chain").add(
            _step("a", workdir, code), parallel, _step("c", workdir, code, requires=["x", "y"])
        )
    if shape == "provider_v1":  # a provides v; b needs v
        return linear_flow.Flow("chain").add(
            _step("a", workdir, code, provides="v"),
            _step("b", workdir, code, requires=["v"], provides="w"),
            _step("c", workdir, code, requires=["w"]),
        )
    if shape == "provider_v2":  # a graph now; v comes from a new a2; b moved into a subflow
        inner = linear_flow.Flow("inner").add(_step("b", workdir, code, requires=["v"], provides="w"))
        return graph_flow.Flow("chain").add(
            _step("a", workdir, code, provides="u"),
            _step("a2", workdir, code, requires=["u"], provides="v"),
            inner,
            _step("c", workdir, code, requires=["w"]),
        )
    if shape == "renamed_keeps_output":  # b renamed b2, still providing "b"
        return linear_flow.Flow("chain").add(
            _step("a", workdir, code),
            _step("b2", workdir, code, requires=["a"], provides="b"),
            _step("c", workdir, code, requires=["b"]),
            _step("d", workdir, code, requires=["c"]),
        )
    if shape == "with_gone":  # g comes from a module of the work directory (deleted later)
        import gone_steps

        return linear_flow.Flow("chain").add(
            _step("a", workdir, code), gone_steps.GoneStep("g", workdir), _step("c", workdir, code, requires=["a"])
        )
    if shape == "without_gone":
        return _chain(workdir, ["a", "c"], code)
    raise ValueError(f"unknown shape {shape!r}")


SHAPES: dict[str, list[str]] = {
    "abc": ["a", "b", "c"],
    "abcd": ["a", "b", "c", "d"],
    "acd": ["a", "c", "d"],
    "split": ["a", "b1", "b2", "c"],
    "renamed": ["a", "b2", "c"],
    "merged": ["a", "xy", "c"],
}

GONE_MODULE = '''
from resume_changes_factories import Step


class GoneStep(Step):
    """A step whose module disappears with the next deployment."""
'''


# -- child processes ------------------------------------------------------------------------------


def _options(text: str) -> dict[str, Any]:
    options = json.loads(text)
    if isinstance(options.get("migrations"), list):  # [["rename", old, new], ["split", old, [new, ...]], ...]
        kinds = {"rename": migrations.Rename, "split": migrations.Split, "merge": migrations.Merge}
        options["migrations"] = [kinds[kind](*args) for kind, *args in options["migrations"]]
    elif "migrations" in options:
        options["migrations"] = MIGRATIONS[options["migrations"]]
    if options.get("on_version_change") == "migrate":
        options["on_version_change"] = migrate_result
    return options


def _run(engine: Any, workdir: str, action: Any) -> int:
    behaviour = _behaviour(workdir)
    kill_after = behaviour.get("kill_after_revert")
    if kill_after:

        def on_reverted(event_type: str, details: dict[str, Any]) -> None:
            if details.get("task_name") == kill_after:
                _die()

        engine.atom_notifier.register("REVERTED", on_reverted)
    try:
        action()
    except Exception as exc:
        print("raised", type(exc).__name__, exc, flush=True)
        return 1
    print("done", engine.storage.get_flow_state(), flush=True)
    return 0


def _write_plan(workdir: str, plan: Any) -> None:
    pathlib.Path(workdir, PLAN).write_text(json.dumps(plan.to_json()))


def main(argv: list[str]) -> int:
    command, db, workdir = argv[0], argv[1], argv[2]
    os.environ["RESUME_CHANGES_WORKDIR"] = workdir
    sys.path.insert(0, workdir)  # where gone_steps lives while it exists
    backend = backends.fetch(db if "://" in db else f"sqlite:///{db}")
    if command == "start":
        options = _options(argv[3])
        engine = engines.load_from_factory(make, factory_kwargs={"workdir": workdir}, backend=backend, **options)
        pathlib.Path(workdir, FLOW_UUID).write_text(engine.storage.flow_uuid)
        return _run(engine, workdir, engine.run)
    flow_uuid = argv[3]
    flow_detail = backend.get_connection().get_flow_details(flow_uuid)
    try:
        options = _options(argv[5] if command == "rewind" else argv[4])
        engine = engines.load_from_detail(flow_detail, backend=backend, **options)
        if command == "rewind":
            _write_plan(workdir, engine.plan(rewind_to=argv[4]))
            return _run(engine, workdir, lambda: engine.rewind(to=argv[4]))
        _write_plan(workdir, engine.plan())
    except Exception as exc:
        print("raised", type(exc).__name__, exc, flush=True)
        return 1
    return _run(engine, workdir, engine.run)


if __name__ == "__main__":
    import resume_changes_factories

    sys.exit(resume_changes_factories.main(sys.argv[1:]))
