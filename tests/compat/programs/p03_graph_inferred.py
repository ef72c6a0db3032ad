"""A graph flow whose order comes only from requires/provides, with its tasks added in a scrambled order."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import graph_flow as gf
from taskflow.types import failure

from . import _observe

EXECUTED: list[str] = []
PRICES = {"apple": 3, "pear": 4, "fig": 7}


class LoadCart(task.Task):
    default_provides = "items"

    def execute(self, cart_id):
        EXECUTED.append(self.name)
        return ["apple", "fig", "apple"] if cart_id == 42 else []


class Price(task.Task):
    default_provides = "subtotal"

    def execute(self, items):
        EXECUTED.append(self.name)
        return sum(PRICES[item] for item in items)


class Tax(task.Task):
    default_provides = "tax"

    def execute(self, subtotal):
        EXECUTED.append(self.name)
        return subtotal // 10


class Total(task.Task):
    default_provides = "total"

    def execute(self, subtotal, tax):
        EXECUTED.append(self.name)
        return subtotal + tax


class Receipt(task.Task):
    default_provides = "receipt"

    def execute(self, items, total):
        EXECUTED.append(self.name)
        return f"{len(items)} items, {total} total"


def main() -> dict:
    checkout = gf.Flow("checkout")
    checkout.add(Receipt("receipt"), Tax("tax"), LoadCart("load_cart"), Total("total"), Price("price"))
    engine = engines.load(checkout, store={"cart_id": 42})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, _observe.atom_names(checkout, flow.Flow), failure.Failure),
        "iteration_order": _observe.atom_names(checkout, flow.Flow),
        "links": _observe.links(checkout),
        "flow_requires": sorted(checkout.requires),
        "executed": list(EXECUTED),
        "events": _observe.events(capture.values, failure.Failure),
    }


EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {
        "cart_id": 42,
        "items": ["apple", "fig", "apple"],
        "subtotal": 13,
        "tax": 1,
        "total": 14,
        "receipt": "3 items, 14 total",
    },
    # graph_flow iterates its nodes in topological order, whatever the order they were added in
    "iteration_order": ["load_cart", "price", "tax", "total", "receipt"],
    "links": [
        ("load_cart", "price", {"reasons": ["items"]}),
        ("load_cart", "receipt", {"reasons": ["items"]}),
        ("price", "tax", {"reasons": ["subtotal"]}),
        ("price", "total", {"reasons": ["subtotal"]}),
        ("tax", "total", {"reasons": ["tax"]}),
        ("total", "receipt", {"reasons": ["total"]}),
    ],
    "flow_requires": ["cart_id"],
    "executed": ["load_cart", "price", "tax", "total", "receipt"],
}
