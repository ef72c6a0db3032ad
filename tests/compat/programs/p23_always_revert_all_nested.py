"""``AlwaysRevertAll`` on an inner flow nested in an outer flow retried by ``Times(3)``.

REVERT_ALL does not consult the outer retry at all (its ``on_failure`` is never called and it never
retries): on the first failure every atom that ran is reverted, with or without ``defer_reverts``.
Atoms that never ran get the REVERT intention and stay PENDING.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


class DiskFull(Exception):
    pass


class Step(task.Task):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        return self.name

    def revert(self, result, flow_failures, **kwargs):
        JOURNAL.append(f"revert {self.name} flow_failures={sorted(flow_failures)}")


class WriteDisk(Step):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        raise DiskFull("disk full")


class OuterTimes(retry.Times):
    def on_failure(self, history, *args, **kwargs):
        decision = super().on_failure(history, *args, **kwargs)
        JOURNAL.append(f"on_failure {self.name} -> {decision}")
        return decision

    def revert(self, history, *args, **kwargs):
        JOURNAL.append(f"revert {self.name} history_len={len(history)} flow_failures={sorted(kwargs['flow_failures'])}")


class InnerRevertAll(retry.AlwaysRevertAll):
    def on_failure(self, history, *args, **kwargs):
        decision = super().on_failure(history=history)
        JOURNAL.append(f"on_failure {self.name} failed={[sorted(outcomes) for _p, outcomes in history]} -> {decision}")
        return decision


def scenario(defer_reverts: bool) -> dict:
    JOURNAL.clear()
    inner = lf.Flow("inner", retry=InnerRevertAll(name="inner_retry")).add(Step("format"), WriteDisk("write"))
    outer = lf.Flow("outer", retry=OuterTimes(3, name="outer_retry")).add(Step("mount"), inner, Step("unmount"))
    root = lf.Flow("root").add(Step("lock"), outer, Step("unlock"))
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
    return {
        **state,
        "outer_history_len": len(engine.storage.get_retry_history("outer_retry")),
        "raised": raised,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def main() -> dict:
    observed = {}
    for label, defer in (("default", False), ("defer_reverts", True)):
        observed.update({f"{label}/{field}": value for field, value in scenario(defer).items()})
    return observed


_DISK_FULL = (
    "<Failure: p23_always_revert_all_nested.DiskFull: disk full "
    "types=['p23_always_revert_all_nested.DiskFull', 'Exception']>"
)

_EXPECTED_ONE = {
    "flow_state": "REVERTED",
    "atom_states": {
        "lock": "REVERTED",
        "outer_retry": "REVERTED",
        "mount": "REVERTED",
        "inner_retry": "REVERTED",
        "format": "REVERTED",
        "write": "REVERTED",
        "unmount": "PENDING",
        "unlock": "PENDING",
    },
    "intentions": {
        "lock": "REVERT",
        "outer_retry": "REVERT",
        "mount": "REVERT",
        "inner_retry": "REVERT",
        "format": "REVERT",
        "write": "REVERT",
        "unmount": "REVERT",
        "unlock": "REVERT",
    },
    "fetch_all": {},
    # the outer retry never saw the failure, and a REVERTED retry's history is cleaned up anyway
    "outer_history_len": 0,
    "raised": {"type": "DiskFull", "message": "disk full"},
    "journal": [
        "execute lock",
        "execute mount",
        "execute format",
        "execute write",
        "on_failure inner_retry failed=[['write']] -> REVERT_ALL",
        "revert write flow_failures=['write']",
        "revert format flow_failures=['write']",
        "revert mount flow_failures=['write']",
        "revert outer_retry history_len=1 flow_failures=['write']",
        "revert lock flow_failures=['write']",
    ],
    "events": [
        "flow root PENDING->RUNNING",
        "task lock PENDING->RUNNING",
        "task lock RUNNING->SUCCESS result='lock'",
        "retry outer_retry PENDING->RUNNING",
        "retry outer_retry RUNNING->SUCCESS result=1",
        "task mount PENDING->RUNNING",
        "task mount RUNNING->SUCCESS result='mount'",
        "retry inner_retry PENDING->RUNNING",
        "retry inner_retry RUNNING->SUCCESS result=None",
        "task format PENDING->RUNNING",
        "task format RUNNING->SUCCESS result='format'",
        "task write PENDING->RUNNING",
        f"task write RUNNING->FAILURE result={_DISK_FULL}",
        "task write FAILURE->REVERTING",
        "task write REVERTING->REVERTED result=None",
        "task format SUCCESS->REVERTING",
        "task format REVERTING->REVERTED result=None",
        "retry inner_retry SUCCESS->REVERTING",
        "retry inner_retry REVERTING->REVERTED result=None",
        "task mount SUCCESS->REVERTING",
        "task mount REVERTING->REVERTED result=None",
        "retry outer_retry SUCCESS->REVERTING",
        "retry outer_retry REVERTING->REVERTED result=None",
        "task lock SUCCESS->REVERTING",
        "task lock REVERTING->REVERTED result=None",
        "flow root RUNNING->REVERTED",
    ],
}

EXPECTED = {
    f"{label}/{field}": value for label in ("default", "defer_reverts") for field, value in _EXPECTED_ONE.items()
}
