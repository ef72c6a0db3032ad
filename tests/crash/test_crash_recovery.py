"""Crash recovery with real processes: SIGKILL the engine at random moments, resume, check everything.

For each scenario and durable backend (SQLite, dir://), rounds (fresh store and journal, seeded)
are run through `CrashRunner` until at least `MIN_MID_RUN_KILLS` kills landed mid-run (a share of
them, in fewer rounds, on backends other than SQLite: `StoreCase.crash_share`) — in a child that had already run atoms
and before the flow finished (kills during start-up or after the end come on top). Every round
then checks, from the journal (what really ran) and the store snapshots taken after each kill:

- the flow ends in the expected state, every result is correct (in the store, at every snapshot,
  and as computed by every execution, re-executions included);
- every atom executed at least once (success) — or every atom that executed was reverted, and
  none that never started (revert). An atom counts as started when it executed (journal) or when
  a kill left it saved as RUNNING: nobody can tell then whether its execute began, so reverting
  it is the safe choice (TaskFlow reverts it too);
- the store is never ahead of reality (a SUCCESS or REVERTED atom was journaled before the kill),
  and nothing the store recorded as SUCCESS (REVERTED) before a kill was executed (reverted) again;
- reverts run in reverse order. The rule checked is the one at-least-once semantics guarantees:
  for every dependency ``u -> v``, *all* reverts of ``v`` precede *all* reverts of ``u`` (``u`` is
  reverted only once ``v`` is recorded REVERTED, and a REVERTED atom is never reverted again). The
  journal may repeat an atom's revert (killed after its revert, before the commit) but never goes
  back to a later atom; in a linear flow the revert lines are therefore non-increasing in index;
- the store is whole after every kill and at the end (SQLite's ``PRAGMA integrity_check``; every
  file of a dir:// store readable, linked and private).

Run with ``-s`` to see kills, resumes and re-executions per scenario. ``FERROFLOW_CRASH_SEED``
shifts every seed (to explore other kill schedules); failures name the round's seed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import pytest

from .conftest import CrashRunner, Entry, Round, Snapshot, scaled
from .flows import GRAPH, LINEAR, atom_inputs, atom_name, expected_values

pytestmark = pytest.mark.timeout(600)

N_ATOMS = 200
MIN_MID_RUN_KILLS = 20
#: Kills a revert scenario needs in each phase (forward run, revert), mid-run.
MIN_PHASE_KILLS = 3
MAX_ROUNDS = 6
SEED_SHIFT = int(os.environ.get("FERROFLOW_CRASH_SEED", "0"))

_NOT_STARTED_STATES = frozenset({"PENDING", "REVERTED"})


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: str
    engine: str
    seed: int
    fail_at: int = -1

    @property
    def reverts(self) -> bool:
        return self.fail_at >= 0

    @property
    def expected_state(self) -> str:
        return "REVERTED" if self.reverts else "SUCCESS"


SCENARIOS = [
    Scenario("linear-serial", LINEAR, "serial", 1000),
    Scenario("graph-serial", GRAPH, "serial", 2000),
    Scenario("graph-parallel", GRAPH, "parallel", 3000),
    Scenario("linear-serial-revert", LINEAR, "serial", 4000, fail_at=N_ATOMS // 2),
    Scenario("graph-parallel-revert", GRAPH, "parallel", 5000, fail_at=N_ATOMS // 2),
]


# -- journal helpers -------------------------------------------------------------------------------


def positions(journal: list[Entry], kind: str) -> dict[str, list[int]]:
    """Journal positions of each atom's lines of ``kind``."""
    found: dict[str, list[int]] = {}
    for pos, entry in enumerate(journal):
        if entry.kind == kind:
            found.setdefault(entry.name, []).append(pos)
    return found


def mid_run(snapshot: Snapshot) -> bool:
    return snapshot.journaled_this_life > 0 and not snapshot.finished


def in_revert_phase(snapshot: Snapshot, first_revert: int | None) -> bool:
    return first_revert is not None and snapshot.offset > first_revert


def recorded_running(rnd: Round, name: str, before: int) -> bool:
    """Whether a kill before journal line ``before`` left ``name`` saved as RUNNING."""
    return any(
        snap.offset <= before and (row := snap.store.atoms.get(name)) is not None and row.state == "RUNNING"
        for snap in rnd.snapshots
    )


