"""Resuming after atoms were split or merged: ``Split`` and ``Merge`` migrations.

Split: version 2 charges in two steps, 'authorize' then 'capture'. ``Split("charge",
["authorize", "capture"], fn)`` gives each new atom its part of the saved payment: ``fn`` maps
the old result to the new ones (in the order of the names, or a dict by name).

Merge: version 3 reserves and charges in one atom, 'checkout'. ``Merge(["reserve", "charge"],
"checkout", fn)`` builds its result from the old ones (``fn`` gets them by name). Without ``fn``,
or when an old atom had not finished, the new atoms simply run.
"""

import tempfile

from crash import first_run, resume
from ferroflow import task
from ferroflow.migrations import Merge, Split
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from shop import Charge, Reserve, Ship


class Authorize(task.Task):
    default_provides = "authorization"

    def execute(self, order, reservation):
        print(f"    {self.name}: authorizing 30 EUR")
        return f"A-{order}"


class Capture(task.Task):
    default_provides = "payment"

    def execute(self, order, authorization):
        print(f"    {self.name}: capturing {authorization}")
        return {"id": f"P-{order}", "amount": 30}


class ReserveAndCharge(task.Task):
    default_provides = ("reservation", "payment")

    def execute(self, order):
        print(f"    {self.name}: reserving and charging order {order}")
        return f"R-{order}", {"id": f"P-{order}", "amount": 30}


def split_payment(payment):
    return [f"A-{payment['id'][2:]}", payment]


def merged(results):
    return [results["reserve"], results["charge"]]


version_1 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))
split = linear_flow.Flow("checkout").add(Reserve("reserve"), Authorize("authorize"), Capture("capture"), Ship("ship"))
merge = linear_flow.Flow("checkout").add(ReserveAndCharge("checkout"), Ship("ship"))

with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/split.db")
    flow_uuid = first_run(version_1, backend, dies_in="ship")
    print("\nsplit: 'charge' became 'authorize' and 'capture':")
    engine = resume(split, backend, flow_uuid, migrations=[Split("charge", ["authorize", "capture"], split_payment)])
    print("authorization:", engine.storage.fetch("authorization"), "payment:", engine.storage.fetch("payment"))

with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/merge.db")
    print()
    flow_uuid = first_run(version_1, backend, dies_in="ship")
    print("\nmerge: 'reserve' and 'charge' became 'checkout':")
    engine = resume(merge, backend, flow_uuid, migrations=[Merge(["reserve", "charge"], "checkout", merged)])
    print("reservation:", engine.storage.fetch("reservation"), "payment:", engine.storage.fetch("payment"))
