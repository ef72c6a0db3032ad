"""Resuming after the flow's structure changed: the new graph drives the run.

Version 2 rebuilds the checkout as a graph flow (order inferred from what atoms require and
provide), nests the payment in a subflow, and reserves from a second warehouse: a new atom
'restock' now provides the 'reservation' that 'charge' and 'ship' read. Completed atoms keep
their results whatever the shape; an atom whose inputs now come from another atom than when it
ran is reported by the plan ("inputs changed"), and ``provider_change`` says what to do with it:
``keep`` (the default) its result, or ``rerun`` it.
"""

import tempfile

from crash import first_run, resume
from ferroflow.patterns import graph_flow, linear_flow
from ferroflow.persistence import backends
from shop import Charge, Reserve, Ship


class Restock(Reserve):
    """Reserves the books in the second warehouse instead."""

    def execute(self, order):
        self.say(f"reserving the books of order {order} in warehouse B")
        return f"RB-{order}"


version_1 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))


def version_2():
    payment = linear_flow.Flow("payment").add(Charge("charge"))
    return graph_flow.Flow("checkout").add(
        Reserve("reserve", provides="first_reservation"), Restock("restock"), payment, Ship("ship")
    )


for policy in ("keep", "rerun"):
    print(f"=== provider_change={policy}")
    with tempfile.TemporaryDirectory() as tmp:
        backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
        flow_uuid = first_run(version_1, backend, dies_in="ship")
        engine = resume(version_2(), backend, flow_uuid, provider_change=policy)
        print("payment:", engine.storage.fetch("payment"), "parcel:", engine.storage.fetch("parcel"))
    print()
