"""States and intentions of jobs, flows and atoms, and their transition rules (``taskflow.states``).

The names and tables are TaskFlow's. In addition, every atom state and intention has a small integer
code (:data:`ATOM_STATE_CODES`, :data:`INTENTION_CODES`): the Rust scheduler keeps states as these codes,
so their order is part of the contract with ``ferroflow._core`` and must not change.
"""

from __future__ import annotations

from ferroflow import exceptions as exc

# Job states.
CLAIMED = "CLAIMED"
COMPLETE = "COMPLETE"
UNCLAIMED = "UNCLAIMED"

# Flow states (FAILURE..RUNNING are shared with atoms).
FAILURE = "FAILURE"
PENDING = "PENDING"
REVERTING = "REVERTING"
REVERTED = "REVERTED"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
SUSPENDING = "SUSPENDING"
SUSPENDED = "SUSPENDED"
RESUMING = "RESUMING"

# Atom-only states.
RETRYING = "RETRYING"  #: retries only
IGNORE = "IGNORE"
REVERT_FAILURE = "REVERT_FAILURE"

# Atom intentions (what the engine means to do with an atom next).
EXECUTE = "EXECUTE"
REVERT = "REVERT"
RETRY = "RETRY"
INTENTIONS = (EXECUTE, IGNORE, REVERT, RETRY)

# Engine-internal (execution loop) states.
SCHEDULING = "SCHEDULING"
WAITING = "WAITING"
ANALYZING = "ANALYZING"

#: Every state a flow can be in (REVERTING exists for compatibility; the engine never sets it on a flow).
FLOW_STATES = (PENDING, RUNNING, SUCCESS, FAILURE, REVERTING, REVERTED, SUSPENDING, SUSPENDED, RESUMING)
#: The states a flow's run stops in by itself (anything else that stops a run leaves it elsewhere).
RUN_ENDS = frozenset({SUCCESS, REVERTED, FAILURE, SUSPENDED})

#: Every state an atom can be in, in the order of their integer codes.
ATOM_STATES = (PENDING, RUNNING, SUCCESS, FAILURE, REVERTING, REVERTED, REVERT_FAILURE, IGNORE, RETRYING)

#: Atom state -> integer code shared with the Rust scheduler (``PENDING=0 … RETRYING=8``).
ATOM_STATE_CODES: dict[str, int] = {state: code for code, state in enumerate(ATOM_STATES)}
#: Integer code -> atom state (the reverse of :data:`ATOM_STATE_CODES`).
ATOM_STATES_BY_CODE: list[str] = list(ATOM_STATES)

#: Intention -> integer code shared with the Rust scheduler (``EXECUTE=0, REVERT=1, RETRY=2, IGNORE=3``).
INTENTION_CODES: dict[str, int] = {EXECUTE: 0, REVERT: 1, RETRY: 2, IGNORE: 3}
#: Integer code -> intention (the reverse of :data:`INTENTION_CODES`).
INTENTIONS_BY_CODE: list[str] = [EXECUTE, REVERT, RETRY, IGNORE]


_ALLOWED_JOB_TRANSITIONS = frozenset(
    {
        (UNCLAIMED, CLAIMED),
        (CLAIMED, UNCLAIMED),
        (CLAIMED, COMPLETE),
    }
)


def check_job_transition(old_state: str, new_state: str) -> bool:
    """True if a job may move ``old_state`` -> ``new_state``; False if the move is to be ignored
    (same state); raises :class:`~ferroflow.exceptions.InvalidState` otherwise."""
    if old_state == new_state:
        return False
    pair = (old_state, new_state)
    if pair in _ALLOWED_JOB_TRANSITIONS:
        return True
    raise exc.InvalidState(f"Job transition from '{old_state}' to '{new_state}' is not allowed")


_ALLOWED_FLOW_TRANSITIONS = frozenset(
    {
        (PENDING, RUNNING),
        (RUNNING, SUCCESS),
        (RUNNING, FAILURE),
        (RUNNING, REVERTED),
        (RUNNING, SUSPENDING),
        (RUNNING, RESUMING),
        # A finished flow may be run again (for example after atoms were added on resumption).
        (SUCCESS, RUNNING),
        (FAILURE, RUNNING),
        (REVERTED, PENDING),
        (SUCCESS, PENDING),
        (SUSPENDING, SUSPENDED),
        # Atoms still running when suspend() was called may finish the flow.
        (SUSPENDING, SUCCESS),
        (SUSPENDING, FAILURE),
        (SUSPENDING, REVERTED),
        (SUSPENDING, RESUMING),
        (SUSPENDED, RUNNING),
        (RESUMING, SUSPENDED),
    }
)

# Suspending or resuming a flow that is not running is a no-op rather than an error.
_IGNORED_FLOW_TRANSITIONS = frozenset(
    (a, b)
    for a in (PENDING, FAILURE, SUCCESS, SUSPENDED, REVERTED)
    for b in (SUSPENDING, SUSPENDED, RESUMING)
    if a != b
)


def check_flow_transition(old_state: str, new_state: str) -> bool:
    """True if a flow may move ``old_state`` -> ``new_state``; False if the move is to be ignored
    (same state, or suspending/resuming a flow that is not running); raises
    :class:`~ferroflow.exceptions.InvalidState` otherwise."""
    if old_state == new_state:
        return False
    pair = (old_state, new_state)
    if pair in _ALLOWED_FLOW_TRANSITIONS:
        return True
    if pair in _IGNORED_FLOW_TRANSITIONS:
        return False
    raise exc.InvalidState(f"Flow transition from '{old_state}' to '{new_state}' is not allowed")


_ALLOWED_TASK_TRANSITIONS = frozenset(
    {
        (PENDING, RUNNING),
        (PENDING, IGNORE),
        (RUNNING, SUCCESS),
        (RUNNING, FAILURE),
        (FAILURE, REVERTING),
        (SUCCESS, REVERTING),
        (REVERTING, REVERTED),
        (REVERTING, REVERT_FAILURE),  # terminal
        (REVERTED, PENDING),
        (IGNORE, PENDING),
    }
)


def check_task_transition(old_state: str, new_state: str) -> bool:
    """True if a task may move ``old_state`` -> ``new_state``, False otherwise."""
    return (old_state, new_state) in _ALLOWED_TASK_TRANSITIONS


_ALLOWED_RETRY_TRANSITIONS = _ALLOWED_TASK_TRANSITIONS | {
    (SUCCESS, RETRYING),
    (RETRYING, RUNNING),
}


def check_retry_transition(old_state: str, new_state: str) -> bool:
    """True if a retry may move ``old_state`` -> ``new_state``, False otherwise."""
    return (old_state, new_state) in _ALLOWED_RETRY_TRANSITIONS
