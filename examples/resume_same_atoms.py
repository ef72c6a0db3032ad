"""Resuming with the same atoms: what finished is reused, what was running runs again.

The first run dies while shipping; resuming with unchanged code reuses the saved reservation and
payment (the customer is not charged twice) and runs 'ship' again: an atom that was running when
its process died runs again, so it must be safe to repeat (at-least-once).
"""

import tempfile

from crash import first_run, resume
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from shop import Charge, Reserve, Ship


def checkout():
    return linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))


with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
    flow_uuid = first_run(checkout(), backend, dies_in="ship")
    print()
    engine = resume(checkout(), backend, flow_uuid)
    print("results:", engine.storage.fetch_all())
