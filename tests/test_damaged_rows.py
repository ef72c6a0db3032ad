"""Damaged rows are refused, never read silently or crashed on (issue 11, defect 6): corrupt meta,
unknown states, results that cannot be saved, the reserved atom name, the ``codec`` option and
strict JSON output.

Real files on SQLite and ``dir://``; the command line as real processes (``python -m ferroflow``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ferroflow import engines, exceptions, states, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends

FLOWS = """
import math

from ferroflow import task
from ferroflow.patterns import linear_flow


class Step(task.Task):
    def execute(self, total):
        with open("executions.log", "a") as log:
            log.write(self.name + "\\n")
        return total + 1


class Odd(task.Task):
    def execute(self):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "list": [1.5, math.nan]}


def chain(n):
    flow = linear_flow.Flow("chain")
    flow.add(Step("step-0", inject={"total": 0}, provides="t0"))
    for i in range(1, n):
        flow.add(Step(f"step-{i}", rebind={"total": f"t{i - 1}"}, provides=f"t{i}"))
    return flow


def odd():
    return linear_flow.Flow("odd").add(Odd("odd"))
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "damagedflows.py").write_text(textwrap.dedent(FLOWS))
    return tmp_path


def ferroflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FERROFLOW_DB"}
    return subprocess.run(
        [sys.executable, "-m", "ferroflow", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], result.stderr


def run_chain(workdir: Path, db: Path, n: int = 3) -> str:
    result = ferroflow("run", "damagedflows:chain", "--arg", str(n), "--db", str(db), cwd=workdir)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]


def executions(workdir: Path) -> list[str]:
    log = workdir / "executions.log"
    return log.read_text().split() if log.exists() else []


def sql(db: Path, statement: str, *params: Any) -> None:
    with sqlite3.connect(db) as raw:
        raw.execute(statement, params)
    raw.close()


# -- corrupt meta ----------------------------------------------------------------------------------


@pytest.mark.parametrize("meta", ["not json", "[1, 2]", '{"factory": '], ids=["text", "list", "truncated"])
def test_corrupt_flow_meta_is_a_clear_error_from_every_command(workdir: Path, meta: str) -> None:
    db = workdir / "flows.db"
    flow_uuid = run_chain(workdir, db)
    sql(db, "UPDATE flowdetails SET meta = ?, state = 'SUSPENDED' WHERE uuid = ?", meta, flow_uuid)
    ran = executions(workdir)
    for command in (["show"], ["show", "--json"], ["show", flow_uuid], ["plan"], ["resume"], ["resume", flow_uuid]):
        result = ferroflow(*command, "--db", str(db), cwd=workdir)
        one_line_error(result, f"flow detail '{flow_uuid}'", "'meta' field")
    assert executions(workdir) == ran, "an atom ran"

    backend = backends.fetch(f"sqlite:///{db}")
    try:
        with backend.get_connection() as conn, pytest.raises(exceptions.StorageFailure, match="'meta' field"):
            conn.get_flow_details(flow_uuid)
    finally:
        backend.close()


def test_corrupt_atom_meta_and_results_name_the_atom_detail_and_field(workdir: Path) -> None:
    db = workdir / "flows.db"
    flow_uuid = run_chain(workdir, db)
    sql(db, "UPDATE flowdetails SET state = 'SUSPENDED' WHERE uuid = ?", flow_uuid)
    sql(db, "UPDATE atomdetails SET results = '{\"cut' WHERE name = 'step-1'")
    result = ferroflow("resume", "--db", str(db), cwd=workdir)
    one_line_error(result, "atom detail", "('step-1')", "'results' field is not valid JSON")
    sql(db, "UPDATE atomdetails SET results = '2', meta = '\"progress\"' WHERE name = 'step-1'")
    result = ferroflow("resume", "--db", str(db), cwd=workdir)
    one_line_error(result, "('step-1')", "'meta' field holds a JSON str, not an object")
    assert executions(workdir) == ["step-0", "step-1", "step-2"]


# -- unknown states ----------------------------------------------------------------------------------


