"""What a prepare reads of the atom objects, and when: ``inject`` and the atoms' own version
policies are read at prepare (as TaskFlow reads ``inject``), in one pass over the atoms when both
are needed (`_core.indices_having`)."""

from __future__ import annotations

import pytest

from ferroflow import _core, engines, exceptions, task
from ferroflow.benchmarking import flows
from ferroflow.patterns import linear_flow
from ferroflow.persistence import models


class Echo(task.Task):
    def execute(self, x):
        return x


class Odd:
    """An object whose attributes read as set, None, missing, or failing."""

    def __init__(self, inject=None, policy=None):
        if inject is not None:
            self.inject = inject
        self.on_version_change = policy

    @property
    def broken(self):
        raise RuntimeError("cannot read")


def test_indices_having_lists_the_objects_with_each_attribute_set_and_not_none() -> None:
    objects = [Odd(), Odd(inject={}), Odd(policy="rerun"), Odd(inject={"x": 1}, policy="fail")]
    assert _core.indices_having(objects, ("inject", "on_version_change")) == [[1, 3], [2, 3]]
    assert _core.indices_having([], ("inject",)) == [[]]
    with pytest.raises(RuntimeError, match="cannot read"):
        _core.indices_having(objects, ("broken",))


@pytest.mark.parametrize("durable", [False, True])
def test_what_an_atom_injects_is_read_at_prepare_not_at_compile(sqlite_backend, durable) -> None:
    echo = Echo("echo", provides="y", inject={"x": "at build"})
    flow = linear_flow.Flow("f").add(echo)
    engine = engines.load(flow, book=models.LogBook("b"), backend=sqlite_backend) if durable else engines.load(flow)
    engine.compile()
    echo.inject = {"x": "set after compile"}
    engine.prepare()
    engine.run()
    assert engine.storage.fetch("y") == "set after compile"


def test_an_atoms_own_version_policy_is_read_at_prepare_and_a_bad_one_named(sqlite_backend) -> None:
    echo = Echo("echo", provides="y", inject={"x": 1})
    engine = engines.load(linear_flow.Flow("f").add(echo), book=models.LogBook("b"), backend=sqlite_backend)
    engine.compile()
    echo.on_version_change = "sometimes"
    with pytest.raises((ValueError, exceptions.TaskFlowException), match="echo"):
        engine.prepare()
    assert engine.compilation.own_policy_atoms is None  # (kept for that prepare only)


def test_a_new_flow_does_not_look_for_saved_results_that_no_longer_fit(sqlite_backend) -> None:
    engine = engines.load(flows.random_dag(200), book=models.LogBook("b"), backend=sqlite_backend)
    engine.compile()
    engine.prepare()
    assert engine.compilation.structured_provides is None  # (every atom provides: none looked at)
    engine.run()
