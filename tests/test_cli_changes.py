"""``ferroflow resume`` / ``plan`` / ``rewind`` after the code changed, as a user runs them: the
real ``ferroflow`` executable in subprocesses, killed runs, code rewritten between runs, and the
store read back afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import deploy, ferroflow, flow_uuid_in, make_workdir, one_line_error, saved, take_journal


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path)


def _killed_at_c(workdir: Path) -> str:
    """A flow a → b → c → d whose process was SIGKILLed in c: a, b SUCCESS, c RUNNING."""
    deploy(workdir, kill="c")
    result = ferroflow("run", "appflows:make", "--db", "f.db", "--no-progress", cwd=workdir)
    assert result.returncode == -9, result.stderr
    assert take_journal(workdir) == ["execute a", "execute b", "execute c"]
    return flow_uuid_in(result.stdout)


def _plan(workdir: Path, *args: str) -> dict[str, str]:
    result = ferroflow("plan", *args, "--json", "--db", "f.db", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry["action"] for entry in json.loads(result.stdout)["entries"]}


def test_resume_with_migrations_carries_a_renamed_atom_over(workdir: Path) -> None:
    flow_uuid = _killed_at_c(workdir)
    deploy(workdir, atoms=["a", "b2", "c", "d"])
    # Without the migration the renamed atom would run again and b be left an orphan.
    assert _plan(workdir) == {"a": "reuse", "b2": "run", "c": "rerun", "d": "run", "b": "orphan"}
    assert _plan(workdir, "--migrations", "appmigrations:RENAMES") == {
        "a": "reuse",
        "b2": "migrate",
        "c": "rerun",
        "d": "run",
    }

    result = ferroflow("resume", "--migrations", "appmigrations:RENAMES", "--db", "f.db", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert f"flow {flow_uuid} (app): SUCCESS" in result.stdout
    assert take_journal(workdir) == ["execute c", "execute d"]  # b2 took b's result: not run
    state, atoms = saved(workdir / "f.db")["flows"][flow_uuid]
    assert state == "SUCCESS"
    assert {name: value for name, value in atoms.items() if name != "b"} == {
        "a": ("SUCCESS", 1),
        "b2": ("SUCCESS", 2),
        "c": ("SUCCESS", 3),
        "d": ("SUCCESS", 4),
    }


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("appmigrations", ["MODULE:ATTR"]),
        ("appmigrations:NOT_A_LIST", ["Rename", "not a list"]),
        ("appmigrations:MISSING", ["has no 'MISSING'"]),
        ("nosuchmodule:RENAMES", ["nosuchmodule", "PYTHONPATH"]),
        ("os:environ", ["standard library"]),
        ("ferroflow.migrations:Rename", ["ferroflow"]),
    ],
)
def test_bad_migrations_are_refused_before_anything_is_written(workdir: Path, spec: str, words: list[str]) -> None:
    flow_uuid = _killed_at_c(workdir)
    before = saved(workdir / "f.db")
    deploy(workdir, atoms=["a", "b2", "c", "d"])
    result = ferroflow("resume", flow_uuid, "--migrations", spec, "--db", "f.db", cwd=workdir)
    assert result.returncode == 2, result.stderr
    one_line_error(result.stderr, "--migrations", *words)
    assert take_journal(workdir) == []
    assert saved(workdir / "f.db") == before


def test_version_policies_from_the_command_line(workdir: Path) -> None:
    flow_uuid = _killed_at_c(workdir)
    deploy(workdir, versions={"a": "2.0"})
    assert _plan(workdir)["a"] == "reuse"
    assert _plan(workdir, "--on-version-change", "rerun")["a"] == "rerun"
    assert _plan(workdir, "--on-version-change", "fail")["a"] == "fail"

    refused = ferroflow("resume", "--on-version-change", "fail", "--db", "f.db", cwd=workdir)
    assert refused.returncode == 1
    one_line_error(refused.stderr, f"cannot resume flow {flow_uuid}", "'a'", "1.0", "2.0")
    assert take_journal(workdir) == []
    assert saved(workdir / "f.db")["flows"][flow_uuid][1]["c"][0] == "RUNNING"

    rerun = ferroflow("resume", "--on-version-change", "rerun", "--db", "f.db", cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert take_journal(workdir) == ["execute a", "execute c", "execute d"]
    assert saved(workdir / "f.db")["flows"][flow_uuid][0] == "SUCCESS"


def test_bad_policy_is_a_usage_error(workdir: Path) -> None:
    _killed_at_c(workdir)
    for command in ("resume", "plan"):
        result = ferroflow(command, "--on-version-change", "rerun_please", "--db", "f.db", cwd=workdir)
        assert result.returncode == 2
        one_line_error(result.stderr, "--on-version-change", "rerun_please")


def test_rewind_reverts_the_tail_and_runs_it_again(workdir: Path) -> None:
    deploy(workdir)
    run = ferroflow("run", "appflows:make", "--db", "f.db", cwd=workdir)
    assert run.returncode == 0, run.stderr
    flow_uuid = flow_uuid_in(run.stdout)
    take_journal(workdir)
    assert _plan(workdir, flow_uuid, "--rewind-to", "b") == {"a": "reuse", "b": "reuse", "c": "revert", "d": "revert"}

    result = ferroflow("rewind", flow_uuid[:8], "--to", "b", "--db", "f.db", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS" in result.stdout and "rewound to b: 2 atoms run again" in result.stdout
    assert take_journal(workdir) == ["revert d", "revert c", "execute c", "execute d"]
    assert saved(workdir / "f.db")["flows"][flow_uuid][0] == "SUCCESS"

    # resume --rewind-to is the same thing
    again = ferroflow("resume", flow_uuid, "--rewind-to", "c", "--db", "f.db", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert take_journal(workdir) == ["revert d", "execute d"]


def test_rewind_to_an_unknown_atom_fails_naming_the_atoms(workdir: Path) -> None:
    deploy(workdir)
    flow_uuid = flow_uuid_in(ferroflow("run", "appflows:make", "--db", "f.db", cwd=workdir).stdout)
    take_journal(workdir)
    before = saved(workdir / "f.db")
    result = ferroflow("rewind", flow_uuid, "--to", "zz", "--db", "f.db", cwd=workdir)
    assert result.returncode == 1
    one_line_error(result.stderr, "no atom 'zz'", "'a', 'b', 'c', 'd'", str(workdir / "f.db"))
    assert take_journal(workdir) == [] and saved(workdir / "f.db") == before
    missing = ferroflow("rewind", flow_uuid, "--db", "f.db", cwd=workdir)
    assert missing.returncode == 2 and "--to" in missing.stderr
    both = ferroflow("resume", "--all", "--rewind-to", "a", "--db", "f.db", cwd=workdir)
    assert both.returncode == 2 and "--all" in both.stderr


def test_plan_with_nothing_to_do_exits_0_like_resume(workdir: Path) -> None:
    deploy(workdir)
    assert ferroflow("run", "appflows:make", "--db", "f.db", cwd=workdir).returncode == 0
    for command in ("plan", "resume"):
        result = ferroflow(command, "--db", "f.db", cwd=workdir)
        assert result.returncode == 0, (command, result.stderr)
        assert f"nothing to {command}" in result.stdout


def test_unimportable_factory_suggests_the_working_directory(workdir: Path, tmp_path_factory) -> None:
    _killed_at_c(workdir)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    db = str(workdir / "f.db")
    for command in ("resume", "plan"):
        result = ferroflow(command, "--db", db, cwd=elsewhere)
        assert result.returncode == 1
        one_line_error(result.stderr, "appflows", "PYTHONPATH", str(elsewhere))
    run = ferroflow("run", "nosuchmodule:make", "--db", "x.db", cwd=elsewhere)
    assert run.returncode == 2
    one_line_error(run.stderr, "nosuchmodule", "PYTHONPATH")
