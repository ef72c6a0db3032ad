"""Resuming after an atom was renamed: a ``Rename`` migration carries its saved detail over.

Version 2 calls 'charge' 'capture'. Without a migration, 'capture' would be a new atom (the
customer charged again) and 'charge' an orphan; ``Rename("charge", "capture")`` gives the saved
detail (state, result, everything) to 'capture'. Migrations are applied in one transaction
before the run, recorded in the flow detail, and never applied twice.
"""

import tempfile

from crash import first_run, resume
from ferroflow.migrations import Rename
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from shop import Charge, Reserve, Ship

version_1 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))
version_2 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("capture"), Ship("ship"))

with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
    flow_uuid = first_run(version_1, backend, dies_in="ship")
    print("\nversion 2 renamed 'charge' to 'capture'; resuming with Rename('charge', 'capture'):")
    engine = resume(version_2, backend, flow_uuid, migrations=[Rename("charge", "capture")])
    print("payment:", engine.storage.fetch("payment"))
