"""Resuming across code changes, end to end, with real processes, on every durable backend.

Every test runs once per durable backend (the ``durable_backend`` fixture: a SQLite file, a dir://
directory). It runs a flow halfway in a child process (killed by a real SIGKILL from one of its tasks),
changes the code the factory builds (`rc.deploy`), resumes in a fresh child process, and checks
the plan that process computed before running (``plan.json``), what ran (the tasks' journal), the
results and the saved details afterwards. See `resume_changes_factories` for the flows and the
child processes, and ``ferroflow.migrations`` for the policies.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

import resume_changes_factories as rc
from ferroflow import states
from ferroflow.persistence import backends

SUCCESS, PENDING, REVERTED = states.SUCCESS, states.PENDING, states.REVERTED
KILLED = -9
CHILD = os.path.abspath(rc.__file__)
TESTS = os.path.dirname(CHILD)


class Flow:
    """One saved flow, driven through child processes."""

    def __init__(self, workdir: pathlib.Path, store: Any) -> None:
        self.workdir = workdir
        #: The durable backend (`store_cases.StoreCase`) and the store's URI.
        self.store = store
        self.db = store.uri(workdir)
        self.uuid = ""
        self.output = ""

    def _child(self, *args: str) -> int:
        done = subprocess.run([sys.executable, CHILD, *args], capture_output=True, text=True, timeout=120)
        self.output = done.stdout + done.stderr
        return done.returncode

    def start(self, shape: str, kill: str | None = None, **options: Any) -> int:
        """Deploys ``shape`` and starts a new flow; ``kill`` names the atom that SIGKILLs it."""
        rc.deploy(self.workdir, shape)
        rc.configure(self.workdir, 1, kill=[kill] if kill else [])
        status = self._child("start", str(self.db), str(self.workdir), json.dumps(options))
        self.uuid = (self.workdir / rc.FLOW_UUID).read_text()
        if kill:
            assert status == KILLED, self.output
        return status

    def resume(self, generation: int = 2, behaviour: dict[str, Any] | None = None, **options: Any) -> int:
        rc.configure(self.workdir, generation, **(behaviour or {}))
        (self.workdir / rc.PLAN).unlink(missing_ok=True)
        return self._child("resume", str(self.db), str(self.workdir), self.uuid, json.dumps(options))

    def rewind(self, to: str, generation: int = 2, behaviour: dict[str, Any] | None = None, **options: Any) -> int:
        rc.configure(self.workdir, generation, **(behaviour or {}))
        (self.workdir / rc.PLAN).unlink(missing_ok=True)
        return self._child("rewind", str(self.db), str(self.workdir), self.uuid, to, json.dumps(options))

    def journal(self) -> list[str]:
        return rc.take_journal(self.workdir)

    def plan(self) -> dict[str, tuple[str, str]]:
        """``{name: (action, reason)}`` of the plan the last child wrote before running."""
        entries = json.loads((self.workdir / rc.PLAN).read_text())
        return {entry["name"]: (entry["action"], entry["reason"]) for entry in entries}

    def plan_entries(self) -> list[dict[str, Any]]:
        return json.loads((self.workdir / rc.PLAN).read_text())

    def actions(self) -> dict[str, str]:
        return {name: action for name, (action, _) in self.plan().items()}

    def connection(self) -> contextlib.AbstractContextManager[Any]:
        return self.store.connection(self.db)

    def backend(self) -> Any:
        return backends.fetch(self.db)

    def saved(self) -> Any:
        with self.connection() as conn:
            return conn.get_flow_details(self.uuid)

    def details(self) -> dict[str, Any]:
        """Saved details by name, retired ones (replaced by a migration) left out."""
        return {ad.name: ad for ad in self.saved() if not ad.name.startswith("_") and "ferroflow" not in ad.meta}

    def states(self) -> dict[str, tuple[str, str]]:
        return {name: (ad.state, ad.intention) for name, ad in self.details().items()}

    def results(self) -> dict[str, Any]:
        return {name: ad.results for name, ad in self.details().items()}

    def versions(self) -> dict[str, Any]:
        return {name: ad.version for name, ad in self.details().items()}


@pytest.fixture
def flow(tmp_path: pathlib.Path, durable_backend: Any) -> Flow:
    return Flow(tmp_path, durable_backend)


def done(names: str) -> dict[str, tuple[str, str]]:
    return {name: (SUCCESS, states.EXECUTE) for name in names}


# -- the six scenarios of TaskFlow's resumption docs -------------------------------------------


def test_same_atoms_resume_where_the_killed_run_stopped(flow: Flow) -> None:
    flow.start("abc", kill="b")
    assert flow.journal() == ["execute a", "execute b a=a@1"]

    assert flow.resume() == 0, flow.output
    assert flow.actions() == {"a": "reuse", "b": "rerun", "c": "run"}
    assert "RUNNING when its engine stopped" in flow.plan()["b"][1]
    assert flow.journal() == ["execute b a=a@1", "execute c b=b@2"]
    assert flow.states() == done("abc")
    assert flow.results() == {"a": "a@1", "b": "b@2", "c": "c@2"}


def test_atom_added_runs_and_the_rest_is_reused(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abcd")

    assert flow.resume() == 0, flow.output
    assert flow.actions() == {"a": "reuse", "b": "reuse", "c": "rerun", "d": "run"}
    assert flow.plan()["d"][1] == "new atom: no saved detail"
    assert flow.journal() == ["execute c b=b@1", "execute d c=c@2"]
    assert flow.states() == done("abcd")
    assert flow.results() == {"a": "a@1", "b": "b@1", "c": "c@2", "d": "d@2"}


def test_atom_removed_is_kept_as_an_orphan_and_not_run(flow: Flow) -> None:
    flow.start("abcd", kill="d")
    flow.journal()
    rc.deploy(flow.workdir, "acd")  # b removed; c now takes a's result

    assert flow.resume() == 0, flow.output
    assert flow.actions() == {"a": "reuse", "c": "reuse", "d": "rerun", "b": "orphan"}
    assert "reverted through resume_changes_factories.Step if the flow rolls back" in flow.plan()["b"][1]
    assert flow.journal() == ["execute d c=c@1"]
    saved = flow.saved()
    assert saved.state == SUCCESS
    # The orphan's detail is kept untouched.
    assert flow.states() == done("abcd")
    assert flow.results()["b"] == "b@1"


def test_atom_code_changed_keeps_the_saved_result_by_default_and_says_so(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abc", versions={"b": "2.0"})

    assert flow.resume() == 0, flow.output
    action, reason = flow.plan()["b"]
    assert action == "reuse"
    assert reason == "version changed 1.0 → 2.0: saved result reused (on_version_change=reuse)"
    assert flow.journal() == ["execute c b=b@1"]
    assert flow.results() == {"a": "a@1", "b": "b@1", "c": "c@2"}
    assert flow.versions()["b"] == "1.0", "the saved result still comes from version 1.0"


def test_atom_split_carries_the_result_over_with_a_migration(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "split")

    assert flow.resume(migrations="split_b") == 0, flow.output
    # Planned before the migration is applied: its effect is shown.
    assert flow.actions() == {"a": "reuse", "b1": "migrate", "b2": "migrate", "c": "rerun", "b": "orphan"}
    assert flow.plan()["b"][1] == "replaced by Split(b → b1, b2) (not applied yet): kept, never reverted itself"
    assert flow.journal() == ["split b@1", "execute c b2=b@1/2"]
    assert flow.results() == {"a": "a@1", "b1": "b@1/1", "b2": "b@1/2", "c": "c@2"}
    old_b = next(ad for ad in flow.saved() if ad.name == "b")
    assert (old_b.state, old_b.results) == (SUCCESS, "b@1"), "the replaced detail is kept as it was"
    record = flow.saved().meta["migrations"]
    assert [(r["id"], r["results"], r["factory"]) for r in record] == [
        ("split:b>b1,b2", "carried over", "resume_changes_factories.make")
    ]
    assert record[0]["applied_at"]


def test_atoms_merged_carry_their_results_over_with_a_migration(flow: Flow) -> None:
    flow.start("xy", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "merged")

    assert flow.resume(migrations="merge_xy") == 0, flow.output
    assert flow.actions() == {"a": "reuse", "xy": "migrate", "c": "rerun", "x": "orphan", "y": "orphan"}
    assert flow.journal() == ["execute c xy=x@1+y@1"]
    assert flow.results() == {"a": "a@1", "xy": "x@1+y@1", "c": "c@2"}


def test_flow_structure_changed_the_new_graph_drives_the_run(flow: Flow) -> None:
    flow.start("provider_v1", kill="c")
    assert flow.journal() == ["execute a", "execute b v=a@1", "execute c w=b@1"]
    # Linear → graph, b moved into a subflow, and its input v now comes from a new atom a2.
    rc.deploy(flow.workdir, "provider_v2")

    assert flow.resume() == 0, flow.output
    assert flow.actions() == {"a": "reuse", "a2": "run", "b": "reuse", "c": "rerun"}
    assert flow.plan()["b"][1] == (
        "inputs now come from other providers (v: a → a2): result kept (provider_change=keep)"
    )
    assert flow.journal() == ["execute a2 u=a@1", "execute c w=b@1"]
    assert flow.states() == done(["a", "a2", "b", "c"])


# -- 1. versions ---------------------------------------------------------------------------------


def test_version_rerun_runs_the_atom_again_and_records_the_new_version(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abc", versions={"b": "2.0"})

    assert flow.resume(on_version_change="rerun") == 0, flow.output
    assert flow.actions() == {"a": "reuse", "b": "rerun", "c": "rerun"}
    assert flow.journal() == ["execute b a=a@1", "execute c b=b@2"]
    assert flow.results() == {"a": "a@1", "b": "b@2", "c": "c@2"}
    assert flow.versions() == {"a": "1.0", "b": "2.0", "c": "1.0"}


def test_version_revert_then_rerun_reverts_with_the_saved_result_first(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abc", versions={"b": "2.0"})

    assert flow.resume(on_version_change="revert_then_rerun") == 0, flow.output
    assert flow.plan_entries()[0]["name"] == "b", "the pending revert comes first in the plan"
    assert flow.actions()["b"] == "revert"
    assert flow.journal() == ["revert b", "execute b a=a@1", "execute c b=b@2"]
    assert flow.states() == done("abc")
    assert flow.versions()["b"] == "2.0"
    assert "pending_reverts" not in flow.saved().meta, "the record is removed once done"


def test_version_fail_refuses_to_run_and_names_the_atom_and_versions(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    before = flow.states()
    rc.deploy(flow.workdir, "abc", versions={"b": "2.0"})

    assert flow.resume(on_version_change="fail") == 1
    assert "raised VersionMismatch" in flow.output
    assert "Atom 'b' completed under version 1.0 but its code is now version 2.0" in flow.output
    assert flow.actions()["b"] == "fail"
    assert flow.journal() == []
    assert flow.states() == before


def test_version_migrate_callable_replaces_the_saved_result(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abc", versions={"b": "2.0"})

    assert flow.resume(on_version_change="migrate") == 0, flow.output
    assert flow.actions()["b"] == "migrate"
    assert flow.journal() == ["execute c b=b@1~1.0"]
    assert flow.results()["b"] == "b@1~1.0"
    assert flow.versions()["b"] == "2.0", "saved with the version it now matches"


def test_a_policy_set_on_the_atom_wins_over_the_load(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abc", versions={"a": "2.0", "b": "2.0"}, policies={"b": "rerun"})

    assert flow.resume(on_version_change="reuse") == 0, flow.output
    assert flow.actions() == {"a": "reuse", "b": "rerun", "c": "rerun"}
    assert flow.journal() == ["execute b a=a@1", "execute c b=b@2"]


# -- 2. declarative migrations -------------------------------------------------------------------


def test_rename_moves_the_saved_detail_to_the_new_name(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "renamed")

    assert flow.resume(migrations="rename_b") == 0, flow.output
    assert flow.actions() == {"a": "reuse", "b2": "migrate", "c": "rerun"}
    assert flow.plan()["b2"][1] == "Rename(b → b2) (not applied yet): its saved detail (SUCCESS) carries over"
    assert flow.journal() == ["execute c b2=b@1"]
    assert flow.results() == {"a": "a@1", "b2": "b@1", "c": "c@2"}


def test_split_of_an_atom_that_had_not_finished_runs_the_new_atoms(flow: Flow) -> None:
    flow.start("abc", kill="b")
    flow.journal()
    rc.deploy(flow.workdir, "split")

    assert flow.resume(migrations="split_b") == 0, flow.output
    assert flow.actions() == {"a": "reuse", "b1": "run", "b2": "run", "c": "run", "b": "orphan"}
    assert flow.journal() == ["execute b1 a=a@1", "execute b2 b1=b1@2", "execute c b2=b2@2"]
    assert flow.saved().meta["migrations"][0]["results"] == "run again"


def test_the_plan_before_a_migration_shows_what_it_will_do(flow: Flow, monkeypatch) -> None:
    flow.start("abc", kill="c")
    rc.deploy(flow.workdir, "split")
    monkeypatch.chdir(flow.workdir)
    monkeypatch.setenv("RESUME_CHANGES_WORKDIR", str(flow.workdir))
    from ferroflow import engines, migrations

    with flow.connection() as conn:
        fd = conn.get_flow_details(flow.uuid)
    backend = flow.backend()
    try:
        engine = engines.load_from_detail(fd, backend=backend, migrations=rc.MIGRATIONS["split_b"])
        plan = engine.plan()
        assert plan.actions() == {"a": "reuse", "b1": "migrate", "b2": "migrate", "c": "rerun", "b": "orphan"}
        assert plan["b1"].reason == "Split(b → b1, b2) (not applied yet): its result is computed from the saved one"
        bad = engines.load_from_detail(fd, backend=backend, migrations=[migrations.Rename("zz", "b1")])
        with pytest.raises(migrations.MigrationError, match="'zz' has no saved detail"):
            bad.plan()
    finally:
        backend.close()
    assert flow.journal() == ["execute a", "execute b a=a@1", "execute c b=b@1"], "planning ran nothing"


@pytest.mark.parametrize(
    ("migration", "message"),
    [
        ("unknown", "'nope' has no saved detail in this flow (unknown name)"),
        ("taken", "'b2' already has a saved detail"),
        ("cycle", "cycle of renames: a → b2 → a"),
    ],
)
def test_inconsistent_migrations_are_refused_and_nothing_is_written(flow: Flow, migration: str, message: str) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    with flow.connection() as conn:
        before = [ad.to_dict() for ad in conn.get_atoms_for_flow(flow.uuid)]
    if migration == "taken":  # b2 already has a detail: rename b first, then try a -> b2
        rc.deploy(flow.workdir, "renamed")
        assert flow.resume(migrations="rename_b", behaviour={"kill": ["c"]}) == KILLED
        flow.journal()
        with flow.connection() as conn:
            before = [ad.to_dict() for ad in conn.get_atoms_for_flow(flow.uuid)]
    else:
        rc.deploy(flow.workdir, "renamed")

    assert flow.resume(migrations=migration) == 1
    assert "raised MigrationError" in flow.output and message in flow.output, flow.output
    assert flow.journal() == []
    with flow.connection() as conn:
        assert [ad.to_dict() for ad in conn.get_atoms_for_flow(flow.uuid)] == before
        assert len(conn.get_flow_details(flow.uuid).meta.get("migrations", [])) == (migration == "taken")


def test_migrations_given_with_a_new_flow_are_recorded_as_not_needed(flow: Flow) -> None:
    rc.deploy(flow.workdir, "renamed")
    assert flow.start("renamed", kill="c", migrations="rename_b") == KILLED
    assert flow.saved().meta["migrations"][0]["results"] == "not needed: the flow had no saved atoms"
    flow.journal()
    # The same program resumes with the same migrations: nothing to refuse, nothing applied.
    assert flow.resume(migrations="rename_b") == 0, flow.output
    assert flow.journal() == ["execute c b2=b2@1"]
    assert len(flow.saved().meta["migrations"]) == 1


# -- 3. orphans and rollback ---------------------------------------------------------------------


def test_a_rollback_reverts_a_completed_orphan_through_its_revert_reference(flow: Flow) -> None:
    flow.start("abcd", kill="d")
    flow.journal()
    rc.deploy(flow.workdir, "acd")

    assert flow.resume(behaviour={"fail": ["d"]}) == 1
    assert "raised" in flow.output and "d failed" in flow.output, flow.output
    # The current atoms are reverted latest first, then the orphan, rebuilt from its saved class
    # and constructor arguments (it journals into the same work directory).
    assert flow.journal() == ["execute d c=c@1", "revert d", "revert c", "revert a", "revert b"]
    saved = flow.saved()
    assert saved.state == REVERTED
    orphan = next(ad for ad in saved if ad.name == "b")
    assert (orphan.state, orphan.intention) == (REVERTED, states.REVERT)


def test_an_orphan_whose_class_cannot_be_imported_stops_the_rollback_naming_it(flow: Flow) -> None:
    (flow.workdir / "gone_steps.py").write_text(rc.GONE_MODULE)
    flow.start("with_gone", kill="c")
    assert flow.journal() == ["execute a", "execute g", "execute c a=a@1"]
    (flow.workdir / "gone_steps.py").unlink()  # the new code no longer has GoneStep
    rc.deploy(flow.workdir, "without_gone")

    assert flow.resume(behaviour={"fail": ["c"]}) == 1
    assert "raised OrphanRevertError Cannot revert orphan 'g'" in flow.output, flow.output
    assert "gone_steps.GoneStep" in flow.output and "cannot be imported" in flow.output
    # The plan said so before anything ran (importing trusted modules only, calling nothing).
    action, reason = flow.plan()["g"]
    assert action == "orphan" and "cannot be reverted" in reason and "gone_steps.GoneStep" in reason, reason
    assert "reverted through" not in reason
    assert flow.journal() == ["execute c a=a@1", "revert c", "revert a"]
    saved = flow.saved()
    assert saved.state == states.FAILURE, "not REVERTED: the orphan was not undone"
    orphan = next(ad for ad in saved if ad.name == "g")
    assert orphan.state == states.REVERT_FAILURE, "saved as a failed revert: show and plan report it"
    assert "Cannot revert orphan 'g'" in orphan.revert_failure.exception_str
    assert orphan.results == "g@1", "its result is kept for the next try"

    # Its module is back (and trusted: it is no longer the package of an atom of the flow): a
    # later rollback tries the orphan again and finishes.
    (flow.workdir / "gone_steps.py").write_text(rc.GONE_MODULE)
    assert flow.resume(generation=3, trusted_modules="resume_changes_factories,gone_steps") == 1, flow.output
    assert "revert failed (REVERT_FAILURE): a rollback tries it again" in flow.plan()["g"][1]
    assert flow.journal() == ["revert g"]
    saved = flow.saved()
    assert (saved.state, next(ad for ad in saved if ad.name == "g").state) == (REVERTED, REVERTED)


# -- 4. structure changes ------------------------------------------------------------------------


def test_provider_change_rerun_runs_the_atom_whose_inputs_moved(flow: Flow) -> None:
    flow.start("provider_v1", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "provider_v2")

    assert flow.resume(provider_change="rerun") == 0, flow.output
    assert flow.actions() == {"a": "reuse", "a2": "run", "b": "rerun", "c": "rerun"}
    assert flow.journal() == ["execute a2 u=a@1", "execute b v=a2@2", "execute c w=b@2"]
    assert flow.results()["b"] == "b@2"


def test_a_renamed_provider_is_not_reported_as_a_provider_change(flow: Flow) -> None:
    flow.start("abcd", kill="d")
    flow.journal()
    rc.deploy(flow.workdir, "renamed_keeps_output")
    assert flow.resume(migrations="rename_b", provider_change="rerun") == 0, flow.output
    # c took "b" from atom b and now takes it from b2: the same atom under a new name.
    assert flow.actions() == {"a": "reuse", "b2": "migrate", "c": "reuse", "d": "rerun"}
    assert flow.journal() == ["execute d c=c@1"]


# -- 5. the plan ---------------------------------------------------------------------------------


def _snapshot(flow: Flow) -> tuple:
    return flow.store.snapshot(flow.db, flow.uuid)


def test_plan_writes_nothing_and_runs_nothing(flow: Flow, monkeypatch) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abcd", versions={"b": "2.0"})
    before = _snapshot(flow)
    from ferroflow import engines

    with flow.connection() as conn:
        fd = conn.get_flow_details(flow.uuid)
    backend = flow.backend()
    try:
        plan = engines.load_from_detail(fd, backend=backend, on_version_change="rerun").plan()
    finally:
        backend.close()
    assert [(e.name, e.saved_state, e.saved_version, e.version, e.action) for e in plan] == [
        ("a", SUCCESS, "1.0", "1.0", "reuse"),
        ("b", SUCCESS, "1.0", "2.0", "rerun"),
        ("c", states.RUNNING, "1.0", "1.0", "rerun"),
        ("d", None, None, "1.0", "run"),
    ]
    assert plan.counts() == {"reuse": 1, "rerun": 2, "run": 1}
    assert _snapshot(flow) == before
    assert flow.journal() == []


def _cli(flow: Flow, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RESUME_CHANGES_WORKDIR": str(flow.workdir)}
    return subprocess.run(
        [sys.executable, "-m", "ferroflow", "plan", *args, "--db", str(flow.db)],
        capture_output=True,
        text=True,
        cwd=TESTS,
        env=env,
        timeout=120,
    )


def test_cli_plan_prints_a_table_and_json(tmp_path: pathlib.Path, sqlite_store: Any) -> None:
    flow = Flow(tmp_path, sqlite_store)  # the command line takes a SQLite database only
    flow.start("abc", kill="c")
    rc.deploy(flow.workdir, "acd")

    table = _cli(flow, flow.uuid[:8])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"flow {flow.uuid} (chain): 1 orphan, 1 rerun, 1 reuse, 1 run"
    assert lines[2].split() == ["NAME", "SAVED", "STATE", "SAVED", "VERSION", "VERSION", "ACTION", "REASON"]
    assert lines[3].split()[:5] == ["a", "SUCCESS", "1.0", "1.0", "reuse"]
    assert lines[-1].split()[:5] == ["b", "SUCCESS", "1.0", "-", "orphan"]

    as_json = _cli(flow, "--json")  # the one unfinished flow
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["flow_uuid"] == flow.uuid
    assert [(e["name"], e["action"]) for e in data["entries"]] == [
        ("a", "reuse"),
        ("c", "rerun"),
        ("d", "run"),
        ("b", "orphan"),
    ]
    assert set(data["entries"][0]) == {"name", "saved_state", "saved_version", "version", "action", "reason"}
    missing = _cli(flow, "nothing-like-this")
    assert missing.returncode == 2 and "no flow 'nothing-like-this'" in missing.stderr


# -- 6. rewind -----------------------------------------------------------------------------------


def test_rewind_reverts_the_later_atoms_then_runs_them_with_the_current_code(flow: Flow) -> None:
    flow.start("abcd")
    assert flow.journal() == ["execute a", "execute b a=a@1", "execute c b=b@1", "execute d c=c@1"]
    rc.deploy(flow.workdir, "abcd", versions={"c": "2.0"})

    assert flow.rewind("b") == 0, flow.output
    entries = flow.plan_entries()
    assert [(e["name"], e["action"]) for e in entries] == [
        ("d", "revert"),
        ("c", "revert"),
        ("a", "reuse"),
        ("b", "reuse"),
    ]
    assert entries[0]["reason"] == "rewind to b: reverted with its saved result, then run again"
    assert flow.journal() == ["revert d", "revert c", "execute c b=b@1", "execute d c=c@2"]
    assert flow.states() == done("abcd")
    assert flow.results() == {"a": "a@1", "b": "b@1", "c": "c@2", "d": "d@2"}
    assert flow.versions()["c"] == "2.0"
    assert "pending_reverts" not in flow.saved().meta


# -- crashes -------------------------------------------------------------------------------------


def test_a_kill_while_migrations_are_applied_applies_them_exactly_once(flow: Flow) -> None:
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "split")

    # Killed inside the split function: nothing of the migration is written.
    assert flow.resume(migrations="split_b", behaviour={"kill_in_migration": True}) == KILLED
    assert flow.journal() == ["split b@1"]
    assert "migrations" not in flow.saved().meta
    assert set(flow.details()) == {"a", "b", "c"}

    # Applied, then killed by c before the flow finishes.
    assert flow.resume(migrations="split_b", behaviour={"kill": ["c"]}) == KILLED
    assert flow.journal() == ["split b@1", "execute c b2=b@1/2"]

    # The next resume finds the migration recorded: not applied again, the flow finishes.
    assert flow.resume(migrations="split_b", generation=3) == 0, flow.output
    assert flow.journal() == ["execute c b2=b@1/2"]
    assert flow.actions() == {"a": "reuse", "b1": "reuse", "b2": "reuse", "c": "rerun", "b": "orphan"}
    names = sorted(ad.name for ad in flow.saved() if not ad.name.startswith("_"))
    assert names == ["a", "b", "b1", "b2", "c"], "no detail created twice"
    assert [r["id"] for r in flow.saved().meta["migrations"]] == ["split:b>b1,b2"]
    assert flow.results() == {"a": "a@1", "b1": "b@1/1", "b2": "b@1/2", "c": "c@3"}


@pytest.mark.parametrize("where", ["after_revert", "inside_revert"])
def test_a_kill_during_a_rewind_finishes_it_on_resume_reverting_nothing_twice(flow: Flow, where: str) -> None:
    flow.start("abcd")
    flow.journal()
    # Killed once c's revert is saved, or inside c's revert (it never completed).
    killing = {"kill_after_revert": "c"} if where == "after_revert" else {"revert_kill": ["c"]}
    assert flow.rewind("a", behaviour=killing) == KILLED
    assert flow.journal() == ["revert d", "revert c"]
    pending = flow.saved().meta["pending_reverts"]
    assert (pending["reason"], pending["revert"]) == ("rewind to a", ["d", "c", "b"])
    expected_c = REVERTED if where == "after_revert" else states.REVERTING
    assert flow.states()["c"][0] == expected_c and flow.states()["d"][0] == REVERTED

    # A plain resume finishes the rewind first: the plan shows what is left, reverts first.
    assert flow.resume(generation=3) == 0, flow.output
    assert [(e["name"], e["action"]) for e in flow.plan_entries()][:3] == (
        [("d", "rerun"), ("c", "rerun"), ("b", "revert")]
        if where == "after_revert"
        else [("d", "rerun"), ("c", "revert"), ("b", "revert")]
    )
    again = ["revert c"] if where == "inside_revert" else []  # an interrupted revert runs again
    assert flow.journal() == [*again, "revert b", "execute b a=a@1", "execute c b=b@3", "execute d c=c@3"]
    assert flow.states() == done("abcd")
    assert "pending_reverts" not in flow.saved().meta


# -- other backends, options -----------------------------------------------------------------------


def _suspend_after(engine: Any, atom_name: str) -> None:
    def on_success(event_type: str, details: dict[str, Any]) -> None:
        if details.get("task_name") == atom_name:
            engine.suspend()

    engine.atom_notifier.register(SUCCESS, on_success)


def _migrate_then_roll_back_an_orphan(backend: Any, workdir: str, monkeypatch) -> str:
    """In this process: a flow split by a migration, then rolled back with a completed atom (c)
    removed: c is reverted through its revert reference. Returns the flow detail's uuid."""
    from ferroflow import engines

    monkeypatch.setenv("RESUME_CHANGES_WORKDIR", workdir)
    rc.deploy(workdir, "abcd")
    rc.configure(workdir, 1)
    engine = engines.load_from_factory(rc.make, factory_kwargs={"workdir": workdir}, backend=backend)
    _suspend_after(engine, "c")
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert rc.take_journal(workdir) == ["execute a", "execute b a=a@1", "execute c b=b@1"]

    rc.deploy(workdir, "split")  # b split in two; d dropped (never ran)
    fd = backend.get_connection().get_flow_details(flow_uuid)
    resumed = engines.load_from_detail(fd, backend=backend, migrations=rc.MIGRATIONS["split_b"])
    assert resumed.plan().actions() == {
        "a": "reuse",
        "b1": "migrate",
        "b2": "migrate",
        "c": "reuse",
        "b": "orphan",
        "d": "orphan",
    }
    rc.configure(workdir, 2, fail=["c"])
    resumed.run()
    assert rc.take_journal(workdir) == ["split b@1"]
    assert resumed.orphans() == ["d"], "b was replaced by the split: not an orphan"
    saved = {ad.name: ad for ad in backend.get_connection().get_flow_details(flow_uuid)}
    assert (saved["b1"].results, saved["b2"].results) == ("b@1/1", "b@1/2")

    # c is removed too and the flow rolls back: c completed, and its resume record says how to
    # revert it.
    monkeypatch.setitem(rc.SHAPES, "split", ["a", "b1", "b2", "e"])
    fd = backend.get_connection().get_flow_details(flow_uuid)
    failing = engines.load_from_detail(fd, backend=backend)
    rc.configure(workdir, 3, fail=["e"])
    with pytest.raises(rc.Boom, match="e failed"):
        failing.run()
    assert rc.take_journal(workdir) == [
        "execute e b2=b@1/2",
        "revert e",
        "revert b2",
        "revert b1",
        "revert a",
        "revert c",
    ]
    saved = {ad.name: ad for ad in backend.get_connection().get_flow_details(flow_uuid)}
    assert saved["c"].state == REVERTED
    assert failing.storage.get_flow_state() == REVERTED
    return flow_uuid