def history(rnd: Round, name: str) -> str:
    """What happened to one atom: its journal lines and its saved state after each kill."""
    lines = [f"{e.kind}@{pos}" for pos, e in enumerate(rnd.journal) if e.name == name]
    saved: list[str] = []  # "state/intention at kill k (journal line n)", repeats folded
    previous = None
    for number, snap in enumerate(rnd.snapshots, 1):
        row = snap.store.atoms.get(name)
        now = "missing" if row is None else f"{row.state}/{row.intention}"
        if now != previous:
            saved.append(f"{now} at kill {number} (line {snap.offset})")
            previous = now
    final = rnd.final.atoms.get(name) if rnd.final is not None else None
    end = f"{final.state}/{final.intention}" if final is not None else "missing"
    return f"  {name}: journal {lines}; saved {saved}; at the end {end}"


# -- checks ----------------------------------------------------------------------------------------


def check_snapshots(rnd: Round, expected: dict[str, int]) -> None:
    """The store is never ahead of the journal, and never lets a recorded outcome happen again."""
    executes = positions(rnd.journal, "execute")
    reverts = positions(rnd.journal, "revert")
    where = f"(seed {rnd.seed})"
    for number, snap in enumerate(rnd.snapshots, 1):
        store = snap.store
        for name in store.names_in("SUCCESS"):
            assert store.atoms[name].results == expected[name], f"kill {number}: wrong saved result of {name} {where}"
            runs = executes.get(name, [])
            assert runs and runs[0] < snap.offset, f"kill {number}: {name} SUCCESS but never executed {where}"
            again = [p for p in runs if p >= snap.offset]
            assert not again, f"kill {number}: {name} was SUCCESS, executed again at lines {again} {where}"
        for name in store.names_in("REVERTED"):
            ran = [p for p in executes.get(name, []) if p < snap.offset]
            undone = reverts.get(name, [])
            if ran:
                assert undone and undone[0] < snap.offset, f"kill {number}: {name} REVERTED, never reverted {where}"
            again = [p for p in undone if p >= snap.offset]
            assert not again, f"kill {number}: {name} was REVERTED, reverted again at lines {again} {where}"


def check_common(rnd: Round, scenario: Scenario, expected: dict[str, int]) -> None:
    where = f"(seed {rnd.seed})"
    final = rnd.final
    assert final is not None
    assert final.integrity == "ok", f"final integrity_check: {final.integrity} {where}"
    assert rnd.final_reported == scenario.expected_state, where
    assert final.flow_state == scenario.expected_state, where
    wrong = [(e.name, e.value) for e in rnd.journal if e.kind == "execute" and e.value != expected[e.name]]
    assert not wrong, f"executions computed wrong values (name, value): {wrong[:5]} {where}"
    check_snapshots(rnd, expected)


def check_success(rnd: Round, expected: dict[str, int]) -> None:
    where = f"(seed {rnd.seed})"
    final = rnd.final
    assert final is not None
    assert set(final.atoms) == set(expected), where
    not_done = sorted(name for name, row in final.atoms.items() if row.state != "SUCCESS")
    assert not not_done, f"atoms not SUCCESS at the end: {not_done[:10]} {where}"
    wrong = sorted(name for name, value in expected.items() if final.atoms[name].results != value)
    assert not wrong, f"wrong final results: {wrong[:10]} {where}"
    executed = {e.name for e in rnd.journal if e.kind == "execute"}
    assert executed == set(expected), f"never executed: {sorted(set(expected) - executed)[:10]} {where}"
    assert not [e for e in rnd.journal if e.kind == "revert"], f"a successful flow reverted atoms {where}"


