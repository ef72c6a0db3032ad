"""FailureFormatter and the DynamicLoggingListener that uses it.

The same flows run on ferroflow and, where installed, on TaskFlow 6.5: the predecessor trees must list
the same atoms with the same states, requires and provides (masked values as ``'***'``), in TaskFlow's
tree layout. ferroflow's execution graph has no flow nodes, so TaskFlow's ``Flow '<name>'`` lines are left
out of the comparison.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
import types

import pytest

from ferroflow import formatters, states
from ferroflow.listeners import logging as logging_listeners
from ferroflow.types.failure import Failure

try:
    from taskflow.types import tree as tf_tree

    HAVE_TASKFLOW = True
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    HAVE_TASKFLOW = False

needs_taskflow = pytest.mark.skipif(not HAVE_TASKFLOW, reason="no taskflow")


def _lib(flavour: str) -> types.SimpleNamespace:
    names = ["engines", "task", "formatters", "patterns.linear_flow", "patterns.graph_flow", "listeners.logging"]
    names += ["types.failure"]
    lib = types.SimpleNamespace(
        **{name.rpartition(".")[2]: importlib.import_module(f"{flavour}.{name}") for name in names}
    )
    task = lib.task

    class Happy(task.Task):
        def execute(self, x):
            return {"token": "secret-out", "n": 1}

    class RevertFails(task.Task):
        def execute(self):
            return [{"token": "t"}, 2]

        def revert(self, *args, **kwargs):
            raise ValueError("revert boom")

    class Broken(task.Task):
        def execute(self, x, **kwargs):
            raise RuntimeError("broken")

    class Plain(task.Task):
        def execute(self, **kwargs):
            return None

    lib.Happy, lib.RevertFails, lib.Broken, lib.Plain = Happy, RevertFails, Broken, Plain
    return lib


def _chain_flow(lib):
    """h1 -> rb -> h2 -> Broken; h2 takes h1's output, Broken fails; rb's revert fails too."""
    return lib.linear_flow.Flow("test").add(
        lib.Happy("h1", provides="p1"),
        lib.RevertFails("rb", provides="rbv"),
        lib.Happy("h2", provides="p2", rebind={"x": "p1"}),
        lib.Broken("Broken"),
    )


STORE = {"x": {"token": "secret-in", "k": 2}}


def _format_at_failure(lib, flow, make_formatter, matcher_for=None, store=STORE, engine_kw=None):
    """Runs ``flow`` and formats each failure as it is notified (when the engine's state is that of the
    failure); returns ``[(state, atom name, exc_info, details)]``."""
    engine = lib.engines.load(flow, store=store, **(engine_kw or {}))
    formatter = make_formatter(engine)
    seen = []

    def on_event(state, details):
        result = details.get("result")
        if isinstance(result, lib.failure.Failure):
            name = details["task_name"]
            matcher = (matcher_for or (lambda n: lambda node: node.item.name == n))(name)
            seen.append((state, name, *formatter.format(result, matcher)))

    engine.atom_notifier.register("*", on_event)
    with pytest.raises(Exception):  # noqa: B017 - TaskFlow and ferroflow raise different types here
        engine.run()
    return seen


def _masking_formatter(lib):
    return lambda engine: lib.formatters.FailureFormatter(
        engine, hide_inputs_outputs_of=["rb"], mask_inputs_keys=["token"], mask_outputs_keys=["token"]
    )


def _without_flow_nodes(details: str) -> list[str]:
    return [line for line in details.splitlines() if not re.match(r"^[ |]*(\|__)?Flow '", line)]


# -- through the engine ---------------------------------------------------------------------------


def test_predecessor_tree_with_masks_and_hidden_atoms():
    lib = _lib("ferroflow")
    seen = _format_at_failure(lib, _chain_flow(lib), _masking_formatter(lib))
    assert [(s, n) for s, n, _, _ in seen] == [(states.FAILURE, "Broken"), (states.REVERT_FAILURE, "rb")]
    _, _, exc_info, details = seen[0]
    assert exc_info[0] is RuntimeError and len(exc_info) == 3
    assert details.split(os.linesep) == [
        "3 predecessors (most recent first):",
        "  Atom 'h2' {'intention': 'EXECUTE', 'state': 'SUCCESS', 'requires': {'x': {'token': '***', 'n': 1}}, "
        "'provides': {'token': '***', 'n': 1}}",
        "  |__Atom 'rb' {'intention': 'EXECUTE', 'state': 'SUCCESS'}",
        "     |__Atom 'h1' {'intention': 'EXECUTE', 'state': 'SUCCESS', 'requires': {'x': {'token': '***', 'k': 2}}, "
        "'provides': {'token': '***', 'n': 1}}",
    ]
    assert "secret" not in details
    # A revert failure gets no tree (TaskFlow shows trees for execute failures only).
    assert seen[1][3] == ""


@needs_taskflow
def test_predecessor_tree_matches_taskflow():
    details = {}
    for flavour in ("taskflow", "ferroflow"):
        lib = _lib(flavour)
        seen = _format_at_failure(lib, _chain_flow(lib), _masking_formatter(lib))
        details[flavour] = [(state, name, exc_info is not None, d) for state, name, exc_info, d in seen]
    tf, ff = details["taskflow"], details["ferroflow"]
    assert [entry[:3] for entry in ff] == [entry[:3] for entry in tf]
    tf_lines = _without_flow_nodes(tf[0][3])
    ff_lines = ff[0][3].splitlines()
    # TaskFlow's count includes its flow node.
    assert tf_lines[0] == "4 predecessors (most recent first):" and ff_lines[0] == "3 predecessors (most recent first):"
    assert ff_lines[1:] == tf_lines[1:]
    assert ff[1][3] == tf[1][3] == ""


def _retry_flow(lib):
    """Broken fails under a Times retry (it keeps failing: two tries, then everything reverts)."""
    retry = importlib.import_module(f"{lib.task.__name__.partition('.')[0]}.retry")
    return lib.linear_flow.Flow("r", retry=retry.Times(2, name="times")).add(
        lib.Happy("h1", provides="p1"), lib.Broken("Broken")
    )


def test_retry_atoms_are_in_the_tree_and_each_try_is_formatted():
    lib = _lib("ferroflow")
    seen = _format_at_failure(lib, _retry_flow(lib), _masking_formatter(lib))
    assert [(state, name) for state, name, _, _ in seen] == [(states.FAILURE, "Broken")] * 2
    for _, _, _, details in seen:
        lines = details.splitlines()
        assert lines[:2] == [
            "2 predecessors (most recent first):",
            "  Atom 'h1' {'intention': 'EXECUTE', 'state': 'SUCCESS', 'requires': {'x': {'token': '***', 'k': 2}}, "
            "'provides': {'token': '***', 'n': 1}}",
        ]
        assert lines[2].startswith("  |__Atom 'times' {'intention': 'EXECUTE', 'state': 'SUCCESS', 'requires': {}")
        assert len(lines) == 3


@needs_taskflow
def test_retry_tree_matches_taskflow():
    trees = {}
    for flavour in ("taskflow", "ferroflow"):
        lib = _lib(flavour)
        seen = _format_at_failure(lib, _retry_flow(lib), _masking_formatter(lib))
        trees[flavour] = [
            [_FAILURE_REPR.sub("<Failure>", line) for line in _without_flow_nodes(details)[1:]]
            for _, _, _, details in seen
        ]
    assert trees["ferroflow"] == trees["taskflow"] and len(trees["ferroflow"]) == 2


# TaskFlow's Failure has the default object repr; ferroflow's names the exception.
_FAILURE_REPR = re.compile(r"<taskflow\.types\.failure\.Failure object at 0x[0-9a-f]+>|<Failure '[^']*'>")


def test_graph_flow_shares_ancestors_and_direct_predecessors_come_first():
    """A diamond: the shared ancestor appears under each branch (TaskFlow's tree of a DAG)."""
    lib = _lib("ferroflow")
    flow = lib.graph_flow.Flow("g").add(
        lib.Happy("top", provides="t"),
        lib.Happy("left", provides="l", rebind={"x": "t"}),
        lib.Happy("right", provides="r", rebind={"x": "t"}),
        lib.Broken("Broken", requires=["l", "r"]),
    )
    seen = _format_at_failure(lib, flow, lambda e: formatters.FailureFormatter(e, hide_inputs_outputs_of=["top"]))
    lines = seen[0][3].splitlines()
    assert lines[0] == "4 predecessors (most recent first):"
    atoms = [re.search(r"Atom '(\w+)'", line).group(1) for line in lines[1:]]
    assert sorted(atoms) == ["left", "right", "top", "top"]
    assert lines[2] == lines[4] == "  |__Atom 'top' {'intention': 'EXECUTE', 'state': 'SUCCESS'}"


def test_generic_matcher_and_name_carrying_matcher_agree():
    lib = _lib("ferroflow")
    results = []
    for matcher_for in (None, logging_listeners._make_matcher):
        seen = _format_at_failure(lib, _chain_flow(lib), _masking_formatter(lib), matcher_for=matcher_for)
        results.append(seen[0][3].splitlines())
    assert results[0] == results[1] and len(results[0]) == 4
    assert logging_listeners._make_matcher("Broken").atom_name == "Broken"


def test_unmatched_atom_gives_no_tree():
    lib = _lib("ferroflow")
    seen = _format_at_failure(
        lib, _chain_flow(lib), _masking_formatter(lib), matcher_for=lambda name: lambda node: False
    )
    assert [details for _, _, _, details in seen] == ["", ""]
    # The listener's matcher only accepts tasks: a retry of that name would not match either.
    matcher = logging_listeners._make_matcher("h1")
    assert not matcher(formatters.AtomNode(0, object(), "retry"))


def test_tree_is_capped_on_huge_dags():
    """Ten layers of two atoms, each depending on both atoms of the layer before: the tree of the last
    atom's predecessors would have over two thousand nodes; it is cut at the cap, quickly."""
    lib = _lib("ferroflow")
    flow = lib.graph_flow.Flow("g")
    previous: list[str] = []
    for layer in range(10):
        names = [f"n{layer}_{i}" for i in range(2)]
        for name in names:
            flow.add(lib.Plain(name, provides=name, requires=previous))
        previous = names
    flow.add(lib.Broken("Broken", requires=previous, inject={"x": 1}))
    started = time.monotonic()
    seen = _format_at_failure(lib, flow, lambda e: formatters.FailureFormatter(e, max_predecessors=25), store={})
    assert time.monotonic() - started < 5
    lines = seen[0][3].splitlines()
    assert lines[0] == "25 predecessors (most recent first):"
    assert lines[-1] == "  ... (more predecessors not shown: limit of 25 reached)"
    assert len(lines) == 27
    # Breadth first: the direct predecessors are both there, at the top level.
    top_level = [line for line in lines[1:-1] if line.startswith("  Atom")]
    assert sorted(re.search(r"'(\w+)'", line).group(1) for line in top_level) == ["n9_0", "n9_1"]


def test_failure_without_exc_info_puts_its_traceback_first():
    lib = _lib("ferroflow")

    def make(engine):
        inner = formatters.FailureFormatter(engine)

        class Remote:
            def format(self, fail, matcher):
                return inner.format(Failure.from_dict(fail.to_dict()), matcher)

        return Remote()

    seen = _format_at_failure(lib, _chain_flow(lib), make)
    _, _, exc_info, details = seen[0]
    assert exc_info is None
    head, _, tree = details.partition(os.linesep + "3 predecessors")
    assert head.startswith("Failure: RuntimeError: broken") and "Traceback" in head
    assert tree.startswith(" (most recent first):")


def test_formatter_before_compile_returns_the_failure_only():
    lib = _lib("ferroflow")
    engine = lib.engines.load(_chain_flow(lib), store=STORE)
    try:
        raise RuntimeError("early")
    except RuntimeError:
        fail = Failure()
    exc_info, details = formatters.FailureFormatter(engine).format(fail, lambda node: True)
    assert exc_info[1] is fail.exc_info[1] and details == ""


@pytest.mark.parametrize("flavour", ["ferroflow", pytest.param("taskflow", marks=needs_taskflow)])
def test_after_the_run_no_tree_is_shown(flavour):
    """TaskFlow's own test: once reverted, the failed atom's intention is REVERT: no tree."""
    lib = _lib(flavour)
    flow = lib.linear_flow.Flow("test").add(lib.Plain("Happy-1"), lib.Plain("Happy-2"), lib.Broken("Broken"))
    engine = lib.engines.load(flow, store=STORE)
    with pytest.raises(RuntimeError):
        engine.run()
    fails = engine.storage.get_execute_failures()
    assert list(fails) == ["Broken"]
    exc_info, details = lib.formatters.FailureFormatter(engine).format(
        fails["Broken"], lambda node: node.item.name == "Broken"
    )
    assert len(exc_info) == 3 and details == ""


# -- masking --------------------------------------------------------------------------------------


def test_mask_keys_edge_cases():
    keys = frozenset({"certificate"})
    mask = formatters.mask_keys
    assert mask({}, keys) == {} and mask([], keys) == []
    assert mask({"a": 1, "b": "hello"}, keys) == {"a": 1, "b": "hello"}
    assert mask({"certificate": "secret"}, keys) == {"certificate": "***"}
    assert mask({"certificate": None}, keys) == {"certificate": "***"}
    assert mask([{"certificate": "secret"}, {"a": "b"}], keys) == [{"certificate": "***"}, {"a": "b"}]
    nested = {"listeners": [{"tls": {"id": "4d2b", "certificate": "secret_data"}, "limit": -1}]}
    masked = mask(nested, keys)
    assert masked == {"listeners": [{"tls": {"id": "4d2b", "certificate": "***"}, "limit": -1}]}
    assert nested["listeners"][0]["tls"]["certificate"] == "secret_data"  # the input is not modified
    assert mask(({"certificate": 1}, 2), keys) == ({"certificate": "***"}, 2)  # ferroflow: tuples too
    for value in ("some string", 12345, None, False, 0):
        assert mask(value, keys) is value
    assert mask({"a": 1}, ()) == {"a": 1}


@needs_taskflow
def test_mask_keys_agrees_with_taskflow_on_dicts_and_lists():
    from taskflow import formatters as tf_formatters

    tf = tf_formatters.FailureFormatter(None)
    samples = [
        {"certificate": 1, "x": [{"certificate": {"deep": 1}}, 3]},
        [[{"a": {"certificate": []}}]],
        {"x": {"y": {"z": "certificate"}}},
    ]
    for sample in samples:
        assert formatters.mask_keys(sample, {"certificate"}) == tf._mask_keys(sample, ("certificate",))


# -- the tree layout ------------------------------------------------------------------------------


def _shape(spec):
    """A `_Tree` from nested ``(index, [children])`` tuples."""
    index, children = spec
    node = formatters._Tree(index)
    node.children = [_shape(child) for child in children]
    return node


def _tf_shape(spec):
    index, children = spec
    node = tf_tree.Node(index)
    for child in children:
        node.add(_tf_shape(child))
    return node


@needs_taskflow
@pytest.mark.parametrize(
    "spec",
    [
        (0, []),
        (0, [(1, [])]),
        (0, [(1, [(2, [(3, [])])]), (4, []), (5, [])]),
        (0, [(1, [(2, []), (3, [(4, []), (5, [])])]), (6, [(7, [(8, [])]), (9, [])])]),
        (0, [(1, [(2, [(3, [(4, [])]), (5, [])])]), (6, [(7, []), (8, [(9, []), (10, [])])])]),
    ],
)
def test_tree_layout_is_taskflows(spec):
    label = lambda node: f"node{node.index}"  # noqa: E731
    ours = os.linesep.join(formatters._render(_shape(spec), label))
    theirs = _tf_shape(spec).pformat(stringify_node=lambda node: f"node{node.item}", starting_prefix="  ")
    assert ours == theirs


# -- DynamicLoggingListener -----------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _logger(name: str) -> tuple[logging.Logger, _Records]:
    log = logging.getLogger(f"test_formatters.{name}")
    log.propagate = False
    log.handlers[:] = []
    handler = _Records()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    return log, handler


def _run_logged(flavour: str, name: str, **listener_kw) -> list[logging.LogRecord]:
    lib = _lib(flavour)
    log, handler = _logger(f"{flavour}.{name}")
    engine = lib.engines.load(_chain_flow(lib), store=STORE)
    with lib.logging.DynamicLoggingListener(engine, log=log, **listener_kw), pytest.raises(Exception):  # noqa: B017
        engine.run()
    return handler.records


def _normalise_record(record: logging.LogRecord) -> tuple[int, str]:
    text = re.sub(r"\([0-9a-f-]{36}\)", "(UUID)", record.getMessage())
    lines = _without_flow_nodes(text)
    lines = [re.sub(r"^\d+ predecessors", "N predecessors", line) for line in lines]
    return record.levelno, os.linesep.join(lines)


def test_dynamic_logging_masks_and_hides():
    records = _run_logged(
        "ferroflow", "masks", hide_inputs_outputs_of=["rb"], mask_inputs_keys=["token"], mask_outputs_keys=["token"]
    )
    text = "\n".join(r.getMessage() for r in records)
    assert "secret" not in text
    assert "Task 'h1' (" in text and "with result '{'token': '***', 'n': 1}'" in text
    messages = [r.getMessage() for r in records]
    rb_success = [m for m in messages if "'rb'" in m and "into state 'SUCCESS'" in m]
    assert len(rb_success) == 1 and "with result" not in rb_success[0]  # hidden
    failure = next(r for r in records if "'Broken'" in r.getMessage() and "into state 'FAILURE'" in r.getMessage())
    assert failure.levelno == logging.WARNING and failure.exc_info[0] is RuntimeError
    assert failure.getMessage().split(os.linesep)[1] == "3 predecessors (most recent first):"
    revert_failure = next(r for r in records if "'REVERT_FAILURE'" in r.getMessage())
    assert revert_failure.exc_info[0] is ValueError and os.linesep not in revert_failure.getMessage()


def test_dynamic_logging_levels():
    records = _run_logged("ferroflow", "levels", failure_level=logging.ERROR, level=logging.INFO)
    by_level = {}
    for record in records:
        by_level.setdefault(record.levelno, []).append(record.getMessage())
    assert set(by_level) == {logging.INFO, logging.ERROR}
    assert any("Flow 'test'" in m and "into state 'FAILURE'" in m for m in by_level[logging.ERROR])
    assert all("into state 'RUNNING'" not in m for m in by_level[logging.ERROR])
    assert sum(1 for r in records if r.exc_info) == 2  # the execute failure and the revert failure


def test_dynamic_logging_custom_formatter_is_used():
    calls = []

    class Formatter:
        def format(self, fail, matcher):
            calls.append(matcher)
            return fail.exc_info, "custom details"

    records = _run_logged("ferroflow", "custom", fail_formatter=Formatter())
    assert len(calls) == 2 and calls[0].atom_name == "Broken" and calls[1].atom_name == "rb"
    failure = next(r for r in records if "into state 'FAILURE'" in r.getMessage() and "Task" in r.getMessage())
    assert failure.getMessage().endswith(os.linesep + "custom details")


@needs_taskflow
def test_dynamic_logging_records_match_taskflow():
    """Same levels and messages (uuids and flow nodes aside) — except that ferroflow masks
    ``mask_outputs_keys`` in logged results where TaskFlow logs them as they are."""
    kw = {"hide_inputs_outputs_of": ["rb"], "mask_inputs_keys": ["token"], "mask_outputs_keys": ["token"]}
    ours = [_normalise_record(r) for r in _run_logged("ferroflow", "cmp", **kw)]
    theirs = [_normalise_record(r) for r in _run_logged("taskflow", "cmp", **kw)]
    theirs = [(level, text.replace("'secret-out'", "'***'")) for level, text in theirs]
    assert ours == theirs
