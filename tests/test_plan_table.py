"""The plan as a table: ``ResumePlan.format_table`` (one line per entry, or runs of alike entries
folded) and ``ferroflow plan``, which folds a long plan unless ``--all`` is given."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from cli_support import deploy, ferroflow, flow_uuid_in, make_workdir
from ferroflow import engines, task
from ferroflow.cli import common
from ferroflow.engines import resume_plan
from ferroflow.patterns import linear_flow


class Noop(task.Task):
    def execute(self) -> None:
        return None


class Versioned(Noop):
    version = (2, 0)


def _plan(*atoms: task.Task) -> resume_plan.ResumePlan:
    return engines.load(linear_flow.Flow("table").add(*atoms)).plan()


def test_the_table_has_one_aligned_line_per_entry_and_dashes_for_none() -> None:
    plan = _plan(Noop("a"), Noop("longer"))
    assert plan.format_table().splitlines() == [
        "NAME    SAVED STATE  SAVED VERSION  VERSION  ACTION  REASON",
        "a       -            -              1.0      run     new atom: no saved detail",
        "longer  -            -              1.0      run     new atom: no saved detail",
    ]
    assert _plan(*[Noop(f"t{i}") for i in range(5)]).format_table(fold=False).count("\n") == 5


def test_runs_of_three_or_more_alike_entries_fold_into_one_line() -> None:
    atoms = [Noop(f"a{i}") for i in range(4)] + [Versioned("v0"), Versioned("v1")] + [Noop(f"b{i}") for i in range(3)]
    plan = _plan(*atoms)
    lines = plan.format_table(fold=True).splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == [
        "NAME",
        "a0 … a3 (4 atoms)",
        "v0",  # a run of two is left as it is
        "v1",
        "b0 … b2 (3 atoms)",
    ]
    assert lines[1].split()[-7:] == ["1.0", "run", "new", "atom:", "no", "saved", "detail"]
    assert lines[2].split()[1:3] == ["-", "-"] and "2.0" in lines[2].split()
    # Unfolded, the same plan still has a line per atom; its counts and entries are untouched.
    assert plan.format_table().count("\n") == len(atoms)
    assert plan.counts() == {"run": len(atoms)}
    assert [entry.name for entry in plan] == [atom.name for atom in atoms]


def test_an_empty_plan_is_its_header() -> None:
    plan = _plan()
    assert plan.format_table() == plan.format_table(fold=True)
    assert plan.format_table().split() == ["NAME", "SAVED", "STATE", "SAVED", "VERSION", "VERSION", "ACTION", "REASON"]


def test_escaped_names_are_aligned_by_their_escaped_width() -> None:
    plan = _plan(Noop("bad\x1bname"), Noop("ok"))
    lines = plan.format_table(escape=common.printable).splitlines()
    assert lines[1].startswith("bad\\x1bname  -")
    assert lines[2].startswith("ok" + " " * len("bad\\x1bname") + "-")
    assert all(line.isprintable() for line in lines)


def test_cli_plan_folds_a_long_plan_and_all_prints_every_line(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path)
    names = [f"s{i}" for i in range(150)]
    deploy(workdir, atoms=names, kill="s100")
    killed = ferroflow("run", "appflows:make", "--db", "f.db", "--no-progress", cwd=workdir)
    assert killed.returncode == -9, killed.stderr
    flow_uuid = flow_uuid_in(killed.stdout)

    folded = ferroflow("plan", flow_uuid, "--db", "f.db", cwd=workdir)
    assert folded.returncode == 0, folded.stderr
    lines = folded.stdout.splitlines()
    assert lines[0] == f"flow {flow_uuid} (app): 1 rerun, 100 reuse, 49 run"
    assert [line.split()[:6] for line in lines[3:6]] == [
        ["s0", "…", "s99", "(100", "atoms)", "SUCCESS"],
        ["s100", "RUNNING", "1.0", "1.0", "rerun", "was"],
        ["s101", "…", "s149", "(49", "atoms)", "PENDING"],
    ]
    assert lines[6:] == ["(runs of alike atoms folded: --all prints one line per atom)"]

    every = ferroflow("plan", flow_uuid, "--all", "--db", "f.db", cwd=workdir)
    assert every.returncode == 0, every.stderr
    assert [line.split()[0] for line in every.stdout.splitlines()[3:]] == names

    as_json = json.loads(ferroflow("plan", flow_uuid, "--json", "--db", "f.db", cwd=workdir).stdout)
    assert [entry["name"] for entry in as_json["entries"]] == names


def _folded_oracle(plan: resume_plan.ResumePlan) -> list[str]:
    """The folded table's name column, computed from every entry (what the core's fold_runs
    spares the table from making)."""
    names = []
    keyed = [(entry.name, (entry.saved_state, entry.saved_version, entry.version, entry.action, entry.reason))
             for entry in plan]  # fmt: skip
    for _, run in itertools.groupby(keyed, key=lambda item: item[1]):
        run = list(run)
        if len(run) >= resume_plan.FOLD_RUN:
            names.append(f"{run[0][0]} … {run[-1][0]} ({len(run)} atoms)")
        else:
            names.extend(name for name, _ in run)
    return names


def test_the_folded_table_makes_only_the_entries_it_shows_and_matches_folding_every_entry() -> None:
    kinds = [Noop, Versioned]
    lengths = [1, 2, 3, 5, 1, 4, 2, 3]
    atoms = [kinds[run % 2](f"r{run}_{i}") for run, length in enumerate(lengths) for i in range(length)]
    plan = _plan(*atoms)
    folded = plan.format_table(fold=True)
    assert plan._raw_entries is None, "folding made an entry per atom"
    assert [line.split("  ")[0].strip() for line in folded.splitlines()[1:]] == _folded_oracle(plan)
    assert plan.format_table(fold=True) == folded  # (with the entries now read: the same table)
    assert plan.counts() == {"run": len(atoms)}
    with pytest.raises(IndexError, match="out of range"):
        plan._core.entries([len(atoms)])
