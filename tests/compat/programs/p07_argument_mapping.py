"""How arguments reach ``execute``: rebind (list and dict), extra ``requires`` with ``**kwargs``,
optional arguments with defaults (found and not found), and per-atom ``inject``."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

RECEIVED: dict[str, dict] = {}


class Transfer(task.Task):
    def execute(self, source, target, amount):
        RECEIVED[self.name] = {"source": source, "target": target, "amount": amount}
        return f"{amount} from {source} to {target}"


class Audit(task.Task):
    def execute(self, user, **context):
        RECEIVED[self.name] = {"user": user, **context}
        return sorted(context)


class Fee(task.Task):
    def execute(self, amount, rate=0.01, minimum=1):
        RECEIVED[self.name] = {"amount": amount, "rate": rate, "minimum": minimum}
        return max(amount * rate, minimum)


def main() -> dict:
    atoms = [
        Transfer("by_position", rebind=["checking", "savings", "monthly"]),
        Transfer("by_name", rebind={"source": "savings", "amount": "yearly"}, inject={"target": "broker"}),
        Audit("audit", requires=["ticket", "monthly"], rebind={"user": "operator"}),
        Fee("fee_with_rate", rebind={"amount": "monthly", "rate": "premium_rate"}),
        Fee("fee_defaults", inject={"amount": 50}),
        Fee("fee_injected_override", rebind={"amount": "yearly"}, inject={"minimum": 500}),
    ]
    payments = lf.Flow("payments").add(*atoms)
    store = {
        "checking": "CHK",
        "savings": "SAV",
        "monthly": 100,
        "yearly": 1200,
        "operator": "ops",
        "ticket": "T-1",
        "premium_rate": 0.5,
        "target": "nobody",  # shadowed by by_name's inject, used by nobody else
    }
    engine = engines.load(payments, store=store)
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, _observe.atom_names(payments, flow.Flow), failure.Failure),
        "received": dict(RECEIVED),
        "requires": {atom.name: sorted(atom.requires) for atom in atoms},
        "optional": {atom.name: sorted(atom.optional) for atom in atoms},
        "rebind": {atom.name: sorted(atom.rebind.items()) for atom in atoms},
        "flow_requires": sorted(payments.requires),
        "events": _observe.events(capture.values, failure.Failure),
    }


EXPECTED = {
    "flow_state": "SUCCESS",
    "received": {
        "by_position": {"source": "CHK", "target": "SAV", "amount": 100},
        "by_name": {"source": "SAV", "target": "broker", "amount": 1200},
        "audit": {"user": "ops", "ticket": "T-1", "monthly": 100},
        "fee_with_rate": {"amount": 100, "rate": 0.5, "minimum": 1},
        "fee_defaults": {"amount": 50, "rate": 0.01, "minimum": 1},
        "fee_injected_override": {"amount": 1200, "rate": 0.01, "minimum": 500},
    },
    "requires": {
        "by_position": ["checking", "monthly", "savings"],
        "by_name": ["savings", "yearly"],
        "audit": ["monthly", "operator", "ticket"],
        "fee_with_rate": ["monthly", "premium_rate"],  # rebinding an optional argument makes it required
        "fee_defaults": [],  # amount is injected, so not required from the flow
        "fee_injected_override": ["yearly"],
    },
    "optional": {
        "by_position": [],
        "by_name": [],
        "audit": [],
        "fee_with_rate": ["minimum"],
        "fee_defaults": ["minimum", "rate"],
        "fee_injected_override": ["rate"],  # an injected optional argument is no longer optional
    },
    "rebind": {
        "by_position": [("amount", "monthly"), ("source", "checking"), ("target", "savings")],
        "by_name": [("amount", "yearly"), ("source", "savings"), ("target", "target")],
        "audit": [("monthly", "monthly"), ("ticket", "ticket"), ("user", "operator")],
        "fee_with_rate": [("amount", "monthly"), ("minimum", "minimum"), ("rate", "premium_rate")],
        "fee_defaults": [("amount", "amount"), ("minimum", "minimum"), ("rate", "rate")],
        "fee_injected_override": [("amount", "yearly"), ("minimum", "minimum"), ("rate", "rate")],
    },
    "flow_requires": ["checking", "monthly", "operator", "premium_rate", "savings", "ticket", "yearly"],
}
