"""A decider on a graph-flow link whose target is a nested *flow* applies to the atoms that start that flow.

- ``gate -> batch`` (an unordered flow of two tasks), decider True: the decider is asked once per starting
  atom of ``batch`` (both run), each time with ``gate``'s result.
- ``gate -> cleanup`` (a linear flow), decider False at the default depth ALL: every atom of ``cleanup``
  and everything after it is IGNOREd.
- ``gate -> rollout`` (a linear flow with its own ``Times`` retry), decider False at depth ATOM: only the
  atom that starts ``rollout`` (its retry) is IGNOREd; the tasks inside still run.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []
DECIDED: list[str] = []


class Step(task.Task):
    def execute(self):
        JOURNAL.append(self.name)
        return self.name


class Gate(task.Task):
    def execute(self):
        JOURNAL.append(self.name)
        return {"batch": True, "cleanup": False, "rollout": False}


def decider(label: str):
    def decide(history):
        answer = history["gate"][label]
        DECIDED.append(f"{label}: {sorted(history)} -> {answer}")
        return answer

    return decide


def _depth_text(depth) -> str | None:
    return None if depth is None else f"{type(depth).__name__}.{depth}"


def main() -> dict:
    gate = Gate("gate", provides="verdicts")
    batch = uf.Flow("batch").add(Step("batch_a"), Step("batch_b"))
    cleanup = lf.Flow("cleanup").add(Step("cleanup_1"), Step("cleanup_2"))
    rollout = lf.Flow("rollout", retry=retry.Times(2, name="rollout_retry", provides="attempt")).add(
        Step("rollout_1"), Step("rollout_2")
    )
    after_cleanup = Step("after_cleanup")
    plan = gf.Flow("plan").add(gate, batch, cleanup, rollout, after_cleanup)
    plan.link(gate, batch, decider=decider("batch"))
    plan.link(gate, cleanup, decider=decider("cleanup"))
    plan.link(cleanup, after_cleanup)
    plan.link(gate, rollout, decider=decider("rollout"), decider_depth="ATOM")
    engine = engines.load(plan)
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    names = ["rollout_retry", *_observe.atom_names(plan, flow.Flow)]
    return {
        **_observe.final_state(engine, names, failure.Failure),
        "link_meta": [
            (source, target, _depth_text(meta.get("decider_depth")), "decider" in meta)
            for source, target, meta in _observe.links(plan)
        ],
        "decided": list(DECIDED),
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


# The nested flows are independent of each other: calls are compared as sets, notifications per atom.
COMPARE_AS = {"decided": "multiset", "journal": "multiset", "events": "per_atom"}

EXPECTED = {
    "flow_state": "SUCCESS",
    "atom_states": {
        "gate": "SUCCESS",
        "batch_a": "SUCCESS",
        "batch_b": "SUCCESS",
        "cleanup_1": "IGNORE",
        "cleanup_2": "IGNORE",
        "after_cleanup": "IGNORE",
        "rollout_retry": "IGNORE",
        "rollout_1": "SUCCESS",
        "rollout_2": "SUCCESS",
    },
    "intentions": {
        "gate": "EXECUTE",
        "batch_a": "EXECUTE",
        "batch_b": "EXECUTE",
        "cleanup_1": "IGNORE",
        "cleanup_2": "IGNORE",
        "after_cleanup": "IGNORE",
        "rollout_retry": "IGNORE",
        "rollout_1": "EXECUTE",
        "rollout_2": "EXECUTE",
    },
    "fetch_all": {"verdicts": {"batch": True, "cleanup": False, "rollout": False}},
    # a depth given as a string is stored translated (a Depth member); no depth given stays None
    "link_meta": [
        ("cleanup", "after_cleanup", None, False),
        ("gate", "batch", None, True),
        ("gate", "cleanup", None, True),
        ("gate", "rollout", "Depth.ATOM", True),
    ],
    "decided": [
        "batch: ['gate'] -> True",
        "batch: ['gate'] -> True",
        "cleanup: ['gate'] -> False",
        "rollout: ['gate'] -> False",
    ],
    "journal": ["gate", "batch_a", "batch_b", "rollout_1", "rollout_2"],
    "events": [
        "flow plan PENDING->RUNNING",
        "task gate PENDING->RUNNING",
        "task gate RUNNING->SUCCESS result={'batch': True, 'cleanup': False, 'rollout': False}",
        "task batch_a PENDING->RUNNING",
        "task batch_a RUNNING->SUCCESS result='batch_a'",
        "task batch_b PENDING->RUNNING",
        "task batch_b RUNNING->SUCCESS result='batch_b'",
        "task cleanup_1 PENDING->IGNORE",
        "task cleanup_2 PENDING->IGNORE",
        "task after_cleanup PENDING->IGNORE",
        "retry rollout_retry PENDING->IGNORE",
        "task rollout_1 PENDING->RUNNING",
        "task rollout_1 RUNNING->SUCCESS result='rollout_1'",
        "task rollout_2 PENDING->RUNNING",
        "task rollout_2 RUNNING->SUCCESS result='rollout_2'",
        "flow plan RUNNING->SUCCESS",
    ],
}
