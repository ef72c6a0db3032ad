"""A linear flow of three tasks handing values to each other through ``provides`` strings."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

EXECUTED: list[str] = []


class FetchGreeting(task.Task):
    def execute(self, who):
        EXECUTED.append(self.name)
        return f"  hello, {who}  "


class Normalise(task.Task):
    def execute(self, raw):
        EXECUTED.append(self.name)
        return raw.strip().title()


class CountLetters(task.Task):
    def execute(self, clean):
        EXECUTED.append(self.name)
        return sum(ch.isalpha() for ch in clean)


def main() -> dict:
    pipeline = lf.Flow("greeting").add(
        FetchGreeting("fetch", provides="raw"),
        Normalise("normalise", provides="clean"),
        CountLetters("count", provides="letters"),
    )
    engine = engines.load(pipeline, store={"who": "world"})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, _observe.atom_names(pipeline, flow.Flow), failure.Failure),
        "atom_names": _observe.atom_names(pipeline, flow.Flow),
        "fetch_clean": engine.storage.fetch("clean"),
        "flow_requires": sorted(pipeline.requires),
        "flow_provides": sorted(pipeline.provides),
        "executed": list(EXECUTED),
        "events": _observe.events(capture.values, failure.Failure),
    }


EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {"who": "world", "raw": "  hello, world  ", "clean": "Hello, World", "letters": 10},
    "atom_states": {"fetch": "SUCCESS", "normalise": "SUCCESS", "count": "SUCCESS"},
    "flow_requires": ["who"],
    "executed": ["fetch", "normalise", "count"],
    "events": [
        "flow greeting PENDING->RUNNING",
        "task fetch PENDING->RUNNING",
        "task fetch RUNNING->SUCCESS result='  hello, world  '",
        "task normalise PENDING->RUNNING",
        "task normalise RUNNING->SUCCESS result='Hello, World'",
        "task count PENDING->RUNNING",
        "task count RUNNING->SUCCESS result=10",
        "flow greeting RUNNING->SUCCESS",
    ],
}
