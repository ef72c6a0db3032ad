"""plan == run, on random DAGs changed at random between two runs (issue 13's acceptance).

Each case (a seed) draws a small graph flow — atoms ``n0``, ``n1``, … each providing ``out_<name>``
and requiring some earlier outputs — runs it in a child process killed by a real SIGKILL at a
random atom of its second half, then deploys new code made of random changes: atoms added (some feeding existing
ones), removed, renamed (with a `Rename` migration), version-bumped (with a random policy) and
provider changes (an output now comes from a new atom; ``provider_change`` random). A fresh child
process computes ``engine.plan()`` and resumes. The atoms the plan lists to run, rerun or revert
must be exactly those that then execute (each once) and revert, reverts first, in an order
consistent with the new graph; nothing else runs, and the flow ends SUCCESS (or,
when the plan says ``fail``, the resume is refused and nothing runs). Cases alternate between the
durable backends (SQLite and dir://).
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys
from typing import Any

import pytest

import resume_changes_factories as rc
from ferroflow import states
from store_cases import DURABLE_BACKENDS

CHILD = os.path.abspath(rc.__file__)
KILLED = -9
SEEDS = range(30)
#: Version policies drawn for a bumped atom (``fail`` rarely: it ends the case early).
POLICIES = ["reuse", "rerun", "revert_then_rerun", "revert_then_rerun", "migrate", "rerun", "reuse", "fail"]


def _atom(name: str, requires: list[str], provides: str | None = None) -> dict[str, Any]:
    return {"name": name, "requires": requires, "provides": provides or f"out_{name}"}


def random_flow(rng: random.Random) -> list[dict[str, Any]]:
    """3 to 7 atoms in a topological order, each requiring up to 2 earlier outputs."""
    atoms: list[dict[str, Any]] = []
    for i in range(rng.randint(3, 7)):
        earlier = [atom["provides"] for atom in atoms]
        atoms.append(_atom(f"n{i}", rng.sample(earlier, min(len(earlier), rng.randint(0, 2)))))
    return atoms


def random_changes(rng: random.Random, atoms: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """New code (atoms in a topological order) and the options of the resume."""
    atoms = [dict(atom, requires=list(atom["requires"])) for atom in atoms]
    names = [atom["name"] for atom in atoms]
    rng.shuffle(names)
    # Each atom gets at most one change (renaming one that is also removed makes no sense).
    kinds = ["remove", "rename", "version", "provider", None, None]
    change = {name: rng.choice(kinds) for name in names}
    versions: dict[str, str] = {}
    policies: dict[str, str] = {}
    migrations: list[list[Any]] = []
    added = 0
    for name, kind in change.items():
        position = next(i for i, atom in enumerate(atoms) if atom["name"] == name)
        atom = atoms[position]
        if kind == "remove":
            del atoms[position]
            for other in atoms:
                other["requires"] = [r for r in other["requires"] if r != atom["provides"]]
        elif kind == "rename":  # same output, new name
            atom["name"] = f"{name}_r"
            migrations.append(["rename", name, atom["name"]])
        elif kind == "version":
            versions[name] = "2.0"
            policies[name] = rng.choice(POLICIES)
        elif kind == "provider":  # its output now comes from a new atom right after it
            old = atom["provides"]
            atom["provides"] = f"{old}_v2"
            atoms.insert(position + 1, _atom(f"z{added}", rng.choice([[], [atom["provides"]]]), provides=old))
            added += 1
    for _ in range(rng.randint(0, 2)):  # new atoms, somewhere, maybe feeding later ones
        position = rng.randint(0, len(atoms))
        earlier = [atom["provides"] for atom in atoms[:position]]
        new = _atom(f"new{added}", rng.sample(earlier, min(len(earlier), rng.randint(0, 2))))
        added += 1
        atoms.insert(position, new)
        later = atoms[position + 1 :]
        if later and rng.random() < 0.5:
            rng.choice(later)["requires"].append(new["provides"])
    options: dict[str, Any] = {"provider_change": rng.choice(["keep", "rerun"])}
    if migrations:
        options["migrations"] = migrations
    return atoms, {"versions": versions, "policies": policies, "options": options}


def spec(atoms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "graph", "atoms": atoms}


def ancestors(atoms: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per atom, the atoms before it in the graph (through what they require)."""
    provider = {atom["provides"]: atom["name"] for atom in atoms}
    found: dict[str, set[str]] = {}
    for atom in atoms:  # a topological order
        mine: set[str] = set()
        for name in atom["requires"]:
            mine |= {provider[name]} | found[provider[name]]
        found[atom["name"]] = mine
    return found


def child(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CHILD, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_plan_is_what_the_resume_runs(tmp_path: pathlib.Path, seed: int) -> None:
    rng = random.Random(seed)
    store = DURABLE_BACKENDS[seed % len(DURABLE_BACKENDS)]
    db, workdir = store.uri(tmp_path), str(tmp_path)
    atoms = random_flow(rng)
    killed = rng.choice(atoms[len(atoms) // 2 :])["name"]  # late: more completed atoms to change
    rc.deploy(workdir, spec(atoms))
    rc.configure(workdir, 1, kill=[killed])
    started = child("start", db, workdir, "{}")
    assert started.returncode == KILLED, started.stdout + started.stderr
    flow_uuid = (tmp_path / rc.FLOW_UUID).read_text()
    rc.take_journal(workdir)

    new_atoms, change = random_changes(rng, atoms)
    rc.deploy(workdir, spec(new_atoms), versions=change["versions"], policies=change["policies"])
    rc.configure(workdir, 2)
    resumed = child("resume", db, workdir, flow_uuid, json.dumps(change["options"]))
    output = resumed.stdout + resumed.stderr
    case = f"seed {seed} on {store}: {atoms} killed at {killed} → {new_atoms}, {change}\n{output}"
    entries = json.loads((tmp_path / rc.PLAN).read_text())
    journal = [line.split() for line in rc.take_journal(workdir)]
    executed = [words[1] for words in journal if words[0] == "execute"]
    reverted = [words[1] for words in journal if words[0] == "revert"]

    if any(entry["action"] == "fail" for entry in entries):
        assert resumed.returncode == 1 and "raised VersionMismatch" in output, case
        assert journal == [], case
        return
    assert resumed.returncode == 0 and "done SUCCESS" in output, case
    by_action: dict[str, list[str]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry["name"])
    to_revert = by_action.get("revert", [])
    to_run = [e["name"] for e in entries if e["action"] in ("run", "rerun", "revert")]
    assert reverted == to_revert, case
    assert journal[: len(reverted)] == [["revert", name] for name in reverted], f"reverts come first: {case}"
    assert sorted(executed) == sorted(to_run), case
    assert len(set(executed)) == len(executed), f"each atom runs once: {case}"
    before = ancestors(new_atoms)
    for position, name in enumerate(executed):
        later = set(executed[position + 1 :])
        assert not (before[name] & later), f"{name} ran before {before[name] & later}: {case}"
    names = [atom["name"] for atom in new_atoms]
    kept = [e for e in entries if e["name"] in names and e["action"] in ("reuse", "migrate")]
    assert not ({e["name"] for e in kept} & set(executed)), case
    with store.connection(db) as conn:
        saved = conn.get_flow_details(flow_uuid)
    assert saved.state == states.SUCCESS, case
    current = {ad.name: ad.state for ad in saved if ad.name in names}
    assert current == dict.fromkeys(names, states.SUCCESS), case
