"""An unordered flow of independent tasks (each reads its own input through a positional rebind)."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import unordered_flow as uf
from taskflow.types import failure

from . import _observe

EXECUTED: list[str] = []


class Square(task.Task):
    def execute(self, value):
        EXECUTED.append(self.name)
        return value * value


def main() -> dict:
    squares = uf.Flow("squares").add(
        *(Square(f"square_{n}", provides=f"sq_{n}", rebind=[f"n{n}"]) for n in range(1, 5))
    )
    engine = engines.load(squares, store={f"n{n}": n + 10 for n in range(1, 5)})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, _observe.atom_names(squares, flow.Flow), failure.Failure),
        "flow_requires": sorted(squares.requires),
        "links": list(squares.iter_links()),
        "executed": list(EXECUTED),
        "events": _observe.events(capture.values, failure.Failure),
    }


# Unordered siblings have no defined execution order: even TaskFlow's serial engine runs them in an order
# that changes from one run to the next (it schedules from a set; it also moves every ready sibling to
# RUNNING before executing any). So what ran is compared as a multiset, and notifications per atom: each
# atom's own RUNNING -> SUCCESS sequence, and the flow's, must still match exactly.
COMPARE_AS = {"executed": "multiset", "events": "per_atom"}

EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {
        "n1": 11,
        "n2": 12,
        "n3": 13,
        "n4": 14,
        "sq_1": 121,
        "sq_2": 144,
        "sq_3": 169,
        "sq_4": 196,
    },
    "flow_requires": ["n1", "n2", "n3", "n4"],
    "links": [],
    "executed": ["square_1", "square_2", "square_3", "square_4"],
    "events": [
        "flow squares PENDING->RUNNING",
        "task square_1 PENDING->RUNNING",
        "task square_1 RUNNING->SUCCESS result=121",
        "task square_2 PENDING->RUNNING",
        "task square_2 RUNNING->SUCCESS result=144",
        "task square_3 PENDING->RUNNING",
        "task square_3 RUNNING->SUCCESS result=169",
        "task square_4 PENDING->RUNNING",
        "task square_4 RUNNING->SUCCESS result=196",
        "flow squares RUNNING->SUCCESS",
    ],
}
