"""The crash scenarios of `test_crash_recovery` on the SQLite store with ``durability=batch``.

Every check of those tests holds as it is: a kill loses only the open group of transitions, so
what the store holds after a kill is a state it passed through (never ahead of the journal, never
losing what was committed) and the file stays whole. On top, the bound the mode documents on what
a kill makes run again: an atom whose execute (revert) was journaled in the killed life but whose
outcome the store does not hold runs again. Each such atom has a row in the lost group
(`store_cases.BATCH_ROWS` rows at most) or was still in flight (one atom for the serial engine,
``MAX_WORKERS`` for the parallel one). Reverts run again in their order, so the reverse order
holds within each life: a dependent reverted again after a kill may come after what it depends
on was reverted before the kill.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from store_cases import BATCH_ROWS, BATCH_SQLITE

from .conftest import CrashRunner, Round
from .flows import atom_inputs, atom_name, expected_values
from .test_crash_recovery import (
    MAX_ROUNDS,
    N_ATOMS,
    SCENARIOS,
    SEED_SHIFT,
    Scenario,
    check_common,
    check_revert,
    check_success,
    enough_kills,
    summary,
    tally,
)
from .worker import MAX_WORKERS

pytestmark = pytest.mark.timeout(600)

#: Outcomes a saved row holds once an execute (a revert) is recorded.
_EXECUTED = frozenset({"SUCCESS", "FAILURE", "REVERTING", "REVERTED", "REVERT_FAILURE"})
_REVERTED = frozenset({"REVERTED", "REVERT_FAILURE"})


def lost_per_kill(rnd: Round) -> list[int]:
    """For each kill, the atoms journaled in the killed life whose outcome the store lacks."""
    lost = []
    for snap in rnd.snapshots:
        life = rnd.journal[snap.offset - snap.journaled_this_life : snap.offset]
        atoms = snap.store.atoms
        unsaved = {
            (entry.kind, entry.name)
            for entry in life
            if (entry.kind == "execute" and atoms[entry.name].state not in _EXECUTED)
            or (entry.kind == "revert" and atoms[entry.name].state not in _REVERTED)
        }
        lost.append(len(unsaved))
    return lost


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_a_killed_batch_engine_resumes_rerunning_at_most_one_group(tmp_path: Path, scenario: Scenario) -> None:
    runner = CrashRunner(tmp_path, BATCH_SQLITE)
    in_flight = MAX_WORKERS if scenario.engine == "parallel" else 1
    totals: Counter[str] = Counter()
    worst = 0
    for round_index in range(MAX_ROUNDS):
        seed = scenario.seed + SEED_SHIFT + round_index
        inputs = atom_inputs(scenario.kind, N_ATOMS, seed)
        expected = {atom_name(i): value for i, value in enumerate(expected_values(inputs))}
        rnd = runner.run_round(seed, scenario.kind, N_ATOMS, scenario.engine, fail_at=scenario.fail_at)
        check_common(rnd, scenario, expected)
        if scenario.reverts:
            check_revert(rnd, scenario, inputs, strict_order=False)
        else:
            check_success(rnd, expected)
        lost = lost_per_kill(rnd)
        assert all(n <= BATCH_ROWS + in_flight for n in lost), (
            f"a kill lost more than one group of {BATCH_ROWS} rows plus {in_flight} in flight: {lost} (seed {seed})"
        )
        worst = max([worst, *lost])
        tally(totals, rnd)
        if enough_kills(totals, scenario, BATCH_SQLITE):
            break
    print(f"\n[{BATCH_SQLITE}-{scenario.id}] rounds {round_index + 1}: {summary(totals)}; most lost by a kill {worst}")
    assert enough_kills(totals, scenario, BATCH_SQLITE), f"only {totals['mid_run']} kills landed mid-run"
