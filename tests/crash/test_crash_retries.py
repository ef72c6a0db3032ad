"""Retries and deciders across crashes: SIGKILL the engine at random moments, resume, check the semantics.

The harness is `CrashRunner` (see ``conftest.py``), with the flows of `crash.flows.build_semantics`:

- `TIMES`: ``a000``, then a subflow of 100 atoms under ``Times(3)`` whose `Flaky` atom fails its
  first two attempts, then one more atom. It must end SUCCESS after exactly three attempts.
- `FOR_EACH`: ``a000``, then a subflow of 100 atoms under ``ForEach((7, 3, 9))`` whose last atom
  always fails: every value is tried, then the subflow is reverted (``a000`` stays SUCCESS, as in
  TaskFlow) and the flow ends REVERTED, raising the last attempt's failure.
- `DECIDER`: a graph flow whose decider ignores one branch and lets the other run.

(The retries are `Times` and `ForEach` with a 10 ms pause before deciding, so that kills land between
a failure being saved and the revert it leads to; kills are also aimed at the flaky atom's execute
and the decider's input: ``progress_triggers``.)

An *attempt* is counted by the value the retry provided, which `Flaky` receives as ``attempt`` and
journals (``start <name> <attempt>``) before anything else. A kill interrupting an attempt makes the
resumed engine run that attempt again — at-least-once: the same ``start`` line again — but never
start the count over, skip an attempt, or forget the failures the retry's history recorded. So:

- the attempts the journal shows, repeats folded, are exactly the retry's values in order, and a
  repeat only follows a kill;
- after every kill, the retry's saved history (its ``RetryDetail`` results) lists the values given
  so far, each earlier one with `Flaky`'s failure of that very attempt; it never shrinks (until a
  final revert empties it, as TaskFlow does); it is never ahead of the atoms (an attempt's failure
  is in it only once the atom is saved FAILURE, TaskFlow's order); and when the store shows an
  attempt in progress, the next ``start`` line of the resumed engine is that attempt;
- the journal alternates between attempts (executions) and the reverts that follow a failure:
  each revert phase undoes exactly what its attempt executed, in reverse order;
- at the end, the saved history is the three attempts (the first two with their failure) for
  `TIMES`, empty for `FOR_EACH`; `FOR_EACH` raised its last attempt's failure (as a
  `WrappedFailure` when it was loaded from the store).

For the decider: the ignored branch never executes, before or after any kill; its atoms are saved
PENDING until the decision, IGNORE (state and intention) from then on, never anything else.

Each scenario runs on every durable backend (SQLite, dir://; fewer rounds and kills on the others,
`StoreCase.crash_share`). Rounds run until `MIN_MID_RUN_KILLS` kills landed mid-run and every phase (each attempt, each
revert, the final revert; before and after the decision) got its share. ``-s`` shows the tallies;
``FERROFLOW_CRASH_SEED`` shifts every seed.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import AtomRow, CrashRunner, Round, Snapshot, StoreView, scaled
from .flows import (
    DECIDER,
    FOR_EACH,
    FOR_EACH_VALUES,
    RETRY_NAME,
    START,
    TIMES,
    TIMES_ATTEMPTS,
    atom_name,
    decider_layout,
    expected_values,
    retried_range,
    semantic_inputs,
)
from .raising_worker import ALREADY, MESSAGE_SEPARATOR, RAISED
from .test_crash_recovery import check_snapshots, mid_run

pytestmark = pytest.mark.timeout(600)

WORKER = "crash.raising_worker"
MIN_MID_RUN_KILLS = 20
#: Kills each phase of a scenario needs (summed over rounds), mid-run. One is enough to exercise a
#: phase; more depends on timing (a parallel revert of 100 no-op atoms is over in milliseconds on
#: a fast machine), which a test must not.
MIN_PHASE_KILLS = 1
MAX_ROUNDS = 6
SEED_SHIFT = int(os.environ.get("FERROFLOW_CRASH_SEED", "0"))
BOOM = "crash.flows.Boom"

#: ``a000``, 100 retried atoms (the flaky one 10 from their end), one atom after them.
N_TIMES = 102
FLAKY_TIMES = 90
#: ``a000``, 100 retried atoms, the last one flaky: each attempt runs them all.
N_FOR_EACH = 101
FLAKY_FOR_EACH = 100
N_DECIDER = 180


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: str
    engine: str
    seed: int
    n: int
    #: The `Flaky` atom (retry kinds) or -1.
    flaky: int = -1
    max_lines_per_life: int = 40

    @property
    def attempts(self) -> list[int]:
        """The retry's values, in the order it provides them."""
        return list(range(1, TIMES_ATTEMPTS + 1)) if self.kind == TIMES else list(FOR_EACH_VALUES)

    @property
    def expected_state(self) -> str:
        return "REVERTED" if self.kind == FOR_EACH else "SUCCESS"

    @property
    def flaky_name(self) -> str:
        return atom_name(self.flaky)


