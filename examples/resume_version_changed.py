"""Resuming after an atom's code changed: its version says so, and a policy says what to do.

Version 2 of 'charge' charges in cents (``{"id": ..., "cents": 3000}``) and says so with
``version = (2, 0)``. The flow saved by version 1 completed 'charge' with a result in euros.
Each policy, on a fresh store (``on_version_change=`` when loading; an atom may set its own):

- ``reuse`` (the default, TaskFlow's behaviour): keep the old result, and let the plan show it;
- ``rerun``: run the new code again (nothing is undone first);
- ``revert_then_rerun``: undo with the saved result, then run again;
- ``fail``: refuse to resume (``VersionMismatch``), writing nothing;
- a function ``migrate(old_version, old_result)``: convert the saved result; nothing runs again.
"""

import tempfile

from crash import first_run, resume
from ferroflow import migrations
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends
from shop import Charge, Reserve, Ship


class ChargeInCents(Charge):
    def execute(self, order, reservation):
        self.say(f"charging 3000 cents for {reservation}")
        return {"id": f"P-{order}", "cents": 3000}


def checkout(version):
    charge = Charge("charge") if version == 1 else ChargeInCents("charge")
    charge.version = (version, 0)
    return linear_flow.Flow("checkout").add(Reserve("reserve"), charge, Ship("ship"))


def to_cents(old_version, old_result):
    print(f"    migrate: payment saved by version {old_version}: {old_result}")
    return {"id": old_result["id"], "cents": old_result["amount"] * 100}


for policy in ("reuse", "rerun", "revert_then_rerun", "fail", to_cents):
    name = policy if isinstance(policy, str) else policy.__name__
    print(f"=== on_version_change={name}")
    with tempfile.TemporaryDirectory() as tmp:
        backend = backends.fetch(f"sqlite:///{tmp}/shop.db")
        flow_uuid = first_run(checkout(version=1), backend, dies_in="ship")
        try:
            engine = resume(checkout(version=2), backend, flow_uuid, on_version_change=policy)
        except migrations.VersionMismatch as exc:
            print(f"refused: {exc}")
        else:
            print("payment:", engine.storage.fetch("payment"))
    print()
