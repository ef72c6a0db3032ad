"""Every form of ``provides``: str, tuple, list, set (of dict keys), and a class's ``default_provides``."""

from taskflow import engines, exceptions, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe


class Bounds(task.Task):
    def execute(self, readings):
        return min(readings), max(readings)


class HeadAndTail(task.Task):
    def execute(self, readings):
        return list(readings)  # more items than names: the extra ones are simply not named


class ParseUrl(task.Task):
    def execute(self, url):
        scheme, _, rest = url.partition("://")
        host, _, port = rest.partition(":")
        return {"host": host, "port": int(port), "scheme": scheme}  # scheme is not provided


class Summarise(task.Task):
    default_provides = "summary"

    def execute(self, low, high, host):
        return f"{host}: {low}..{high}"


class ShortTuple(task.Task):
    def execute(self):
        return ("only", "two")  # three names asked for: TaskFlow just logs a warning


def main() -> dict:
    atoms = [
        Bounds("bounds", provides=("low", "high")),
        HeadAndTail("head_tail", provides=["head", "second"]),
        ParseUrl("parse_url", provides={"host", "port"}),
        Summarise("summarise"),
        ShortTuple("short", provides=("one", "two", "three")),
    ]
    pipeline = lf.Flow("provides_forms").add(*atoms)
    engine = engines.load(pipeline, store={"readings": [7, 3, 9], "url": "https://db.example:5432"})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    try:
        missing = repr(engine.storage.fetch("three"))
    except exceptions.NotFound:
        missing = "NotFound"
    return {
        **_observe.final_state(engine, _observe.atom_names(pipeline, flow.Flow), failure.Failure),
        "provides": {atom.name: sorted(atom.provides) for atom in atoms},
        "save_as": {atom.name: sorted(atom.save_as.items()) for atom in atoms},
        "fetch_missing_index": missing,
        "flow_provides": sorted(pipeline.provides),
        "events": _observe.events(capture.values, failure.Failure),
    }


EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {
        "readings": [7, 3, 9],
        "url": "https://db.example:5432",
        "low": 3,
        "high": 9,
        "head": 7,
        "second": 3,
        "host": "db.example",
        "port": 5432,
        "summary": "db.example: 3..9",
        "one": "only",
        "two": "two",
    },
    "provides": {
        "bounds": ["high", "low"],
        "head_tail": ["head", "second"],
        "parse_url": ["host", "port"],
        "summarise": ["summary"],
        "short": ["one", "three", "two"],
    },
    "save_as": {
        "bounds": [("high", 1), ("low", 0)],
        "head_tail": [("head", 0), ("second", 1)],
        "parse_url": [("host", "host"), ("port", "port")],
        "summarise": [("summary", None)],
        "short": [("one", 0), ("three", 2), ("two", 1)],
    },
    "fetch_missing_index": "NotFound",
}