SCENARIOS = [
    Scenario("times-serial", TIMES, "serial", 6000, N_TIMES, FLAKY_TIMES),
    Scenario("times-parallel", TIMES, "parallel", 7000, N_TIMES, FLAKY_TIMES),
    Scenario("foreach-serial", FOR_EACH, "serial", 8000, N_FOR_EACH, FLAKY_FOR_EACH),
    Scenario("foreach-parallel", FOR_EACH, "parallel", 9000, N_FOR_EACH, FLAKY_FOR_EACH),
    Scenario("decider-serial", DECIDER, "serial", 10000, N_DECIDER, max_lines_per_life=16),
    Scenario("decider-parallel", DECIDER, "parallel", 11000, N_DECIDER, max_lines_per_life=16),
]


# -- reading the journal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """A maximal run of journal lines ``[start, end)`` of one kind: executions (``start`` lines
    included) or reverts."""

    reverting: bool
    start: int
    end: int


def phases(rnd: Round) -> list[Phase]:
    found: list[Phase] = []
    for pos, entry in enumerate(rnd.journal):
        reverting = entry.kind == "revert"
        if found and found[-1].reverting == reverting:
            found[-1] = Phase(reverting, found[-1].start, pos + 1)
        else:
            found.append(Phase(reverting, pos, pos + 1))
    return found


def phase_of(snapshot: Snapshot, found: list[Phase]) -> int:
    """The phase of the last line journaled before the kill (-1: none yet)."""
    last = snapshot.offset - 1
    return next((i for i, phase in enumerate(found) if phase.start <= last < phase.end), -1)


def indexes(rnd: Round, phase: Phase, kind: str) -> list[int]:
    return [int(e.name[1:]) for e in rnd.journal[phase.start : phase.end] if e.kind == kind]


#: An atom a kill left without a detail: the first resume had not prepared the flow yet.
NOT_SAVED = AtomRow("PENDING", "EXECUTE", None)


def row(store: StoreView, name: str) -> AtomRow:
    return store.atoms.get(name, NOT_SAVED)


def history_of(store: StoreView) -> list[Any]:
    return row(store, RETRY_NAME).results or []


# -- checks ----------------------------------------------------------------------------------------


def check_values(rnd: Round, scenario: Scenario, expected: dict[str, int]) -> None:
    """Every execution computed the right value; the store never recorded a wrong or unseen one."""
    where = f"(seed {rnd.seed})"
    final = rnd.final
    assert final is not None
    assert final.integrity == "ok", f"final integrity_check: {final.integrity} {where}"
    assert rnd.final_reported == scenario.expected_state, where
    assert final.flow_state == scenario.expected_state, where
    wrong = [(e.name, e.value) for e in rnd.journal if e.kind == "execute" and e.value != expected[e.name]]
    assert not wrong, f"executions computed wrong values (name, value): {wrong[:5]} {where}"
    for number, snap in enumerate(rnd.snapshots, 1):
        ran = {e.name for e in rnd.journal[: snap.offset] if e.kind == "execute"}
        for name in snap.store.names_in("SUCCESS") - {RETRY_NAME}:
            assert snap.store.atoms[name].results == expected[name], f"kill {number}: {name}'s saved result {where}"
            assert name in ran, f"kill {number}: {name} saved SUCCESS but never executed {where}"


def check_failure(failure: Any, flaky: str, attempt: int, where: str) -> None:
    assert BOOM in failure["exc_type_names"], f"not a Boom: {failure} {where}"
    assert failure["exception_str"] == f"{flaky} fails on attempt {attempt}", f"{failure['exception_str']} {where}"


def check_history(history: list[Any], scenario: Scenario, complete: bool, where: str) -> None:
    """Values given so far in order, each earlier attempt with the flaky atom's failure of that attempt
    (the current one with it too once recorded; with ``complete``, all of them but a last success)."""
    attempts = scenario.attempts
    assert len(history) <= len(attempts), f"history longer than the attempts: {history} {where}"
    for number, (value, failures) in enumerate(history, 1):
        assert value == attempts[number - 1], f"attempt {number} provided {value} {where}"
        last = number == len(history)
        if not last:
            assert set(failures) == {scenario.flaky_name}, f"attempt {number} lost its failure: {failures} {where}"
        elif complete:
            assert failures == {}, f"the successful attempt has failures: {failures} {where}"
        else:
            assert set(failures) <= {scenario.flaky_name}, f"attempt {number}: {failures} {where}"
        if failures:
            check_failure(failures[scenario.flaky_name], scenario.flaky_name, value, where)


def check_attempts(rnd: Round, scenario: Scenario) -> None:
    """Each attempt started, in order, none skipped or restarted; a repeat only after a kill."""
    where = f"(seed {rnd.seed})"
    starts = [(pos, e.value) for pos, e in enumerate(rnd.journal) if e.kind == START]
    assert all(rnd.journal[pos].name == scenario.flaky_name for pos, _ in starts), where
    folded = [value for i, (_, value) in enumerate(starts) if i == 0 or starts[i - 1][1] != value]
    assert folded == scenario.attempts, f"attempts started (repeats folded): {folded} {where}"
    kills = [snap.offset for snap in rnd.snapshots]
    for (before, value), (after, again) in itertools.pairwise(starts):
        if value == again:
            assert any(before < offset <= after for offset in kills), (
                f"attempt {value} started again at line {after} with no kill since line {before} {where}"
            )


def check_retry_snapshots(rnd: Round, scenario: Scenario) -> None:
    """After each kill: a consistent history that never shrinks, and the resumed engine carries on
    with the attempt in progress."""
    starts = [(pos, e.value) for pos, e in enumerate(rnd.journal) if e.kind == START]
    longest = 0
    for number, snap in enumerate(rnd.snapshots, 1):
        where = f"(kill {number}, journal line {snap.offset}, seed {rnd.seed})"
        retry_row = row(snap.store, RETRY_NAME)
        history = history_of(snap.store)
        if retry_row.state == "REVERTED":  # the final revert cleans the history (as TaskFlow does)
            assert scenario.kind == FOR_EACH and history == [], f"reverted retry kept {history} {where}"
            longest = len(scenario.attempts)
            continue
        check_history(history, scenario, complete=False, where=where)
        assert len(history) >= longest, f"history shrank from {longest} to {len(history)} attempts {where}"
        longest = len(history)
        flaky = row(snap.store, scenario.flaky_name)
        # The attempt history[-1] runs (its failure, if any, not yet acted upon).
        attempt_on = (retry_row.state, retry_row.intention) == ("SUCCESS", "EXECUTE")
        if attempt_on and scenario.flaky_name in history[-1][1]:
            # The history is never ahead of the atoms: an attempt's failure is in it once the atom
            # is saved FAILURE (TaskFlow's order), not while the store still says the atom runs.
            assert flaky.state == "FAILURE", (
                f"the history holds attempt {history[-1][0]}'s failure, {scenario.flaky_name} is saved "
                f"{flaky.state}/{flaky.intention} {where}"
            )
        if attempt_on and flaky.state in ("PENDING", "RUNNING") and flaky.intention == "EXECUTE":
            following = next((value for pos, value in starts if pos >= snap.offset), None)
            assert following in (None, history[-1][0]), (
                f"killed during attempt {history[-1][0]}, the next attempt started was {following} {where}"
            )


def check_retry_journal(rnd: Round, scenario: Scenario) -> None:
    """Attempts and the reverts after each failure alternate; each revert undoes, newest first,
    exactly what its attempt executed inside the retried subflow; nothing outside is reverted."""
    where = f"(seed {rnd.seed})"
    found = phases(rnd)
    retried = set(retried_range(scenario.kind, scenario.n))
    failing_runs = len(scenario.attempts) if scenario.kind == FOR_EACH else len(scenario.attempts) - 1
    expected_phases = 2 * failing_runs + (scenario.kind == TIMES)
    assert len(found) == expected_phases, f"{len(found)} execute/revert phases, not {expected_phases} {where}"
    through_flaky = set(range(min(retried), scenario.flaky + 1))
    for number in range(failing_runs):
        attempt, revert = found[2 * number], found[2 * number + 1]
        executed = set(indexes(rnd, attempt, "execute")) & retried
        assert executed == through_flaky, f"attempt {number + 1} executed {sorted(executed)} {where}"
        reverted = indexes(rnd, revert, "revert")
        assert set(reverted) == executed, f"the revert after attempt {number + 1}: {sorted(set(reverted))} {where}"
        assert reverted == sorted(reverted, reverse=True), f"reverts out of order: {reverted} {where}"
    outside = [i for i in range(scenario.n) if i not in retried]
    first_start = next(pos for pos, e in enumerate(rnd.journal) if e.kind == START)
    for pos, entry in enumerate(rnd.journal):
        index = int(entry.name[1:])
        if index == 0:
            assert entry.kind == "execute" and pos < first_start, f"a000 {entry.kind} at line {pos} {where}"
        elif index in outside:  # after the retried subflow: only once it succeeded
            assert entry.kind == "execute" and pos >= found[-1].start, f"{entry.name} at line {pos} {where}"


def check_retry_final(rnd: Round, scenario: Scenario, expected: dict[str, int]) -> None:
    where = f"(seed {rnd.seed})"
    final = rnd.final
    assert final is not None
    retry_row = final.atoms[RETRY_NAME]
    retried = {atom_name(i) for i in retried_range(scenario.kind, scenario.n)}
    if scenario.kind == TIMES:
        assert retry_row.state == "SUCCESS", where
        history = history_of(final)
        assert len(history) == TIMES_ATTEMPTS, f"final history {history} {where}"
        check_history(history, scenario, complete=True, where=where)
        not_done = sorted(name for name, saved in final.atoms.items() if saved.state != "SUCCESS")
        assert not not_done, f"atoms not SUCCESS at the end: {not_done[:10]} {where}"
        wrong = sorted(name for name, value in expected.items() if final.atoms[name].results != value)
        assert not wrong, f"wrong final results: {wrong[:10]} {where}"
        assert RAISED not in rnd.final_output, where
        return
    assert (retry_row.state, retry_row.intention, retry_row.results) == ("REVERTED", "REVERT", []), where
    wrong_end = sorted(name for name in retried if final.atoms[name].state != "REVERTED")
    assert not wrong_end, f"retried atoms not REVERTED at the end: {wrong_end[:10]} {where}"
    first = final.atoms[atom_name(0)]
    assert (first.state, first.results) == ("SUCCESS", expected[atom_name(0)]), f"outside the subflow {where}"
    if ALREADY in rnd.final_output:
        return  # the life that reverted was killed after committing the end, before reporting
    raised = [line.split(" ", 2) for line in rnd.final_output.splitlines() if line.startswith(RAISED)]
    original = f"{scenario.flaky_name} fails on attempt {scenario.attempts[-1]}"
    assert len(raised) == 1, f"the reverting run raised nothing: {rnd.final_output!r} {where}"
    _, how, message = raised[0]
    assert how in ("itself", "wrapped") and message.split(MESSAGE_SEPARATOR) == [original], f"{raised} {where}"


def check_decider(rnd: Round, scenario: Scenario, expected: dict[str, int]) -> None:
    where = f"(seed {rnd.seed})"
    layout = decider_layout(scenario.n)
    skipped = {atom_name(i) for i in layout.skipped}
    check_snapshots(rnd, expected)  # nothing SUCCESS is run again, the store is never ahead
    ran = [e for e in rnd.journal if e.kind == "execute"]
    assert not [e.name for e in ran if e.name in skipped], f"the ignored branch ran {where}"
    assert {e.name for e in ran} == set(expected) - skipped, where
    gate = atom_name(layout.head[-1])
    last_gate = max(pos for pos, e in enumerate(rnd.journal) if e.name == gate)
    first_taken = min(pos for pos, e in enumerate(rnd.journal) if int(e.name[1:]) in layout.taken)
    assert last_gate < first_taken, f"the taken branch started before its decider's input was done {where}"
    decided = False
    for number, snap in enumerate(rnd.snapshots, 1):
        rows = {(row(snap.store, name).state, row(snap.store, name).intention) for name in skipped}
        if decided:
            assert rows == {("IGNORE", "IGNORE")}, f"kill {number}: the ignored branch saved as {rows} {where}"
        else:
            assert rows in ({("PENDING", "EXECUTE")}, {("IGNORE", "IGNORE")}), f"kill {number}: {rows} {where}"
            decided = rows == {("IGNORE", "IGNORE")}
    final = rnd.final
    assert final is not None
    assert {(final.atoms[name].state, final.atoms[name].intention) for name in skipped} == {("IGNORE", "IGNORE")}
    not_done = sorted(name for name, saved in final.atoms.items() if name not in skipped and saved.state != "SUCCESS")
    assert not not_done, f"atoms not SUCCESS at the end: {not_done[:10]} {where}"


# -- tallies ---------------------------------------------------------------------------------------


def tally(totals: Counter[str], rnd: Round, scenario: Scenario) -> None:
    totals["lives"] += rnd.lives
    totals["kills"] += rnd.kills
    totals["executions"] += sum(e.kind == "execute" for e in rnd.journal)
    totals["reverts"] += sum(e.kind == "revert" for e in rnd.journal)
    found = phases(rnd)
    skipped = {atom_name(i) for i in decider_layout(scenario.n).skipped}
    if scenario.kind != DECIDER:
        totals["repeated_starts"] += sum(e.kind == START for e in rnd.journal) - len(scenario.attempts)
    for snap in rnd.snapshots:
        totals[snap.how] += 1
        if not mid_run(snap):
            continue
        totals["mid_run"] += 1
        if scenario.kind == DECIDER:
            ignored = row(snap.store, next(iter(skipped))).state == "IGNORE"
            totals["after decision" if ignored else "before decision"] += 1
            continue
        index = phase_of(snap, found)
        if index >= 0:
            totals[f"{'revert' if found[index].reverting else 'attempt'} {index // 2 + 1}"] += 1
        if row(snap.store, scenario.flaky_name).state == "FAILURE":
            totals["resolving"] += 1  # the failure saved, its revert not started


def phase_names(scenario: Scenario) -> list[str]:
    if scenario.kind == DECIDER:
        return ["before decision", "after decision"]
    runs = len(scenario.attempts)
    reverts = runs if scenario.kind == FOR_EACH else runs - 1
    return [f"attempt {i}" for i in range(1, runs + 1)] + [f"revert {i}" for i in range(1, reverts + 1)]


def enough_kills(totals: Counter[str], scenario: Scenario, store: object) -> bool:
    if totals["mid_run"] < scaled(MIN_MID_RUN_KILLS, store):
        return False
    return all(totals[name] >= scaled(MIN_PHASE_KILLS, store) for name in phase_names(scenario))


def summary(totals: Counter[str], scenario: Scenario) -> str:
    t = totals
    per_phase = ", ".join(f"{name} {t[name]}" for name in phase_names(scenario))
    if scenario.kind != DECIDER:
        per_phase += f"; while a failure was being resolved {t['resolving']}"
    text = (
        f"resumes {t['lives']}, kills {t['kills']} (progress {t['progress']}, clock {t['clock']}, trigger "
        f"{t['trigger']}; mid-run {t['mid_run']}: {per_phase}); executions {t['executions']}, reverts {t['reverts']}"
    )
    if scenario.kind != DECIDER:
        text += f", attempts re-run after a kill {t['repeated_starts']}"
    return text


# -- the test --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_retries_and_deciders_survive_kills(tmp_path, durable_backend, scenario: Scenario) -> None:
    runner = CrashRunner(tmp_path, durable_backend, worker=WORKER)
    values = expected_values(semantic_inputs(scenario.kind, scenario.n))
    expected = {atom_name(i): value for i, value in enumerate(values)}
    if scenario.kind == DECIDER:
        # Kills right after the atom whose result the deciders read: around the decision.
        triggers: tuple[str, ...] = (f"execute {atom_name(decider_layout(scenario.n).head[-1])} ",)
    else:
        # Kills inside the flaky atom's execute (the attempt must run again, as itself), and right
        # after it (its failure saved, in the history too, while the retry decides).
        triggers = (f"{START} {scenario.flaky_name} ", f"execute {scenario.flaky_name} ")
    totals: Counter[str] = Counter()
    max_rounds = scaled(MAX_ROUNDS, durable_backend)
    for round_index in range(max_rounds):
        seed = scenario.seed + SEED_SHIFT + round_index
        rnd = runner.run_round(
            seed,
            scenario.kind,
            scenario.n,
            scenario.engine,
            fail_at=scenario.flaky,
            max_lines_per_life=scenario.max_lines_per_life,
            trigger_at=-1,
            progress_triggers=triggers,
        )
        check_values(rnd, scenario, expected)
        if scenario.kind == DECIDER:
            check_decider(rnd, scenario, expected)
        else:
            check_attempts(rnd, scenario)
            check_retry_snapshots(rnd, scenario)
            check_retry_journal(rnd, scenario)
            check_retry_final(rnd, scenario, expected)
        tally(totals, rnd, scenario)
        if enough_kills(totals, scenario, durable_backend):
            break
    print(f"\n[{durable_backend}-{scenario.id}] rounds {round_index + 1}: {summary(totals, scenario)}")
    assert enough_kills(totals, scenario, durable_backend), f"after {max_rounds} rounds: {summary(totals, scenario)}"
