"""The application code of the examples: an online shop's checkout, as atoms.

Every atom prints what it does, so that an example's output shows what runs, what is reused and
what is undone. Its classes live in this importable module, not in the example scripts: a saved
flow names the classes of its atoms so that another process can revert them later, and a class
defined in a script run as ``__main__`` cannot be imported by another process.

Crashes: `crash_in` makes an atom raise `Crash` in the middle of its ``execute``. `Crash` is a
``BaseException``: the engine does not handle it, so it stops on the spot and leaves that atom
RUNNING in the store, as a process killed at that instant would (``kill -9``, a power cut). With
``$SHOP_KILL_IN`` set to an atom's name the process really is SIGKILLed there instead (used by
the command line example, which runs ``ferroflow`` in child processes).
"""

from __future__ import annotations

import os
import signal

from ferroflow import task
from ferroflow.patterns import linear_flow

__all__ = ["Charge", "Crash", "Notify", "Reserve", "Ship", "checkout", "crash_in"]

_CRASH_IN: set[str] = set()


class Crash(BaseException):
    """Stands in for the process dying in the middle of an atom."""


def crash_in(*names: str) -> None:
    """The next ``execute`` of each of these atoms crashes (once)."""
    _CRASH_IN.clear()
    _CRASH_IN.update(names)


class ShopTask(task.Task):
    """Prints each execute and revert (indented, after the atom's name)."""

    def say(self, text: str) -> None:
        print(f"    {self.name}: {text}")

    def maybe_crash(self) -> None:
        if os.environ.get("SHOP_KILL_IN") == self.name:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.name in _CRASH_IN:
            _CRASH_IN.discard(self.name)
            self.say("*** the process dies here ***")
            raise Crash()


class Reserve(ShopTask):
    """Reserves the order's books in the warehouse."""

    default_provides = "reservation"

    def execute(self, order: int) -> str:
        self.say(f"reserving the books of order {order}")
        self.maybe_crash()
        return f"R-{order}"

    def revert(self, order: int, result: str, flow_failures: dict) -> None:
        self.say(f"releasing reservation {result}")


class Charge(ShopTask):
    """Charges the customer's card (30 EUR per order)."""

    default_provides = "payment"

    def execute(self, order: int, reservation: str) -> dict:
        self.say(f"charging 30 EUR for {reservation}")
        self.maybe_crash()
        return {"id": f"P-{order}", "amount": 30}

    def revert(self, order: int, reservation: str, result: dict, flow_failures: dict) -> None:
        self.say(f"refunding payment {result['id']} ({result['amount']} EUR)")


class Ship(ShopTask):
    """Hands the parcel to the carrier; ``fail=True`` makes the carrier refuse it."""

    default_provides = "parcel"

    def __init__(self, name: str = "ship", fail: bool = False, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.fail = fail

    def execute(self, order: int, reservation: str) -> str:
        self.say(f"shipping {reservation}")
        self.maybe_crash()
        if self.fail:
            raise RuntimeError("the carrier refused the parcel")
        return f"S-{order}"

    def revert(self, order: int, reservation: str, result: object, flow_failures: dict) -> None:
        self.say("cancelling the shipment")


class Notify(ShopTask):
    """E-mails the customer."""

    default_provides = "mail"

    def execute(self, order: int, parcel: str) -> str:
        self.say(f"mailing the customer about {parcel}")
        self.maybe_crash()
        return f"mail for {parcel}"


def checkout() -> linear_flow.Flow:
    """Version 1 of the checkout: reserve, charge, ship (a flow factory, as ``ferroflow run``
    and ``engines.load_from_factory`` take them)."""
    return linear_flow.Flow("checkout").add(Reserve("reserve"), Charge("charge"), Ship("ship"))
