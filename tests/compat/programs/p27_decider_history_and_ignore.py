"""Graph-flow deciders: ``link(u, v, decider=...)`` is asked, just before ``v`` would run, with
``history={u name: u result}`` for every decider link into ``v`` (results of IGNOREd sources left out).

A decider returning False moves ``v`` (and, at the default depth ALL, everything after it) to state and
intention IGNORE (``PENDING->IGNORE`` notifications); IGNOREd atoms count as done for their successors,
their results cannot be fetched, and the flow still ends SUCCESS. Returning True lets ``v`` run. Deciders
on links out of an IGNOREd atom are not consulted. Two deciders into one atom share one history.
"""

from taskflow import engines, exceptions, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import graph_flow as gf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []
DECIDED: list[str] = []


class Step(task.Task):
    def execute(self):
        JOURNAL.append(self.name)
        return f"{self.name}-done"


class CheckCache(task.Task):
    def execute(self):
        JOURNAL.append(self.name)
        return {"hit": False, "age": 31}


def decider(label: str, verdict):
    """A decider that records the history it was handed and answers ``verdict(history)``."""

    def decide(history):
        answer = verdict(history)
        DECIDED.append(f"{label}: {sorted(history.items())} -> {answer}")
        return answer

    return decide


def main() -> dict:
    check_cache = CheckCache("check_cache", provides="cache")
    check_disk = Step("check_disk", provides="disk")
    serve_cached = Step("serve_cached", provides="cached_body")
    log_hit = Step("log_hit")
    warm_cache = Step("warm_cache")
    fetch_origin = Step("fetch_origin", provides="origin_body")
    store = Step("store", provides="stored")
    respond = Step("respond")
    cdn = gf.Flow("cdn").add(check_cache, check_disk, serve_cached, log_hit, warm_cache, fetch_origin, store, respond)
    # default depth ALL: serve_cached and everything after it (log_hit) is ignored
    cdn.link(check_cache, serve_cached, decider=decider("serve_cached", lambda h: h["check_cache"]["hit"]))
    cdn.link(serve_cached, log_hit)
    # depth ATOM: only warm_cache is ignored; respond, after it, still runs
    cdn.link(
        check_cache,
        warm_cache,
        decider=decider("warm_cache", lambda h: h["check_cache"]["age"] < 30),
        decider_depth="ATOM",
    )
    cdn.link(check_cache, fetch_origin, decider=decider("fetch_origin", lambda h: not h["check_cache"]["hit"]))
    cdn.link(fetch_origin, store, decider=decider("store/origin", lambda h: "fetch_origin" in h))
    cdn.link(check_disk, store, decider=decider("store/disk", lambda h: h["check_disk"] == "check_disk-done"))
    cdn.link(warm_cache, respond, decider=decider("respond/warm_cache", lambda h: False))
    cdn.link(store, respond, decider=decider("respond/store", lambda h: True))

    engine = engines.load(cdn)
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    names = _observe.atom_names(cdn, flow.Flow)
    try:
        engine.storage.fetch("cached_body")
    except exceptions.NotFound:
        ignored_result = "NotFound"
    else:
        ignored_result = "found"
    return {
        **_observe.final_state(engine, names, failure.Failure),
        "ignored_result": ignored_result,
        "statistics_completed": engine.statistics.get("completed"),
        "decided": list(DECIDED),
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


# Independent branches of a graph flow run in no defined order: the calls are compared as sets and the
# notifications per atom.
COMPARE_AS = {"decided": "multiset", "journal": "multiset", "events": "per_atom"}

_CACHE = "('check_cache', {'hit': False, 'age': 31})"

EXPECTED = {
    "flow_state": "SUCCESS",
    "atom_states": {
        "check_cache": "SUCCESS",
        "check_disk": "SUCCESS",
        "serve_cached": "IGNORE",
        "log_hit": "IGNORE",
        "warm_cache": "IGNORE",
        "fetch_origin": "SUCCESS",
        "store": "SUCCESS",
        "respond": "SUCCESS",
    },
    "intentions": {
        "check_cache": "EXECUTE",
        "check_disk": "EXECUTE",
        "serve_cached": "IGNORE",
        "log_hit": "IGNORE",
        "warm_cache": "IGNORE",
        "fetch_origin": "EXECUTE",
        "store": "EXECUTE",
        "respond": "EXECUTE",
    },
    "fetch_all": {
        "cache": {"hit": False, "age": 31},
        "disk": "check_disk-done",
        "origin_body": "fetch_origin-done",
        "stored": "store-done",
    },
    "ignored_result": "NotFound",
    # TaskFlow counts atom completions (executions and reverts) of this run: ignored atoms are not counted
    "statistics_completed": 5,
    "decided": [
        f"serve_cached: [{_CACHE}] -> False",
        f"warm_cache: [{_CACHE}] -> False",
        f"fetch_origin: [{_CACHE}] -> True",
        "store/origin: [('check_disk', 'check_disk-done'), ('fetch_origin', 'fetch_origin-done')] -> True",
        "store/disk: [('check_disk', 'check_disk-done'), ('fetch_origin', 'fetch_origin-done')] -> True",
        # respond/warm_cache is not asked: warm_cache was IGNOREd, and is left out of the history too
        "respond/store: [('store', 'store-done')] -> True",
    ],
    "journal": ["check_cache", "check_disk", "fetch_origin", "store", "respond"],
    "events": [
        "flow cdn PENDING->RUNNING",
        "task check_cache PENDING->RUNNING",
        "task check_cache RUNNING->SUCCESS result={'hit': False, 'age': 31}",
        "task check_disk PENDING->RUNNING",
        "task check_disk RUNNING->SUCCESS result='check_disk-done'",
        "task serve_cached PENDING->IGNORE",
        "task log_hit PENDING->IGNORE",
        "task warm_cache PENDING->IGNORE",
        "task fetch_origin PENDING->RUNNING",
        "task fetch_origin RUNNING->SUCCESS result='fetch_origin-done'",
        "task store PENDING->RUNNING",
        "task store RUNNING->SUCCESS result='store-done'",
        "task respond PENDING->RUNNING",
        "task respond RUNNING->SUCCESS result='respond-done'",
        "flow cdn RUNNING->SUCCESS",
    ],
}
