"""``Times(3)`` around a subflow whose task fails on its first two attempts and then succeeds.

Each failure is recorded in the retry's history, the subflow is reverted (newest first) and run again with
the retry's ``execute`` providing the attempt number (1, 2, 3); the tasks outside the subflow run once.
The retry goes SUCCESS -> RETRYING -> RUNNING between attempts, and the flow ends SUCCESS.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []
ATTEMPTS = {"flaky": 0}


class MirrorTimeout(Exception):
    pass


class Step(task.Task):
    def execute(self, attempt):
        JOURNAL.append(f"execute {self.name} attempt={attempt}")
        return f"{self.name}#{attempt}"

    def revert(self, attempt, result, flow_failures, **kwargs):
        JOURNAL.append(
            f"revert {self.name} attempt={attempt} result={_observe.describe(result, failure.Failure)} "
            f"flow_failures={sorted(flow_failures)}"
        )


class Flaky(Step):
    def execute(self, attempt):
        ATTEMPTS["flaky"] += 1
        JOURNAL.append(f"execute {self.name} attempt={attempt} call={ATTEMPTS['flaky']}")
        if ATTEMPTS["flaky"] < 3:
            raise MirrorTimeout(f"mirror timed out (call {ATTEMPTS['flaky']})")
        return f"{self.name}#{attempt}"


class Outside(task.Task):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        return self.name


def history_of(engine, name: str) -> dict:
    """A retry's history as plain data: its length, provided values and failures per attempt."""
    history = engine.storage.get_retry_history(name)
    return {
        "len": len(history),
        "provided": list(history.provided_iter()),
        "failures": [
            {atom: _observe.describe(fail, failure.Failure) for atom, fail in outcomes.items()}
            for _provided, outcomes in history
        ],
        "outcomes": sorted(atom for atom, _fail in history.outcomes_iter()),
        "caused_by_timeout": history.caused_by(MirrorTimeout),
        "caused_by_value_error": history.caused_by(ValueError),
        "own_failure": history.failure,
    }


def main() -> dict:
    install = lf.Flow("install", retry=retry.Times(3, name="install_retry", provides="attempt")).add(
        Step("fetch", provides="fetched"), Flaky("flaky", provides="unpacked")
    )
    deploy = lf.Flow("deploy").add(
        Outside("prepare", provides="prepare"), install, Outside("finish", provides="finish")
    )
    engine = engines.load(deploy)
    with capturing.CaptureListener(engine, capture_retry=True) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, ["install_retry", *_observe.atom_names(deploy, flow.Flow)], failure.Failure),
        "history": history_of(engine, "install_retry"),
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def _timeout(call: int) -> str:
    return (
        f"<Failure: p18_times_retry_succeeds.MirrorTimeout: mirror timed out (call {call}) "
        "types=['p18_times_retry_succeeds.MirrorTimeout', 'Exception']>"
    )


EXPECTED = {
    "flow_state": "SUCCESS",
    "atom_states": {
        "prepare": "SUCCESS",
        "install_retry": "SUCCESS",
        "fetch": "SUCCESS",
        "flaky": "SUCCESS",
        "finish": "SUCCESS",
    },
    "intentions": {
        "prepare": "EXECUTE",
        "install_retry": "EXECUTE",
        "fetch": "EXECUTE",
        "flaky": "EXECUTE",
        "finish": "EXECUTE",
    },
    "fetch_all": {"prepare": "prepare", "attempt": 3, "fetched": "fetch#3", "unpacked": "flaky#3", "finish": "finish"},
    "history": {
        "len": 3,
        "provided": [1, 2, 3],
        "failures": [{"flaky": _timeout(1)}, {"flaky": _timeout(2)}, {}],
        "outcomes": ["flaky", "flaky"],
        "caused_by_timeout": True,
        "caused_by_value_error": False,
        "own_failure": None,
    },
    "journal": [
        "execute prepare",
        "execute fetch attempt=1",
        "execute flaky attempt=1 call=1",
        f"revert flaky attempt=1 result={_timeout(1)} flow_failures=['flaky']",
        "revert fetch attempt=1 result='fetch#1' flow_failures=['flaky']",
        "execute fetch attempt=2",
        "execute flaky attempt=2 call=2",
        f"revert flaky attempt=2 result={_timeout(2)} flow_failures=['flaky']",
        "revert fetch attempt=2 result='fetch#2' flow_failures=['flaky']",
        "execute fetch attempt=3",
        "execute flaky attempt=3 call=3",
        "execute finish",
    ],
    "events": [
        "flow deploy PENDING->RUNNING",
        "task prepare PENDING->RUNNING",
        "task prepare RUNNING->SUCCESS result='prepare'",
        "retry install_retry PENDING->RUNNING",
        "retry install_retry RUNNING->SUCCESS result=1",
        "task fetch PENDING->RUNNING",
        "task fetch RUNNING->SUCCESS result='fetch#1'",
        "task flaky PENDING->RUNNING",
        f"task flaky RUNNING->FAILURE result={_timeout(1)}",
        "task flaky FAILURE->REVERTING",
        "task flaky REVERTING->REVERTED result=None",
        "task fetch SUCCESS->REVERTING",
        "task fetch REVERTING->REVERTED result=None",
        "retry install_retry SUCCESS->RETRYING",
        "task fetch REVERTED->PENDING",
        "task flaky REVERTED->PENDING",
        "retry install_retry RETRYING->RUNNING",
        "retry install_retry RUNNING->SUCCESS result=2",
        "task fetch PENDING->RUNNING",
        "task fetch RUNNING->SUCCESS result='fetch#2'",
        "task flaky PENDING->RUNNING",
        f"task flaky RUNNING->FAILURE result={_timeout(2)}",
        "task flaky FAILURE->REVERTING",
        "task flaky REVERTING->REVERTED result=None",
        "task fetch SUCCESS->REVERTING",
        "task fetch REVERTING->REVERTED result=None",
        "retry install_retry SUCCESS->RETRYING",
        "task fetch REVERTED->PENDING",
        "task flaky REVERTED->PENDING",
        "retry install_retry RETRYING->RUNNING",
        "retry install_retry RUNNING->SUCCESS result=3",
        "task fetch PENDING->RUNNING",
        "task fetch RUNNING->SUCCESS result='fetch#3'",
        "task flaky PENDING->RUNNING",
        "task flaky RUNNING->SUCCESS result='flaky#3'",
        "task finish PENDING->RUNNING",
        "task finish RUNNING->SUCCESS result='finish'",
        "flow deploy RUNNING->SUCCESS",
    ],
}