def test_migrations_and_orphan_reverts_in_process(flow: Flow, monkeypatch) -> None:
    """Resume records are kept by every backend (the durable ones here, in one process)."""
    backend = flow.backend()
    try:
        _migrate_then_roll_back_an_orphan(backend, str(flow.workdir), monkeypatch)
    finally:
        backend.close()


def test_migrations_and_orphan_reverts_on_memory(tmp_path, monkeypatch) -> None:
    """memory:// keeps resume records too; an orphan whose record is gone (a detail saved by
    TaskFlow, or by a backend that keeps none) stops the rollback with an error naming it."""
    from ferroflow import engines, exceptions, migrations
    from ferroflow.persistence import base

    backend = backends.fetch("memory://")
    workdir = str(tmp_path)
    flow_uuid = _migrate_then_roll_back_an_orphan(backend, workdir, monkeypatch)

    # Run again from scratch (a reverted flow restarts) up to b2, then lose the resume records.
    rc.deploy(workdir, "split")
    rc.configure(workdir, 4)
    monkeypatch.setitem(rc.SHAPES, "split", ["a", "b1", "b2", "e"])
    again = engines.load_from_detail(backend.get_connection().get_flow_details(flow_uuid), backend=backend)
    _suspend_after(again, "b2")
    again.run()
    assert rc.take_journal(workdir) == ["execute a", "execute b1 a=a@4", "execute b2 b1=b1@4"]
    for extras in backend._extras.values():  # (what memory:// keeps beside TaskFlow's records)
        extras.pop(base.RESUME, None)
    monkeypatch.setitem(rc.SHAPES, "split", ["a", "b2", "e"])  # b1 removed: an orphan, with no record
    failing = engines.load_from_detail(backend.get_connection().get_flow_details(flow_uuid), backend=backend)
    rc.configure(workdir, 5, fail=["e"])
    with pytest.raises(migrations.OrphanRevertError, match=r"Cannot revert orphan 'b1'.*no revert reference"):
        failing.run()
    assert rc.take_journal(workdir) == ["execute e b2=b2@4", "revert e", "revert b2", "revert a"]
    assert failing.storage.get_flow_state() == states.FAILURE
    assert isinstance(migrations.OrphanRevertError("x", "y"), exceptions.ExecutionFailure)


