"""``Times(2)`` runs out of attempts: the subflow and its retry are reverted and ``run()`` re-raises the
original exception.

With the default ``revert_all=False`` the decision is REVERT: with no enclosing retry only the retry's own
subflow (and the retry) is reverted, while the task before it keeps its SUCCESS; every atom after the retry
(the task after the subflow too) gets the REVERT intention. With ``revert_all=True`` the decision is
REVERT_ALL and every atom that ran is reverted. Both runs end REVERTED, and a REVERTED retry's history is
emptied.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


class RegistryDown(Exception):
    pass


class Step(task.Task):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        return self.name

    def revert(self, result, flow_failures, **kwargs):
        JOURNAL.append(
            f"revert {self.name} result={_observe.describe(result, failure.Failure)} "
            f"flow_failures={sorted(flow_failures)}"
        )


class Push(Step):
    def execute(self, attempt):
        JOURNAL.append(f"execute {self.name} attempt={attempt}")
        raise RegistryDown(f"registry down on attempt {attempt}")


class CountingTimes(retry.Times):
    """Times that also journals its revert (what it is handed)."""

    def revert(self, history, *args, **kwargs):
        JOURNAL.append(f"revert {self.name} history_len={len(history)} flow_failures={sorted(kwargs['flow_failures'])}")


def scenario(revert_all: bool) -> dict:
    JOURNAL.clear()
    upload_retry = CountingTimes(2, name="upload_retry", provides="attempt", revert_all=revert_all)
    upload = lf.Flow("upload", retry=upload_retry).add(Step("stage", provides="staged"), Push("push"))
    release = lf.Flow("release").add(Step("announce", provides="announced"), upload, Step("notify"))
    engine = engines.load(release)
    with capturing.CaptureListener(engine) as capture:
        try:
            engine.run()
        except Exception as exc:
            raised = _observe.caught(exc, failure.Failure)
            raised["is_registry_down"] = isinstance(exc, RegistryDown)
        else:
            raised = None
    history = engine.storage.get_retry_history("upload_retry")
    return {
        **_observe.final_state(engine, ["upload_retry", *_observe.atom_names(release, flow.Flow)], failure.Failure),
        "raised": raised,
        "history_len_after": len(history),
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def main() -> dict:
    observed = {}
    for label, revert_all in (("revert", False), ("revert_all", True)):
        observed.update({f"{label}/{field}": value for field, value in scenario(revert_all).items()})
    return observed


def _down(attempt: int) -> str:
    return (
        f"<Failure: p19_times_exhausted_reverts.RegistryDown: registry down on attempt {attempt} "
        "types=['p19_times_exhausted_reverts.RegistryDown', 'Exception']>"
    )


_ATTEMPTS = [
    "flow release PENDING->RUNNING",
    "task announce PENDING->RUNNING",
    "task announce RUNNING->SUCCESS result='announce'",
    "retry upload_retry PENDING->RUNNING",
    "retry upload_retry RUNNING->SUCCESS result=1",
    "task stage PENDING->RUNNING",
    "task stage RUNNING->SUCCESS result='stage'",
    "task push PENDING->RUNNING",
    f"task push RUNNING->FAILURE result={_down(1)}",
    "task push FAILURE->REVERTING",
    "task push REVERTING->REVERTED result=None",
    "task stage SUCCESS->REVERTING",
    "task stage REVERTING->REVERTED result=None",
    "retry upload_retry SUCCESS->RETRYING",
    "task stage REVERTED->PENDING",
    "task push REVERTED->PENDING",
    "retry upload_retry RETRYING->RUNNING",
    "retry upload_retry RUNNING->SUCCESS result=2",
    "task stage PENDING->RUNNING",
    "task stage RUNNING->SUCCESS result='stage'",
    "task push PENDING->RUNNING",
    f"task push RUNNING->FAILURE result={_down(2)}",
    "task push FAILURE->REVERTING",
    "task push REVERTING->REVERTED result=None",
    "task stage SUCCESS->REVERTING",
    "task stage REVERTING->REVERTED result=None",
    "retry upload_retry SUCCESS->REVERTING",
    "retry upload_retry REVERTING->REVERTED result=None",
]
_JOURNAL_ATTEMPTS = [
    "execute announce",
    "execute stage",
    "execute push attempt=1",
    f"revert push result={_down(1)} flow_failures=['push']",
    "revert stage result='stage' flow_failures=['push']",
    "execute stage",
    "execute push attempt=2",
    f"revert push result={_down(2)} flow_failures=['push']",
    "revert stage result='stage' flow_failures=['push']",
    "revert upload_retry history_len=2 flow_failures=['push']",
]
_RAISED = {
    "type": "RegistryDown",
    "message": "registry down on attempt 2",
    "is_registry_down": True,
}

_BY_SCENARIO = {
    "revert": {
        "flow_state": "REVERTED",
        "atom_states": {
            "announce": "SUCCESS",
            "upload_retry": "REVERTED",
            "stage": "REVERTED",
            "push": "REVERTED",
            "notify": "PENDING",
        },
        "intentions": {
            "announce": "EXECUTE",
            "upload_retry": "REVERT",
            "stage": "REVERT",
            "push": "REVERT",
            # the REVERT resolver marks every successor of the retry, the task after the subflow too
            "notify": "REVERT",
        },
        "fetch_all": {"announced": "announce"},
        "raised": _RAISED,
        # a REVERTED retry's history is cleaned up
        "history_len_after": 0,
        "journal": _JOURNAL_ATTEMPTS,
        "events": [*_ATTEMPTS, "flow release RUNNING->REVERTED"],
    },
    "revert_all": {
        "flow_state": "REVERTED",
        "atom_states": {
            "announce": "REVERTED",
            "upload_retry": "REVERTED",
            "stage": "REVERTED",
            "push": "REVERTED",
            "notify": "PENDING",
        },
        "intentions": {
            "announce": "REVERT",
            "upload_retry": "REVERT",
            "stage": "REVERT",
            "push": "REVERT",
            "notify": "REVERT",
        },
        "fetch_all": {},
        "raised": _RAISED,
        "history_len_after": 0,
        "journal": [*_JOURNAL_ATTEMPTS, "revert announce result='announce' flow_failures=['push']"],
        "events": [
            *_ATTEMPTS,
            "task announce SUCCESS->REVERTING",
            "task announce REVERTING->REVERTED result=None",
            "flow release RUNNING->REVERTED",
        ],
    },
}

EXPECTED = {f"{label}/{field}": value for label, fields in _BY_SCENARIO.items() for field, value in fields.items()}
