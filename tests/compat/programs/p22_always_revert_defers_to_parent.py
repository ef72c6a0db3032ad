"""``AlwaysRevert`` on an inner flow nested in an outer flow retried by ``Times(2)``.

The inner retry answers REVERT, so the engine asks the outer retry. While the outer ``Times`` still has
attempts, its RETRY wins and the whole outer flow runs again. Once it is exhausted it answers REVERT too:
- by default (``defer_reverts=False``) a parent's REVERT is not followed, so only the inner flow (and its
  retry) is reverted; the outer retry and the outer tasks keep SUCCESS;
- with the engine option ``defer_reverts=True`` the inner flow follows the outer retry, which follows its
  own parent (none: revert everything), so every atom that ran is reverted.

The outer retry's history records each failure under the name of the inner *retry* that passed it up.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


class QuotaExceeded(Exception):
    pass


class Step(task.Task):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        return self.name

    def revert(self, result, **kwargs):
        JOURNAL.append(f"revert {self.name}")


class Allocate(Step):
    def execute(self, attempt):
        JOURNAL.append(f"execute {self.name} attempt={attempt}")
        raise QuotaExceeded(f"quota exceeded on attempt {attempt}")


class OuterTimes(retry.Times):
    def on_failure(self, history, *args, **kwargs):
        decision = super().on_failure(history, *args, **kwargs)
        failed = [sorted(outcomes) for _provided, outcomes in history]
        JOURNAL.append(f"on_failure {self.name} provided={list(history.provided_iter())} failed={failed} -> {decision}")
        return decision


class InnerAlwaysRevert(retry.AlwaysRevert):
    def on_failure(self, history, *args, **kwargs):
        decision = super().on_failure(history, *args, **kwargs)
        failed = [sorted(outcomes) for _provided, outcomes in history]
        JOURNAL.append(f"on_failure {self.name} provided={list(history.provided_iter())} failed={failed} -> {decision}")
        return decision


def scenario(defer_reverts: bool) -> dict:
    JOURNAL.clear()
    inner = lf.Flow("inner", retry=InnerAlwaysRevert(name="inner_retry")).add(Allocate("allocate"))
    outer = lf.Flow("outer", retry=OuterTimes(2, name="outer_retry", provides="attempt")).add(Step("setup"), inner)
    root = lf.Flow("root").add(Step("before"), outer)
    engine = engines.load(root, defer_reverts=defer_reverts)
    with capturing.CaptureListener(engine) as capture:
        try:
            engine.run()
        except Exception as exc:
            raised = _observe.caught(exc, failure.Failure)
        else:
            raised = None
    names = ["outer_retry", "inner_retry", *_observe.atom_names(root, flow.Flow)]
    state = _observe.final_state(engine, names, failure.Failure)
    del state["fetch_all"]  # the failure under 'allocate' shows no provides here; states say enough
    return {
        **state,
        "raised": raised,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def main() -> dict:
    observed = {}
    for label, defer in (("default", False), ("defer_reverts", True)):
        observed.update({f"{label}/{field}": value for field, value in scenario(defer).items()})
    return observed


def _quota(attempt: int) -> str:
    return (
        f"<Failure: p22_always_revert_defers_to_parent.QuotaExceeded: quota exceeded on attempt {attempt} "
        "types=['p22_always_revert_defers_to_parent.QuotaExceeded', 'Exception']>"
    )


_JOURNAL_BOTH = [
    "execute before",
    "execute setup",
    "execute allocate attempt=1",
    "on_failure inner_retry provided=[None] failed=[['allocate']] -> REVERT",
    "on_failure outer_retry provided=[1] failed=[['inner_retry']] -> RETRY",
    "revert allocate",
    "revert setup",
    "execute setup",
    "execute allocate attempt=2",
    "on_failure inner_retry provided=[None] failed=[['allocate']] -> REVERT",
    "on_failure outer_retry provided=[1, 2] failed=[['inner_retry'], ['inner_retry']] -> REVERT",
    "revert allocate",
]
_EVENTS_BOTH = [
    "flow root PENDING->RUNNING",
    "task before PENDING->RUNNING",
    "task before RUNNING->SUCCESS result='before'",
    "retry outer_retry PENDING->RUNNING",
    "retry outer_retry RUNNING->SUCCESS result=1",
    "task setup PENDING->RUNNING",
    "task setup RUNNING->SUCCESS result='setup'",
    "retry inner_retry PENDING->RUNNING",
    "retry inner_retry RUNNING->SUCCESS result=None",
    "task allocate PENDING->RUNNING",
    f"task allocate RUNNING->FAILURE result={_quota(1)}",
    "task allocate FAILURE->REVERTING",
    "task allocate REVERTING->REVERTED result=None",
    "retry inner_retry SUCCESS->REVERTING",
    "retry inner_retry REVERTING->REVERTED result=None",
    "task setup SUCCESS->REVERTING",
    "task setup REVERTING->REVERTED result=None",
    "retry outer_retry SUCCESS->RETRYING",
    "task setup REVERTED->PENDING",
    "retry inner_retry REVERTED->PENDING",
    "task allocate REVERTED->PENDING",
    "retry outer_retry RETRYING->RUNNING",
    "retry outer_retry RUNNING->SUCCESS result=2",
    "task setup PENDING->RUNNING",
    "task setup RUNNING->SUCCESS result='setup'",
    "retry inner_retry PENDING->RUNNING",
    "retry inner_retry RUNNING->SUCCESS result=None",
    "task allocate PENDING->RUNNING",
    f"task allocate RUNNING->FAILURE result={_quota(2)}",
    "task allocate FAILURE->REVERTING",
    "task allocate REVERTING->REVERTED result=None",
    "retry inner_retry SUCCESS->REVERTING",
    "retry inner_retry REVERTING->REVERTED result=None",
]
_RAISED = {"type": "QuotaExceeded", "message": "quota exceeded on attempt 2"}

_BY_SCENARIO = {
    "default": {
        "flow_state": "REVERTED",
        "atom_states": {
            "before": "SUCCESS",
            "outer_retry": "SUCCESS",
            "setup": "SUCCESS",
            "inner_retry": "REVERTED",
            "allocate": "REVERTED",
        },
        "intentions": {
            "before": "EXECUTE",
            "outer_retry": "EXECUTE",
            "setup": "EXECUTE",
            "inner_retry": "REVERT",
            "allocate": "REVERT",
        },
        "raised": _RAISED,
        "journal": _JOURNAL_BOTH,
        "events": [*_EVENTS_BOTH, "flow root RUNNING->REVERTED"],
    },
    "defer_reverts": {
        "flow_state": "REVERTED",
        "atom_states": {
            "before": "REVERTED",
            "outer_retry": "REVERTED",
            "setup": "REVERTED",
            "inner_retry": "REVERTED",
            "allocate": "REVERTED",
        },
        "intentions": {
            "before": "REVERT",
            "outer_retry": "REVERT",
            "setup": "REVERT",
            "inner_retry": "REVERT",
            "allocate": "REVERT",
        },
        "raised": _RAISED,
        "journal": [*_JOURNAL_BOTH, "revert setup", "revert before"],
        "events": [
            *_EVENTS_BOTH,
            "task setup SUCCESS->REVERTING",
            "task setup REVERTING->REVERTED result=None",
            "retry outer_retry SUCCESS->REVERTING",
            "retry outer_retry REVERTING->REVERTED result=None",
            "task before SUCCESS->REVERTING",
            "task before REVERTING->REVERTED result=None",
            "flow root RUNNING->REVERTED",
        ],
    },
}

EXPECTED = {f"{label}/{field}": value for label, fields in _BY_SCENARIO.items() for field, value in fields.items()}
