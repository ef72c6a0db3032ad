"""How far a decider's "no" reaches, by ``decider_depth`` (``deciders.Depth``).

Graph flow ``g``: ``a -> b`` carries a decider answering False, ``b -> c -> d`` are plain links, and
``b -> sub`` links to a nested linear flow ``sub`` (``s1``, ``s2``); ``g`` is followed by ``outside`` in
the root linear flow. What is IGNOREd:
- ALL: ``b`` and every successor, the nested flow and the task after ``g`` included;
- FLOW: ``b`` and the successor tasks in ``g`` itself (``c``, ``d``), not the nested flow nor ``outside``;
- NEIGHBORS: ``b`` and its direct successor tasks (``c``);
- ATOM: ``b`` only.
Atoms after an IGNOREd one still run (an ignored predecessor counts as done). The depth may be given as a
``Depth`` member or as its (case-insensitive) name.
"""

from taskflow import deciders, engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


class Step(task.Task):
    def execute(self):
        JOURNAL.append(self.name)
        return self.name


def scenario(depth) -> dict:
    JOURNAL.clear()
    a, b, c, d = Step("a"), Step("b"), Step("c"), Step("d")
    sub = lf.Flow("sub").add(Step("s1"), Step("s2"))
    g = gf.Flow("g").add(a, b, c, d, sub)
    g.link(a, b, decider=lambda history: False, decider_depth=depth)
    g.link(b, c)
    g.link(c, d)
    g.link(b, sub)
    root = lf.Flow("root").add(g, Step("outside"))
    engine = engines.load(root)
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    state = _observe.final_state(engine, _observe.atom_names(root, flow.Flow), failure.Failure)
    return {
        "flow_state": state["flow_state"],
        "ignored": sorted(name for name, st in state["atom_states"].items() if st == "IGNORE"),
        "ignore_intentions": sorted(name for name, it in state["intentions"].items() if it == "IGNORE"),
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def main() -> dict:
    observed = {
        "depth_members": [depth.name for depth in deciders.Depth],
        "translate_flow": deciders.Depth.translate("flow").name,
        "widest": deciders.pick_widest([deciders.Depth.ATOM, deciders.Depth.FLOW, deciders.Depth.NEIGHBORS]).name,
    }
    for label, depth in (
        ("ALL", deciders.Depth.ALL),
        ("FLOW", "flow"),
        ("NEIGHBORS", deciders.Depth.NEIGHBORS),
        ("ATOM", "ATOM"),
    ):
        observed.update({f"{label}/{field}": value for field, value in scenario(depth).items()})
    return observed


# The two branches after b (c, d and the nested flow) are independent: calls are compared as sets and
# notifications per atom.
COMPARE_AS = {
    f"{depth}/{field}": how
    for depth in ("ALL", "FLOW", "NEIGHBORS", "ATOM")
    for field, how in (("journal", "multiset"), ("events", "per_atom"))
}


def _ignored(*names: str) -> list[str]:
    return [f"task {name} PENDING->IGNORE" for name in names]


def _ran(*names: str) -> list[str]:
    return [
        event
        for name in names
        for event in (f"task {name} PENDING->RUNNING", f"task {name} RUNNING->SUCCESS result={name!r}")
    ]


_BY_DEPTH = {
    "ALL": {
        "ignored": ["b", "c", "d", "outside", "s1", "s2"],
        "journal": ["a"],
        "events": [*_ran("a"), *_ignored("b", "c", "d", "s1", "s2", "outside")],
    },
    "FLOW": {
        "ignored": ["b", "c", "d"],
        "journal": ["a", "s1", "s2", "outside"],
        "events": [*_ran("a"), *_ignored("b", "c", "d"), *_ran("s1", "s2", "outside")],
    },
    "NEIGHBORS": {
        "ignored": ["b", "c"],
        "journal": ["a", "d", "s1", "s2", "outside"],
        "events": [*_ran("a"), *_ignored("b", "c"), *_ran("d", "s1", "s2", "outside")],
    },
    "ATOM": {
        "ignored": ["b"],
        "journal": ["a", "c", "d", "s1", "s2", "outside"],
        "events": [*_ran("a"), *_ignored("b"), *_ran("c", "d", "s1", "s2", "outside")],
    },
}

EXPECTED = {
    "depth_members": ["ALL", "FLOW", "NEIGHBORS", "ATOM"],
    "translate_flow": "FLOW",
    "widest": "FLOW",
}
for _depth, _fields in _BY_DEPTH.items():
    EXPECTED[f"{_depth}/flow_state"] = "SUCCESS"
    EXPECTED[f"{_depth}/ignored"] = _fields["ignored"]
    EXPECTED[f"{_depth}/ignore_intentions"] = _fields["ignored"]
    EXPECTED[f"{_depth}/journal"] = _fields["journal"]
    EXPECTED[f"{_depth}/events"] = ["flow root PENDING->RUNNING", *_fields["events"], "flow root RUNNING->SUCCESS"]
