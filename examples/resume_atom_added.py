"""Resuming after an atom was added: the new atom runs when its inputs are ready.

Version 2 of the checkout e-mails the customer once the parcel ships. The flow saved by version
1 gains a detail for 'notify' on resume; everything version 1 finished is reused.
"""

import tempfile

from crash import first_run, resume
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from shop import Charge, Notify, Reserve, Ship

version_1 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))
version_2 = linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"), Notify("notify"))

with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
    flow_uuid = first_run(version_1, backend, dies_in="ship")
    print("\nversion 2 adds 'notify'; resuming:")
    engine = resume(version_2, backend, flow_uuid)
    print("mail:", engine.storage.fetch("mail"))
