"""State tables and the integer codes shared with the Rust scheduler."""

from __future__ import annotations

import itertools

import pytest

from ferroflow import exceptions, states

try:
    import taskflow.exceptions as tf_exceptions
    import taskflow.states as tf_states
except ImportError:  # pragma: no cover - the comparison tests need TaskFlow 6.5
    tf_states = None

needs_taskflow = pytest.mark.skipif(tf_states is None, reason="taskflow is not installed")

ALL_STATES = sorted(
    {*states.FLOW_STATES, *states.ATOM_STATES, states.CLAIMED, states.COMPLETE, states.UNCLAIMED, "BOGUS"}
)


def outcome(check, a, b, invalid):
    try:
        return check(a, b)
    except invalid:
        return "invalid"


@needs_taskflow
@pytest.mark.parametrize("name", ["flow", "task", "retry", "job"])
def test_transition_tables_match_taskflow(name):
    ours = getattr(states, f"check_{name}_transition")
    theirs = getattr(tf_states, f"check_{name}_transition")
    for a, b in itertools.product(ALL_STATES, repeat=2):
        assert outcome(ours, a, b, exceptions.InvalidState) == outcome(theirs, a, b, tf_exceptions.InvalidState), (
            name,
            a,
            b,
        )


@needs_taskflow
def test_constants_match_taskflow():
    for name in dir(tf_states):
        if name.isupper() and not name.startswith("_"):
            assert getattr(states, name) == getattr(tf_states, name), name


def test_flow_transitions():
    assert states.check_flow_transition(states.PENDING, states.RUNNING) is True
    assert states.check_flow_transition(states.RUNNING, states.RUNNING) is False
    # Suspending or resuming a flow that is not running is ignored, not an error.
    assert states.check_flow_transition(states.SUCCESS, states.SUSPENDING) is False
    assert states.check_flow_transition(states.REVERTED, states.RESUMING) is False
    with pytest.raises(exceptions.InvalidState, match="Flow transition from 'PENDING' to 'SUCCESS'"):
        states.check_flow_transition(states.PENDING, states.SUCCESS)
    with pytest.raises(exceptions.InvalidState):
        states.check_flow_transition(states.REVERTING, states.RESUMING)


def test_atom_transitions():
    assert states.check_task_transition(states.PENDING, states.RUNNING)
    assert not states.check_task_transition(states.SUCCESS, states.RETRYING)
    assert states.check_retry_transition(states.SUCCESS, states.RETRYING)
    assert states.check_retry_transition(states.RETRYING, states.RUNNING)
    assert not states.check_task_transition(states.REVERT_FAILURE, states.PENDING)
    with pytest.raises(exceptions.InvalidState):
        states.check_job_transition(states.COMPLETE, states.CLAIMED)


def test_codes_shared_with_rust():
    assert states.ATOM_STATE_CODES == {
        "PENDING": 0,
        "RUNNING": 1,
        "SUCCESS": 2,
        "FAILURE": 3,
        "REVERTING": 4,
        "REVERTED": 5,
        "REVERT_FAILURE": 6,
        "IGNORE": 7,
        "RETRYING": 8,
    }
    assert states.INTENTION_CODES == {"EXECUTE": 0, "REVERT": 1, "RETRY": 2, "IGNORE": 3}
    for code, state in enumerate(states.ATOM_STATES_BY_CODE):
        assert states.ATOM_STATE_CODES[state] == code
    for code, intention in enumerate(states.INTENTIONS_BY_CODE):
        assert states.INTENTION_CODES[intention] == code
    assert set(states.INTENTIONS) == set(states.INTENTIONS_BY_CODE)
    assert tuple(states.ATOM_STATES_BY_CODE) == states.ATOM_STATES
