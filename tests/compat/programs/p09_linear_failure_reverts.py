"""A task fails in a linear flow: the tasks that ran revert newest first, each revert gets the task's own
``result`` and the flow's ``flow_failures``, the flow ends REVERTED and ``run()`` re-raises the original
exception (same type, same message)."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


class ShippingError(Exception):
    pass


class OrderStep(task.Task):
    """Records execute and revert calls, including what revert was handed."""

    def execute(self, order_id):
        JOURNAL.append(f"execute {self.name}")
        return f"{self.name}:{order_id}"

    def revert(self, order_id, result, flow_failures, **kwargs):
        failures = {name: _observe.describe(fail, failure.Failure) for name, fail in flow_failures.items()}
        JOURNAL.append(
            f"revert {self.name} order={order_id} result={_observe.describe(result, failure.Failure)} "
            f"flow_failures={failures} extra={sorted(kwargs)}"
        )


class Ship(OrderStep):
    def execute(self, order_id):
        JOURNAL.append(f"execute {self.name}")
        raise ShippingError(f"no courier for order {order_id}")


def main() -> dict:
    order = lf.Flow("order").add(
        OrderStep("reserve_stock", provides="reservation"),
        OrderStep("charge_card", provides="payment"),
        Ship("ship"),
        OrderStep("send_invoice"),
    )
    engine = engines.load(order, store={"order_id": 7})
    with capturing.CaptureListener(engine) as capture:
        try:
            engine.run()
        except Exception as exc:
            raised = _observe.caught(exc, failure.Failure)
            raised["is_shipping_error"] = isinstance(exc, ShippingError)
        else:
            raised = None
    return {
        **_observe.final_state(engine, _observe.atom_names(order, flow.Flow), failure.Failure),
        "raised": raised,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


SHIP_FAILURE = (
    "<Failure: p09_linear_failure_reverts.ShippingError: no courier for order 7 "
    "types=['p09_linear_failure_reverts.ShippingError', 'Exception']>"
)

EXPECTED = {
    "flow_state": "REVERTED",
    "fetch_all": {"order_id": 7},
    "atom_states": {
        "reserve_stock": "REVERTED",
        "charge_card": "REVERTED",
        "ship": "REVERTED",
        "send_invoice": "PENDING",
    },
    # every atom gets the REVERT intention, even send_invoice which never ran and stays PENDING
    "intentions": {
        "reserve_stock": "REVERT",
        "charge_card": "REVERT",
        "ship": "REVERT",
        "send_invoice": "REVERT",
    },
    "raised": {"type": "ShippingError", "message": "no courier for order 7", "is_shipping_error": True},
    "journal": [
        "execute reserve_stock",
        "execute charge_card",
        "execute ship",
        f"revert ship order=7 result={SHIP_FAILURE} flow_failures={{'ship': {SHIP_FAILURE!r}}} extra=[]",
        f"revert charge_card order=7 result='charge_card:7' flow_failures={{'ship': {SHIP_FAILURE!r}}} "
        "extra=[]",
        f"revert reserve_stock order=7 result='reserve_stock:7' flow_failures={{'ship': {SHIP_FAILURE!r}}} "
        "extra=[]",
    ],
    "events": [
        "flow order PENDING->RUNNING",
        "task reserve_stock PENDING->RUNNING",
        "task reserve_stock RUNNING->SUCCESS result='reserve_stock:7'",
        "task charge_card PENDING->RUNNING",
        "task charge_card RUNNING->SUCCESS result='charge_card:7'",
        "task ship PENDING->RUNNING",
        f"task ship RUNNING->FAILURE result={SHIP_FAILURE}",
        "task ship FAILURE->REVERTING",
        "task ship REVERTING->REVERTED result=None",
        "task charge_card SUCCESS->REVERTING",
        "task charge_card REVERTING->REVERTED result=None",
        "task reserve_stock SUCCESS->REVERTING",
        "task reserve_stock REVERTING->REVERTED result=None",
        "flow order RUNNING->REVERTED",
    ],
}
