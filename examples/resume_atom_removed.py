"""Resuming after an atom was removed: its saved detail is kept as an orphan, and undone if the
flow rolls back.

Version 2 takes payment elsewhere, so 'charge' left the checkout. The saved payment is not
forgotten: the detail of 'charge' stays in the store (an *orphan*), and when the resumed flow
fails and rolls back, the orphan is reverted too (the customer is refunded), from the revert
reference saved when 'charge' completed: its class, ``shop.Charge``, and the arguments its
revert gets. That class must therefore stay importable (and trusted) for as long as such flows
may roll back; ``ferroflow check`` reports orphans whose revert no longer imports.
"""

import tempfile

from crash import first_run, resume
from ferroflow import exceptions
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from shop import Charge, Reserve, Ship

version_1 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))
# Version 2: no 'charge'; and today the carrier refuses every parcel.
version_2 = linear_flow.Flow("checkout").add(Reserve("reserve"), Ship("ship", fail=True))

with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
    flow_uuid = first_run(version_1, backend, dies_in="ship")
    print("\nversion 2 removed 'charge'; resuming:")
    try:
        resume(version_2, backend, flow_uuid)
    except RuntimeError as exc:
        print(f"the run raised: {exc}")
    except exceptions.TaskFlowException as exc:
        print(f"the run raised {type(exc).__name__}: {exc}")
    with backend.get_connection() as conn:
        states = {ad.name: ad.state for ad in conn.get_atoms_for_flow(flow_uuid) if not ad.name.startswith("_")}
    print("saved states:", states)
