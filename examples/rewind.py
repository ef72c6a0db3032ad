"""Rewinding a flow: undo the atoms after one of them and run them again with fixed code.

The checkout finished, but 'charge' had a bug (it charged 30 EUR instead of 25). A version
policy would rerun 'charge' alone; a rewind to 'reserve' also redoes what depends on the
payment: the atoms after 'reserve' are reverted (latest first, each with its saved result and
the new code's revert), then run again. 'reserve' and the atoms before it keep their results.
``engine.plan(rewind_to=...)`` (``ferroflow plan --rewind-to``) shows it first; ``ferroflow
rewind FLOW --to ATOM`` does it from the shell. The reverts to do are saved before the first
one, so a rewind killed half way is finished by the next resume.
"""

import tempfile

from crash import indent, saved_flow
from ferroflow import engines
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends, models
from shop import Charge, Reserve, Ship


class FixedCharge(Charge):
    def execute(self, order, reservation):
        self.say(f"charging 25 EUR for {reservation}")
        return {"id": f"P-{order}-2", "amount": 25}


with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
    print("the first run completes:")
    buggy = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))
    engine = engines.load(buggy, store={"order": 42}, backend=backend, book=models.LogBook("shop"))
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    print(f"the flow ends {engine.storage.get_flow_state()}; payment: {engine.storage.fetch('payment')}")

    print("\nthe fix is deployed; rewinding to 'reserve':")
    fixed = linear_flow.Flow("checkout").add(Reserve("reserve"), FixedCharge("charge"), Ship("ship"))
    engine = engines.load(fixed, flow_detail=saved_flow(backend, flow_uuid), backend=backend)
    print(indent(engine.plan(rewind_to="reserve").format_table()))
    engine.rewind(to="reserve")
    print(f"the flow ends {engine.storage.get_flow_state()}; payment: {engine.storage.fetch('payment')}")