def test_an_unknown_state_on_a_finished_atom_is_refused_by_plan_and_resume(workdir: Path) -> None:
    db = workdir / "flows.db"
    flow_uuid = run_chain(workdir, db)
    sql(db, "UPDATE flowdetails SET state = 'SUSPENDED' WHERE uuid = ?", flow_uuid)
    sql(db, "UPDATE atomdetails SET state = 'BOGUS' WHERE name = 'step-0'")
    sql(db, "UPDATE atomdetails SET state = 'PENDING', results = 'null' WHERE name = 'step-2'")
    for command in ("plan", "resume"):
        result = ferroflow(command, flow_uuid, "--db", str(db), cwd=workdir)
        one_line_error(result, "atom detail 'step-0'", f"flow detail '{flow_uuid}'", "'state'", "'BOGUS'")
    assert executions(workdir) == ["step-0", "step-1", "step-2"], "an atom ran again"
    sql(db, "UPDATE atomdetails SET state = 'SUCCESS', intention = 'SIDEWAYS' WHERE name = 'step-0'")
    one_line_error(ferroflow("resume", "--db", str(db), cwd=workdir), "'intention'", "'SIDEWAYS'")
    sql(db, "UPDATE atomdetails SET intention = 'EXECUTE' WHERE name = 'step-0'")
    sql(db, "UPDATE flowdetails SET state = 'HALFWAY' WHERE uuid = ?", flow_uuid)
    one_line_error(ferroflow("resume", flow_uuid, "--db", str(db), cwd=workdir), "'state'", "'HALFWAY'")
    sql(db, "UPDATE flowdetails SET state = 'SUSPENDED' WHERE uuid = ?", flow_uuid)
    assert ferroflow("resume", "--db", str(db), cwd=workdir).returncode == 0
    assert executions(workdir) == ["step-0", "step-1", "step-2", "step-2"], "repaired: only step-2 runs"


class Count(task.Task):
    def execute(self, total: int) -> int:
        self.__class__.runs.append(self.name)
        return total + 1

    runs: list[str] = []


def count_chain(n: int = 3) -> linear_flow.Flow:
    flow = linear_flow.Flow("chain")
    flow.add(Count("c0", inject={"total": 0}, provides="t0"))
    for i in range(1, n):
        flow.add(Count(f"c{i}", rebind={"total": f"t{i - 1}"}, provides=f"t{i}"))
    return flow


DURABLE = {
    "sqlite": lambda tmp: f"sqlite:///{tmp}/store.db",
    "dir": lambda tmp: f"dir://{tmp}/store",
}


@pytest.fixture(params=sorted(DURABLE))
def uri(request, tmp_path: Path) -> str:
    return DURABLE[request.param](tmp_path)


def _set_saved_state(uri: str, tmp_path: Path, flow_uuid: str, name: str, state: str) -> None:
    """Writes ``state`` into the saved detail of atom ``name`` behind the backend's back."""
    if uri.startswith("sqlite"):
        sql(
            tmp_path / "store.db",
            "UPDATE atomdetails SET state = ? WHERE name = ? AND flow_id = (SELECT id FROM flowdetails WHERE uuid = ?)",
            state,
            name,
            flow_uuid,
        )
        return
    for metadata in (tmp_path / "store" / "atom_details").glob("*/metadata"):
        record = json.loads(metadata.read_text())
        if record["atom"]["name"] == name:
            record["atom"]["state"] = state
            metadata.write_text(json.dumps(record))
            return
    raise AssertionError(f"no saved detail named {name}")


def test_an_unknown_state_is_refused_on_every_durable_backend(uri: str, tmp_path: Path) -> None:
    Count.runs = []
    engine = engines.load(count_chain(), backend=uri)
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert Count.runs == ["c0", "c1", "c2"]
    _set_saved_state(uri, tmp_path, flow_uuid, "c1", "BOGUS")
    backend = backends.fetch(uri)
    try:
        with backend.get_connection() as conn:
            fd = conn.get_flow_details(flow_uuid)
        fd.state = states.SUSPENDED
        resumed = engines.load(count_chain(), flow_detail=fd, backend=backend)
        with pytest.raises(exceptions.StorageFailure, match=r"atom detail .*c1.*'state'.*'BOGUS'"):
            resumed.run()
    finally:
        backend.close()
    assert Count.runs == ["c0", "c1", "c2"], "an atom ran again"


