"""pre/post hooks of execute and revert run around the atom's own call, exactly when overridden."""

from __future__ import annotations

import pytest

from ferroflow import engines, task
from ferroflow.patterns import linear_flow

CALLS: list[str] = []


class Hooked(task.Task):
    def pre_execute(self) -> None:
        CALLS.append(f"pre_execute {self.name}")

    def execute(self) -> str:
        CALLS.append(f"execute {self.name}")
        return self.name

    def post_execute(self) -> None:
        CALLS.append(f"post_execute {self.name}")

    def pre_revert(self) -> None:
        CALLS.append(f"pre_revert {self.name}")

    def revert(self, **kwargs) -> None:
        CALLS.append(f"revert {self.name}")

    def post_revert(self) -> None:
        CALLS.append(f"post_revert {self.name}")


class Plain(task.Task):
    def execute(self) -> None:
        CALLS.append(f"execute {self.name}")


class Failing(task.Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


def test_execute_hooks_wrap_execute_and_plain_tasks_run_without_them() -> None:
    engines.run(linear_flow.Flow("f").add(Hooked("a"), Plain("b")))
    assert CALLS == ["pre_execute a", "execute a", "post_execute a", "execute b"]


def test_post_execute_runs_even_when_execute_fails_and_revert_hooks_wrap_revert() -> None:
    flow = linear_flow.Flow("f").add(Hooked("a"), Failing("b"))
    with pytest.raises(RuntimeError, match="boom"):
        engines.run(flow)
    assert CALLS == [
        "pre_execute a",
        "execute a",
        "post_execute a",
        "pre_revert a",
        "revert a",
        "post_revert a",
    ]
