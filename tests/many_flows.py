"""Small flows for the many-flows tests (`engines.resume_many`, `ferroflow resume --all`).

Importable by name, so a resuming process rebuilds the flows from their saved factory. Each
execute appends ``"<flow tag> <atom>"`` to the file ``$MANY_FLOWS_JOURNAL`` (when set) before it
returns, so a test counts how often each atom ran across processes; the factory appends
``"factory <tag>"`` to ``$MANY_FLOWS_FACTORY_LOG`` each time it is called.

``python many_flows.py start DB COUNT ATOMS`` saves COUNT flows of ATOMS atoms, each suspended
halfway (printing their uuids as JSON); ``python many_flows.py resume DB`` resumes every
unfinished flow with `engines.resume_many` (printing how many ended SUCCESS).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from ferroflow import engines, task
from ferroflow.patterns import linear_flow
from ferroflow.persistence import backends, models

JOURNAL_ENV = "MANY_FLOWS_JOURNAL"
FACTORY_LOG_ENV = "MANY_FLOWS_FACTORY_LOG"


def _log(env: str, line: str) -> None:
    path = os.environ.get(env)
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


#: How long each execute of a flow tagged ``slow`` sleeps (seconds).
SLOW_SECONDS = 0.03


class Step(task.Task):
    """Records its execute; fails when its flow's tag is ``fail`` and it is the last atom; sleeps
    `SLOW_SECONDS` when its flow's tag is ``slow``."""

    def __init__(self, name: str, tag: str, last: bool) -> None:
        super().__init__(name)
        self.tag = tag
        self.last = last

    def execute(self) -> str:
        _log(JOURNAL_ENV, f"{self.tag} {self.name}")
        if self.tag == "slow":
            time.sleep(SLOW_SECONDS)
        if self.last and self.tag == "fail":
            raise RuntimeError(f"{self.name} of a flow made to fail")
        return self.name


def small(atoms: int, tag: str = "ok") -> linear_flow.Flow:
    """``atoms`` steps in a line; ``tag`` names the kind of flow (``fail`` fails at its end)."""
    _log(FACTORY_LOG_ENV, f"factory {tag}")
    return linear_flow.Flow(f"small-{tag}").add(*[Step(f"s{i}", tag, i == atoms - 1) for i in range(atoms)])


class _Suspender:
    def __init__(self, engine: Any, after: int) -> None:
        self.engine, self.after, self.done = engine, after, 0

    def __call__(self, event_type: str, details: dict[str, Any]) -> None:
        self.done += 1
        if self.done == self.after:
            self.engine.suspend()


def start(uri: str, count: int, atoms: int, tag: str = "ok") -> list[str]:
    """Saves ``count`` flows of ``atoms`` atoms in ``uri``, each suspended halfway; their uuids."""
    backend = backends.fetch(uri)
    uuids = []
    try:
        for i in range(count):
            engine = engines.load_from_factory(
                small, factory_args=(atoms, tag), book=models.LogBook(f"many-{i}"), backend=backend
            )
            engine.atom_notifier.register("SUCCESS", _Suspender(engine, atoms // 2))
            engine.run()
            assert engine.storage.get_flow_state() == "SUSPENDED"
            uuids.append(str(engine.storage.flow_uuid))
    finally:
        backend.close()
    return uuids


def main(argv: list[str]) -> int:
    command, uri = argv[0], argv[1]
    if command == "start":
        print(json.dumps(start(uri, int(argv[2]), int(argv[3]))))
        return 0
    uuids = json.loads(argv[2])
    results = engines.resume_many(uuids, uri)
    print(sum(result.ok for result in results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