def check_revert(rnd: Round, scenario: Scenario, inputs: list[list[int]], strict_order: bool = True) -> None:
    """The revert is complete and in reverse order. ``strict_order``: every revert of a dependent
    precedes every revert of what it depends on (a REVERTED atom, once recorded, is never reverted
    again); otherwise (``durability=batch``, which may lose the record) only within each life."""
    where = f"(seed {rnd.seed})"
    final = rnd.final
    assert final is not None
    executes = positions(rnd.journal, "execute")
    reverts = positions(rnd.journal, "revert")
    failing = atom_name(scenario.fail_at)
    assert failing in executes, f"the failing atom never ran {where}"
    not_reverted = sorted(set(executes) - set(reverts))
    assert not not_reverted, f"executed, never reverted {where}:\n" + "\n".join(
        history(rnd, name) for name in not_reverted[:5]
    )
    never_started = sorted(
        name for name in set(reverts) - set(executes) if not recorded_running(rnd, name, reverts[name][0])
    )
    assert not never_started, f"reverted, never started {where}:\n" + "\n".join(
        history(rnd, name) for name in never_started[:5]
    )
    wrong_end = sorted(
        name
        for name, row in final.atoms.items()
        if (row.state != "REVERTED" if name in executes else row.state not in _NOT_STARTED_STATES)
    )
    assert not wrong_end, f"atoms ending in the wrong state for a reverted flow {where}:\n" + "\n".join(
        history(rnd, name) for name in wrong_end[:5]
    )
    for name, runs in executes.items():
        assert runs[-1] < reverts[name][0], f"{name} reverted before (one of) its executions {where}"
    for v, needs in enumerate(inputs):
        later = atom_name(v)
        for u in needs:
            earlier = atom_name(u)
            if later not in reverts:
                continue
            if strict_order:
                assert reverts[later][-1] < reverts[earlier][0], (
                    f"{earlier} reverted at line {reverts[earlier][0]} before its dependent {later} "
                    f"finished reverting (line {reverts[later][-1]}) {where}"
                )
            else:
                # A lost group's reverts run again after a kill: the order holds within each life.
                assert reverts[later][0] < reverts[earlier][0] and reverts[later][-1] < reverts[earlier][-1], (
                    f"{earlier} (reverts at {reverts[earlier]}) reverted out of order with its dependent "
                    f"{later} (reverts at {reverts[later]}) {where}"
                )
    if scenario.kind == LINEAR:
        assert set(executes) == {atom_name(i) for i in range(scenario.fail_at + 1)}, where
        kinds = [e.kind for e in rnd.journal]
        assert kinds == sorted(kinds), f"an execute came after a revert in a serial linear flow {where}"


# -- the test --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_killed_engine_resumes_to_the_right_end(crash_runner: CrashRunner, scenario: Scenario) -> None:
    totals: Counter[str] = Counter()
    store = crash_runner.store
    max_rounds = scaled(MAX_ROUNDS, store)
    for round_index in range(max_rounds):
        seed = scenario.seed + SEED_SHIFT + round_index
        inputs = atom_inputs(scenario.kind, N_ATOMS, seed)
        expected = {atom_name(i): value for i, value in enumerate(expected_values(inputs))}
        rnd = crash_runner.run_round(seed, scenario.kind, N_ATOMS, scenario.engine, fail_at=scenario.fail_at)
        check_common(rnd, scenario, expected)
        if scenario.reverts:
            check_revert(rnd, scenario, inputs)
        else:
            check_success(rnd, expected)
        tally(totals, rnd)
        if enough_kills(totals, scenario, store):
            break
    print(f"\n[{store}-{scenario.id}] rounds {round_index + 1}: {summary(totals)}")
    assert enough_kills(totals, scenario, store), (
        f"after {max_rounds} rounds only {totals['mid_run']} kills landed mid-run "
        f"(forward {totals['forward']}, revert {totals['revert']}); the kill timing needs tuning"
    )


def tally(totals: Counter[str], rnd: Round) -> None:
    first_revert = next((pos for pos, e in enumerate(rnd.journal) if e.kind == "revert"), None)
    executions = [e.name for e in rnd.journal if e.kind == "execute"]
    reverts = [e.name for e in rnd.journal if e.kind == "revert"]
    totals["lives"] += rnd.lives
    totals["kills"] += rnd.kills
    totals["executions"] += len(executions)
    totals["re_executions"] += len(executions) - len(set(executions))
    totals["reverts"] += len(reverts)
    totals["re_reverts"] += len(reverts) - len(set(reverts))
    for snap in rnd.snapshots:
        totals[snap.how] += 1
        if mid_run(snap):
            totals["mid_run"] += 1
            totals["revert" if in_revert_phase(snap, first_revert) else "forward"] += 1
        elif snap.finished:
            totals["after_end"] += 1
        else:
            totals["idle"] += 1


def summary(totals: Counter[str]) -> str:
    t = totals
    return (
        f"resumes {t['lives']}, kills {t['kills']} (planned by progress {t['progress']}, clock {t['clock']}, "
        f"trigger {t['trigger']}; mid-run {t['mid_run']}: forward {t['forward']}, revert {t['revert']}; "
        f"before any atom ran {t['idle']}, after the end {t['after_end']}); executions {t['executions']} "
        f"(re-executions {t['re_executions']}), reverts {t['reverts']} (re-reverts {t['re_reverts']})"
    )


def enough_kills(totals: Counter[str], scenario: Scenario, store: object) -> bool:
    if totals["mid_run"] < scaled(MIN_MID_RUN_KILLS, store):
        return False
    return not scenario.reverts or min(totals["forward"], totals["revert"]) >= scaled(MIN_PHASE_KILLS, store)