def test_bad_resume_options_fail_at_load_time(flow: Flow) -> None:
    from ferroflow import engines
    from ferroflow.patterns import linear_flow

    one = linear_flow.Flow("one").add(rc.Step("a", str(flow.workdir)))
    with pytest.raises(ValueError, match="Unknown on_version_change 'rerunn'"):
        engines.load(one, on_version_change="rerunn")
    with pytest.raises(ValueError, match="Unknown provider_change 'always'"):
        engines.load(one, provider_change="always")
    with pytest.raises(TypeError, match="is not a migration"):
        engines.load(one, migrations=[("b", "b2")])
    with pytest.raises(ValueError, match="for atom 'a'"):
        step = rc.Step("a", str(flow.workdir), on_version_change="sometimes")
        engines.load(linear_flow.Flow("one").add(step)).plan()


def test_on_version_change_is_a_keyword_only_argument_of_atoms(flow: Flow) -> None:
    import inspect

    from ferroflow import retry, task

    for cls in (task.Task, retry.Retry):
        parameter = inspect.signature(cls.__init__).parameters["on_version_change"]
        assert (parameter.kind, parameter.default) == (inspect.Parameter.KEYWORD_ONLY, None), cls
    step = rc.Step("a", str(flow.workdir), on_version_change="rerun")
    assert step.on_version_change == "rerun"
    assert rc.Step("b", str(flow.workdir)).on_version_change is None