# -- results that cannot be saved ----------------------------------------------------------------


class Undo(task.Task):
    def execute(self) -> int:
        return 1

    def revert(self, **kwargs: Any) -> None:
        Undo.reverted.append(self.name)

    reverted: list[str] = []


class Deep(task.Task):
    def execute(self) -> Any:
        value: list[Any] = []
        for _ in range(100_000):
            value = [value]
        return value


class Unsaveable(task.Task):
    def execute(self) -> Any:
        return {"a set": {1, 2}}


@pytest.mark.parametrize(("atom", "why"), [(Deep, "nests deeper"), (Unsaveable, "type set")])
def test_a_result_that_cannot_be_saved_fails_the_atom_and_the_flow_reverts(
    uri: str, atom: type[task.Task], why: str
) -> None:
    Undo.reverted = []
    flow = linear_flow.Flow("f").add(Undo("first"), atom("bad"), Undo("never"))
    engine = engines.load(flow, backend=uri)
    with pytest.raises(TypeError, match=f"result of atom 'bad' cannot be saved: .*{why}"):
        engine.run()
    assert Undo.reverted == ["first"], "the flow did not revert through the failure path"
    backend = backends.fetch(uri)
    try:
        with backend.get_connection() as conn:
            fd = conn.get_flow_details(engine.storage.flow_uuid)
        assert fd.state == states.REVERTED
        saved = {ad.name: ad for ad in fd}
        assert saved["first"].state == states.REVERTED and saved["never"].state == states.PENDING
        assert saved["bad"].state == states.REVERTED and saved["bad"].results is None
        assert why in str(saved["bad"].failure.exception_str)
    finally:
        backend.close()


# -- the reserved name -------------------------------------------------------------------------------


def test_the_reserved_atom_name_is_refused_when_the_flow_is_compiled(uri: str) -> None:
    flow = linear_flow.Flow("f").add(Undo("_TaskFlow_INJECTOR"))
    with pytest.raises(exceptions.CompilationFailure, match=r"'_TaskFlow_INJECTOR' is reserved.*rename the atom"):
        engines.load(flow, backend=uri).compile()
    Count.runs = []
    with pytest.raises(exceptions.CompilationFailure, match="reserved"):
        engines.run(linear_flow.Flow("g").add(Count("first", inject={"total": 0}), Count("_TaskFlow_INJECTOR")))
    assert Count.runs == [], "an atom ran: the name must be refused before anything runs"


# -- codec ---------------------------------------------------------------------------------------------


def test_a_codec_other_than_json_is_refused_not_ignored(uri: str) -> None:
    with pytest.raises(ValueError, match=r"codec='pickle' is not supported.*stored as JSON"):
        engines.load(count_chain(), backend=uri, codec="pickle")
    with pytest.raises(ValueError, match=r"codec='pickle' is not supported"):
        backends.fetch({"connection": uri, "codec": "pickle"})
    with pytest.raises(ValueError, match=r"codec='msgpack' is not supported"):
        backends.fetch(f"{uri}?codec=msgpack")
    Count.runs = []
    engine = engines.load(count_chain(2), backend=backends.fetch({"connection": uri, "codec": "json"}), codec="json")
    engine.run()
    assert Count.runs == ["c0", "c1"]


# -- strict JSON output ----------------------------------------------------------------------------


def test_show_json_is_strict_json_with_non_finite_floats_as_strings(workdir: Path) -> None:
    db = workdir / "odd.db"
    run = ferroflow("run", "damagedflows:odd", "--db", str(db), cwd=workdir)
    assert run.returncode == 0, run.stderr
    flow_uuid = run.stdout.split()[1]
    result = ferroflow("show", flow_uuid, "--json", "--db", str(db), cwd=workdir)
    assert result.returncode == 0, result.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in the JSON output")

    shown = json.loads(result.stdout, parse_constant=refuse)
    (odd,) = shown["atoms"]
    assert odd["results"] == {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "list": [1.5, "NaN"]}
    listing = ferroflow("show", "--json", "--db", str(db), cwd=workdir)
    assert json.loads(listing.stdout, parse_constant=refuse)[0]["uuid"] == flow_uuid
