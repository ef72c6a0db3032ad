"""A TaskFlow program, moved to ferroflow by changing its imports only.

Written against TaskFlow's API (``taskflow.engines``, ``taskflow.task``,
``taskflow.patterns.*``, ``taskflow.persistence``, ``taskflow.listeners``); the only edits are
``taskflow`` → ``ferroflow`` in the import lines. It runs a flow whose last task fails, so the
engine reverts what ran, in reverse order, and re-raises the failure — as TaskFlow does — with a
notifier callback reporting each task's transitions, and saves everything to a SQLite store.
"""

import tempfile

from ferroflow import engines, task
from ferroflow.patterns import graph_flow, linear_flow, unordered_flow
from ferroflow.persistence import backends, models
from ferroflow.types import notifier


class CallJim(task.Task):
    def execute(self, jim_number):
        print(f"Calling jim {jim_number}.")
        return "jim-answered"

    def revert(self, jim_number, **kwargs):
        print(f"Calling jim {jim_number} and apologizing.")


class CallJoe(task.Task):
    def execute(self, joe_number):
        print(f"Calling joe {joe_number}.")

    def revert(self, joe_number, **kwargs):
        print(f"Calling joe {joe_number} and apologizing.")


class CallSuzzie(task.Task):
    def execute(self, suzzie_number):
        raise OSError(f"Suzzie not home right now ({suzzie_number}).")


class Summarize(task.Task):
    def execute(self, jim_said):
        print(f"jim said: {jim_said}")


flow = linear_flow.Flow("call-them").add(
    unordered_flow.Flow("first-calls").add(CallJim("call_jim", provides="jim_said"), CallJoe("call_joe")),
    graph_flow.Flow("then").add(Summarize("summarize"), CallSuzzie("call_suzzie")),
)

with tempfile.TemporaryDirectory() as tmp:
    backend = backends.fetch({"connection": f"sqlite:///{tmp}/calls.db"})
    with backend.get_connection() as conn:
        conn.upgrade()
    book = models.LogBook("phone-book")
    engine = engines.load(
        flow,
        store={"jim_number": 555, "joe_number": 444, "suzzie_number": 666},
        engine="serial",
        backend=backend,
        book=book,
    )

    def report(state, details):
        print(f"  task {details['task_name']} -> {state}")

    engine.atom_notifier.register(notifier.Notifier.ANY, report)
    try:
        engine.run()
    except OSError as exc:
        print(f"Flow failed: {exc}")
    with backend.get_connection() as conn:
        for flow_detail in conn.get_logbook(book.uuid):
            print(f"saved: {flow_detail.name} {flow_detail.state}")
            for atom_detail in flow_detail:
                print(f"  {atom_detail.name}: {atom_detail.state}")