# -- issue 13: defects found resuming changed code -------------------------------------------------


def chain_spec(*atoms: tuple[str, list[str]], kind: str = "linear", **extra: dict[str, Any]) -> dict[str, Any]:
    """A flow spec (`rc._from_spec`): ``(name, requires)`` pairs, each providing its own name,
    ``extra`` adding fields to an atom by name."""
    return {
        "kind": kind,
        "atoms": [{"name": name, "requires": requires, **extra.get(name, {})} for name, requires in atoms],
    }


#: a → b → c → d where d needs b's result too (so running it before b gives a NotFound).
ABCD_D_NEEDS_B = chain_spec(("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["b", "c"]))


@pytest.mark.parametrize("change", ["version_rerun", "provider_rerun", "split_without_function"])
def test_atoms_run_again_before_the_unfinished_atoms_after_a_kept_one(flow: Flow, change: str) -> None:
    """Defect 1: in a → b → c → d with c kept and d still to run, the atoms run again upstream of
    c run first, then d (the order the plan gives, the graph's), never d first."""
    if change == "provider_rerun":  # a provides v; b needs v and provides w; c and d need w
        before = chain_spec(("a", []), ("b", ["v"]), ("c", ["w"]), ("d", ["c", "w"]), a={"provides": "v"})
        before["atoms"][1]["provides"] = "w"
        rc.deploy(flow.workdir, before)
    else:
        rc.deploy(flow.workdir, ABCD_D_NEEDS_B)
    rc.configure(flow.workdir, 1, kill=["d"])
    assert flow._child("start", str(flow.db), str(flow.workdir), "{}") == KILLED, flow.output
    flow.uuid = (flow.workdir / rc.FLOW_UUID).read_text()
    flow.journal()

    if change == "version_rerun":
        rc.deploy(flow.workdir, ABCD_D_NEEDS_B, versions={"a": "2.0", "b": "2.0"})
        assert flow.resume(on_version_change="rerun") == 0, flow.output
        assert flow.actions() == {"a": "rerun", "b": "rerun", "c": "reuse", "d": "rerun"}
        assert flow.journal() == ["execute a", "execute b a=a@2", "execute d b=b@2 c=c@1"]
    elif change == "provider_rerun":  # v now comes from a new atom a2 (a graph now)
        after = chain_spec(
            ("a", []), ("a2", ["u"]), ("b", ["v"]), ("c", ["w"]), ("d", ["c", "w"]),
            kind="graph", a={"provides": "u"}, a2={"provides": "v"}, b={"provides": "w"},
        )  # fmt: skip
        rc.deploy(flow.workdir, after)
        assert flow.resume(provider_change="rerun") == 0, flow.output
        assert flow.actions() == {"a": "reuse", "a2": "run", "b": "rerun", "c": "reuse", "d": "rerun"}
        assert flow.journal() == ["execute a2 u=a@1", "execute b v=a2@2", "execute d c=c@1 w=b@2"]
    else:  # b split in two, without a function: b1 and b2 run
        split = chain_spec(("a", []), ("b1", ["a"]), ("b2", ["b1"]), ("c", ["b2"]), ("d", ["b2", "c"]))
        rc.deploy(flow.workdir, split)
        assert flow.resume(migrations=[["split", "b", ["b1", "b2"]]]) == 0, flow.output
        assert flow.actions() == {"a": "reuse", "b1": "run", "b2": "run", "c": "reuse", "d": "rerun", "b": "orphan"}
        assert flow.journal() == ["execute b1 a=a@1", "execute b2 b1=b1@2", "execute d b2=b2@2 c=c@1"]
    planned = [e["name"] for e in flow.plan_entries() if e["action"] in ("run", "rerun")]
    ran = [line.split()[1] for line in rc.take_journal(flow.workdir)] or planned
    assert ran == planned, "the plan lists them in the order they run"
    assert flow.saved().state == SUCCESS
    assert {name: state for name, (state, _) in flow.states().items()} == dict.fromkeys(flow.states(), SUCCESS)


#: a → b → c where b now provides its result's items "b" and "extra" (a dict) instead of a string.
B_PROVIDES_ITEMS = chain_spec(
    ("a", []), ("b", ["a"]), ("c", ["b"]), b={"provides": ["b", "extra"], "provides_set": True}
)


def test_a_saved_result_that_no_longer_fits_its_provides_is_refused_before_anything_is_written(flow: Flow) -> None:
    """Defect 2 (default policy): the plan says so, and the resume refuses, store untouched."""
    flow.start("abc", kill="c")
    flow.journal()
    before = _snapshot(flow)
    rc.deploy(flow.workdir, B_PROVIDES_ITEMS)

    assert flow.resume() == 1
    assert "raised ProvidesMismatch Atom 'b'" in flow.output, flow.output
    assert "the saved result, a str, has no item " in flow.output
    assert "no item 'b' for 'b'" in flow.output and "no item 'extra' for 'extra'" in flow.output
    assert "on_version_change='rerun'" in flow.output and "Nothing was written" in flow.output
    action, reason = flow.plan()["b"]
    assert action == "fail" and "no longer fits what it provides" in reason, reason
    assert flow.journal() == []
    # The flow, its atoms and their resume records are untouched (the dead owner's lease was taken
    # over, then given up).
    assert _snapshot(flow)[:3] == before[:3]

    # A migrate callable that keeps a result of the old shape is refused the same way.
    assert flow.resume(on_version_change="migrate") == 1
    assert "raised MigrationError" in flow.output and "does not fit what it provides" in flow.output, flow.output
    assert flow.actions()["b"] == "migrate"
    assert _snapshot(flow)[:3] == before[:3]


def test_a_saved_result_that_no_longer_fits_its_provides_runs_again_under_a_rerun_policy(flow: Flow) -> None:
    """Defect 2 (policy rerun): the plan reruns b, the run does it, and c gets the new items."""
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, B_PROVIDES_ITEMS)

    assert flow.resume(on_version_change="rerun") == 0, flow.output
    action, reason = flow.plan()["b"]
    assert (action, flow.plan()["c"][0]) == ("rerun", "rerun")
    assert "no longer fits what it provides" in reason and "runs again (on_version_change=rerun)" in reason
    assert flow.journal() == ["execute b a=a@1", "execute c b=b@2"]
    assert flow.results()["b"] == {"b": "b@2", "extra": "extra@2"}
    assert flow.saved().state == SUCCESS


def test_a_class_level_version_is_the_atoms_version(flow: Flow) -> None:
    """Defect 4: ``class StepV2(Step): version = (2, 0)`` is what its atoms record and compare."""
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "abc", classes={"b": "StepV2"})

    assert flow.resume(on_version_change="rerun") == 0, flow.output
    assert flow.plan()["b"] == ("rerun", "version changed 1.0 → 2.0: runs again (on_version_change=rerun)")
    assert flow.journal() == ["execute b a=a@1", "execute c b=b@2"]
    assert flow.versions() == {"a": "1.0", "b": "2.0", "c": "1.0"}
    assert rc.StepV2("x", str(flow.workdir)).version == (2, 0) and rc.Step("y", str(flow.workdir)).version == (1, 0)


