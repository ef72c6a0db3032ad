"""Nested retries: ``Times(2)`` on an inner flow inside an outer flow with its own ``Times(2)``.

The task fails on its first three calls. The inner retry retries once; when it is exhausted its REVERT is
passed up and the outer retry (with attempts left) answers RETRY: the whole outer flow, the inner retry
included, is reverted and run again. The inner retry starts over with a fresh history (attempt 1 again),
and the fourth call succeeds.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []
CALLS = {"connect": 0}


class Refused(Exception):
    pass


class Prepare(task.Task):
    def execute(self, outer_attempt):
        JOURNAL.append(f"execute {self.name} outer={outer_attempt}")
        return f"conf#{outer_attempt}"

    def revert(self, outer_attempt, **kwargs):
        JOURNAL.append(f"revert {self.name} outer={outer_attempt}")


class Connect(task.Task):
    def execute(self, outer_attempt, inner_attempt, config):
        CALLS["connect"] += 1
        JOURNAL.append(f"execute {self.name} outer={outer_attempt} inner={inner_attempt} config={config}")
        if CALLS["connect"] < 4:
            raise Refused(f"refused (call {CALLS['connect']})")
        return f"conn {outer_attempt}.{inner_attempt}"

    def revert(self, outer_attempt, inner_attempt, **kwargs):
        JOURNAL.append(f"revert {self.name} outer={outer_attempt} inner={inner_attempt}")


class LoggedTimes(retry.Times):
    def on_failure(self, history, *args, **kwargs):
        decision = super().on_failure(history, *args, **kwargs)
        failed = [(provided, sorted(outcomes)) for provided, outcomes in history]
        JOURNAL.append(f"on_failure {self.name} history={failed} -> {decision}")
        return decision

    def revert(self, history, *args, **kwargs):
        JOURNAL.append(f"revert {self.name} history_len={len(history)}")


def _history(engine, name: str) -> list:
    return [
        (provided, {atom: fail.exception_str for atom, fail in outcomes.items()})
        for provided, outcomes in engine.storage.get_retry_history(name)
    ]


def main() -> dict:
    inner = lf.Flow("inner", retry=LoggedTimes(2, name="inner_retry", provides="inner_attempt")).add(
        Connect("connect", provides="connection")
    )
    outer = lf.Flow("outer", retry=LoggedTimes(2, name="outer_retry", provides="outer_attempt")).add(
        Prepare("prepare", provides="config"), inner
    )
    engine = engines.load(outer)
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    names = ["outer_retry", "inner_retry", *_observe.atom_names(outer, flow.Flow)]
    return {
        **_observe.final_state(engine, names, failure.Failure),
        "outer_history": _history(engine, "outer_retry"),
        "inner_history": _history(engine, "inner_retry"),
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def _refused(call: int) -> str:
    return f"<Failure: p24_nested_times.Refused: refused (call {call}) types=['p24_nested_times.Refused', 'Exception']>"


EXPECTED = {
    "flow_state": "SUCCESS",
    "atom_states": {"outer_retry": "SUCCESS", "inner_retry": "SUCCESS", "prepare": "SUCCESS", "connect": "SUCCESS"},
    "intentions": {"outer_retry": "EXECUTE", "inner_retry": "EXECUTE", "prepare": "EXECUTE", "connect": "EXECUTE"},
    "fetch_all": {"outer_attempt": 2, "config": "conf#2", "inner_attempt": 2, "connection": "conn 2.2"},
    # the outer retry recorded the exhausted inner retry (not the task) as the failed atom
    "outer_history": [(1, {"inner_retry": "refused (call 2)"}), (2, {})],
    "inner_history": [(1, {"connect": "refused (call 3)"}), (2, {})],
    "journal": [
        "execute prepare outer=1",
        "execute connect outer=1 inner=1 config=conf#1",
        "on_failure inner_retry history=[(1, ['connect'])] -> RETRY",
        "revert connect outer=1 inner=1",
        "execute connect outer=1 inner=2 config=conf#1",
        "on_failure inner_retry history=[(1, ['connect']), (2, ['connect'])] -> REVERT",
        "on_failure outer_retry history=[(1, ['inner_retry'])] -> RETRY",
        "revert connect outer=1 inner=2",
        "revert inner_retry history_len=2",
        "revert prepare outer=1",
        "execute prepare outer=2",
        "execute connect outer=2 inner=1 config=conf#2",
        "on_failure inner_retry history=[(1, ['connect'])] -> RETRY",
        "revert connect outer=2 inner=1",
        "execute connect outer=2 inner=2 config=conf#2",
    ],
    "events": [
        "flow outer PENDING->RUNNING",
        "retry outer_retry PENDING->RUNNING",
        "retry outer_retry RUNNING->SUCCESS result=1",
        "task prepare PENDING->RUNNING",
        "task prepare RUNNING->SUCCESS result='conf#1'",
        "retry inner_retry PENDING->RUNNING",
        "retry inner_retry RUNNING->SUCCESS result=1",
        "task connect PENDING->RUNNING",
        f"task connect RUNNING->FAILURE result={_refused(1)}",
        "task connect FAILURE->REVERTING",
        "task connect REVERTING->REVERTED result=None",
        "retry inner_retry SUCCESS->RETRYING",
        "task connect REVERTED->PENDING",
        "retry inner_retry RETRYING->RUNNING",
        "retry inner_retry RUNNING->SUCCESS result=2",
        "task connect PENDING->RUNNING",
        f"task connect RUNNING->FAILURE result={_refused(2)}",
        "task connect FAILURE->REVERTING",
        "task connect REVERTING->REVERTED result=None",
        "retry inner_retry SUCCESS->REVERTING",
        "retry inner_retry REVERTING->REVERTED result=None",
        "task prepare SUCCESS->REVERTING",
        "task prepare REVERTING->REVERTED result=None",
        "retry outer_retry SUCCESS->RETRYING",
        "task prepare REVERTED->PENDING",
        "retry inner_retry REVERTED->PENDING",
        "task connect REVERTED->PENDING",
        "retry outer_retry RETRYING->RUNNING",
        "retry outer_retry RUNNING->SUCCESS result=2",
        "task prepare PENDING->RUNNING",
        "task prepare RUNNING->SUCCESS result='conf#2'",
        "retry inner_retry PENDING->RUNNING",
        "retry inner_retry RUNNING->SUCCESS result=1",
        "task connect PENDING->RUNNING",
        f"task connect RUNNING->FAILURE result={_refused(3)}",
        "task connect FAILURE->REVERTING",
        "task connect REVERTING->REVERTED result=None",
        "retry inner_retry SUCCESS->RETRYING",
        "task connect REVERTED->PENDING",
        "retry inner_retry RETRYING->RUNNING",
        "retry inner_retry RUNNING->SUCCESS result=2",
        "task connect PENDING->RUNNING",
        "task connect RUNNING->SUCCESS result='conn 2.2'",
        "flow outer RUNNING->SUCCESS",
    ],
}
