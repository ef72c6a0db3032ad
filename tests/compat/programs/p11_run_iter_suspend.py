"""Driving ``run_iter()`` by hand: ``send(True)`` after the first task asks the engine to suspend, the flow
ends SUSPENDED with only that task done, and a later ``run()`` finishes the rest (and only the rest)."""

from taskflow import engines, flow, states, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

EXECUTED: list[str] = []
ENGINE_LOOP_STATES = {states.RESUMING, states.SCHEDULING, states.WAITING, states.ANALYZING}


class Migrate(task.Task):
    def execute(self, schema_version):
        EXECUTED.append(self.name)
        return f"{self.name}@{schema_version}"


def main() -> dict:
    migration = lf.Flow("migration").add(
        Migrate("add_column", provides="step1"),
        Migrate("backfill", provides="step2"),
        Migrate("drop_old", provides="step3"),
    )
    engine = engines.load(migration, store={"schema_version": 3})
    names = _observe.atom_names(migration, flow.Flow)
    yielded = []
    with capturing.CaptureListener(engine) as capture:
        runner = engine.run_iter()
        state = next(runner)
        suspend_asked = False
        while True:
            yielded.append(state)
            try:
                # Ask once the first task's SUCCESS has been notified, a point every engine must reach
                # between two tasks (when the task body ran is an engine detail).
                first_done = any(kind == "task" and st == states.SUCCESS for kind, st, _ in capture.values)
                if first_done and not suspend_asked:
                    suspend_asked = True
                    state = runner.send(True)
                else:
                    state = next(runner)
            except StopIteration:
                break
    after_suspend = {
        **_observe.final_state(engine, names, failure.Failure),
        "executed": list(EXECUTED),
        "events": _observe.events(capture.values, failure.Failure),
    }

    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        # How many loop states run_iter() yields between two tasks is an engine detail; the vocabulary
        # and the final SUSPENDED are the contract.
        "yielded_engine_states_only": set(yielded[:-1]) <= ENGINE_LOOP_STATES,
        "last_yielded_is_suspended": yielded[-1] == states.SUSPENDED,
        "after_suspend": after_suspend,
        **_observe.final_state(engine, names, failure.Failure),
        "executed": list(EXECUTED),
        "resumed_events": _observe.events(capture.values, failure.Failure),
    }


EXPECTED = {
    "yielded_engine_states_only": True,
    "last_yielded_is_suspended": True,
    "after_suspend": {
        "flow_state": "SUSPENDED",
        "atom_states": {"add_column": "SUCCESS", "backfill": "PENDING", "drop_old": "PENDING"},
        "intentions": {"add_column": "EXECUTE", "backfill": "EXECUTE", "drop_old": "EXECUTE"},
        "fetch_all": {"schema_version": 3, "step1": "add_column@3"},
        "executed": ["add_column"],
        "events": [
            "flow migration PENDING->RUNNING",
            "task add_column PENDING->RUNNING",
            "task add_column RUNNING->SUCCESS result='add_column@3'",
            "flow migration RUNNING->SUSPENDING",
            "flow migration SUSPENDING->SUSPENDED",
        ],
    },
    "flow_state": "SUCCESS",
    "atom_states": {"add_column": "SUCCESS", "backfill": "SUCCESS", "drop_old": "SUCCESS"},
    "fetch_all": {"schema_version": 3, "step1": "add_column@3", "step2": "backfill@3", "step3": "drop_old@3"},
    "executed": ["add_column", "backfill", "drop_old"],
    "resumed_events": [
        "flow migration SUSPENDED->RUNNING",
        "task backfill PENDING->RUNNING",
        "task backfill RUNNING->SUCCESS result='backfill@3'",
        "task drop_old PENDING->RUNNING",
        "task drop_old RUNNING->SUCCESS result='drop_old@3'",
        "flow migration RUNNING->SUCCESS",
    ],
}
