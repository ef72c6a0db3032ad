"""``engines.run(flow, store=...)`` where a stored value has the same name as a task's result.

TaskFlow resolves a flow-level injected value before any atom provider (its documented, if surprising,
precedence), so the consumer gets the stored price, not the one computed just before it.
"""

from taskflow import engines, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

RECEIVED: list[tuple[str, object]] = []


class LookupPrice(task.Task):
    def execute(self, sku):
        return {"apple": 10, "pear": 12}[sku]


class Charge(task.Task):
    def execute(self, price, quantity):
        RECEIVED.append((self.name, price))
        return price * quantity


def build() -> lf.Flow:
    return lf.Flow("shop").add(
        LookupPrice("lookup", provides="price"),
        Charge("charge", provides="charged"),
    )


def main() -> dict:
    run_result = engines.run(build(), store={"sku": "pear", "quantity": 3, "price": 1})

    # The same shadowing through storage.inject() on a loaded engine, observed with a listener.
    engine = engines.load(build(), store={"sku": "apple", "quantity": 2})
    engine.storage.inject({"price": 5})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        "run_result": run_result,
        "received": list(RECEIVED),
        "inject_fetch_all": engine.storage.fetch_all(),
        "inject_fetch_charged": engine.storage.fetch("charged"),
        "inject_fetch_price": engine.storage.fetch("price"),
        "inject_events": _observe.events(capture.values, failure.Failure),
        "inject_flow_state": engine.storage.get_flow_state(),
    }


EXPECTED = {
    # fetch_all gives every provider of a name as a list when there are several
    "run_result": {"sku": "pear", "quantity": 3, "price": [1, 12], "charged": 3},
    "received": [("charge", 1), ("charge", 5)],
    "inject_fetch_all": {"sku": "apple", "quantity": 2, "price": [5, 10], "charged": 10},
    "inject_fetch_charged": 10,
    "inject_fetch_price": 5,  # unscoped fetch: the first provider registered (the injected value)
    "inject_flow_state": "SUCCESS",
}