def test_misspelled_options_and_uri_keys_are_refused_naming_the_closest_valid_one(flow: Flow) -> None:
    """Defect 5: a typo in an option (``migratons=``) would silently run a renamed atom again."""
    flow.start("abc", kill="c")
    flow.journal()
    rc.deploy(flow.workdir, "renamed")
    before = _snapshot(flow)

    assert flow.resume(on_versoin_change="rerun", migratons="rename_b") == 1
    assert "raised ValueError Unknown engine options 'on_versoin_change' (did you mean 'on_version_change'?)" in (
        flow.output
    ), flow.output
    assert "'migratons' (did you mean 'migrations'?)" in flow.output
    typo_uri = f"{flow.db}?durabilty=fsync"
    done = subprocess.run(
        [sys.executable, CHILD, "resume", typo_uri, str(flow.workdir), flow.uuid, "{}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Unknown conf key 'durabilty' (did you mean 'durability'?)" in done.stderr, done.stderr
    assert flow.journal() == []
    assert _snapshot(flow)[:3] == before[:3]
    # TaskFlow's documented options stay accepted (a TaskFlow program must not break).
    assert flow.resume(migrations="rename_b", never_resolve=False, inject_transient=True) == 0, flow.output
    assert flow.journal() == ["execute c b2=b@1"]


def _ferroflow(flow: Flow, *args: str) -> subprocess.CompletedProcess:
    """The real ``ferroflow`` command (``python -m ferroflow``) on the flow's SQLite store."""
    env = {**os.environ, "RESUME_CHANGES_WORKDIR": str(flow.workdir)}
    return subprocess.run(
        [sys.executable, "-m", "ferroflow", *args, "--db", str(flow.db)],
        capture_output=True,
        text=True,
        cwd=TESTS,
        env=env,
        timeout=120,
    )


def test_the_command_line_reports_an_orphan_it_cannot_revert(tmp_path: pathlib.Path, sqlite_store: Any) -> None:
    """Defect 3: plan says the orphan cannot be reverted, resume says the rollback stopped on it,
    show lists it REVERT_FAILURE (the command line takes a SQLite database only)."""
    flow = Flow(tmp_path, sqlite_store)
    (flow.workdir / "gone_steps.py").write_text(rc.GONE_MODULE)
    flow.start("with_gone", kill="c")
    (flow.workdir / "gone_steps.py").unlink()
    rc.deploy(flow.workdir, "without_gone")
    rc.configure(flow.workdir, 2, fail=["c"])

    plan = _ferroflow(flow, "plan", flow.uuid, "--json")
    assert plan.returncode == 0, plan.stderr
    orphan = next(e for e in json.loads(plan.stdout)["entries"] if e["name"] == "g")
    assert orphan["action"] == "orphan" and "cannot be reverted" in orphan["reason"], orphan
    assert "'gone_steps.GoneStep'" in orphan["reason"] and "OrphanRevertError" in orphan["reason"]

    resumed = _ferroflow(flow, "resume", flow.uuid, "--no-progress")
    assert resumed.returncode == 1, resumed.stderr
    assert "the rollback stopped: OrphanRevertError: Cannot revert orphan 'g'" in resumed.stderr, resumed.stderr
    assert "saved REVERT_FAILURE" in resumed.stderr and "atom 'c' failed" in resumed.stderr

    shown = _ferroflow(flow, "show", flow.uuid)
    assert shown.returncode == 0, shown.stderr
    row = next(line.split() for line in shown.stdout.splitlines() if line.startswith("g "))
    assert row[1:3] == ["REVERT_FAILURE", "REVERT"], shown.stdout
    assert flow.journal()[-2:] == ["revert c", "revert a"]
