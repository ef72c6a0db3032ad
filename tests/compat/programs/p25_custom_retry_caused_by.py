"""A user-written ``Retry`` subclass: ``execute`` computes a timeout from its stored argument and the
history, ``on_failure`` retries transient errors and gives up (REVERT) once ``history.caused_by`` finds a
permanent one, and ``revert`` receives the history plus ``flow_failures``.

The retry is the root flow's, so REVERT (no parent retry) reverts its flow and the flow ends REVERTED
re-raising the permanent error.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []
CALLS = {"login": 0}


class TransientError(Exception):
    pass


class BadCredentials(PermissionError):
    pass


class BackoffRetry(retry.Retry):
    """Doubles the timeout per attempt; retries transient failures only."""

    def execute(self, history, base_timeout):
        timeout = base_timeout * 2 ** len(history)
        JOURNAL.append(f"execute {self.name} attempts_so_far={len(history)} -> {timeout}")
        return timeout

    def on_failure(self, history, base_timeout):
        checks = {
            "transient_any": history.caused_by(TransientError),
            "transient_last": history.caused_by(TransientError, index=-1),
            "permission_by_name": history.caused_by("PermissionError"),
            "with_retry_failure": history.caused_by(TransientError, include_retry=True),
            "own_failure": history.failure,
        }
        decision = retry.REVERT if checks["permission_by_name"] else retry.RETRY
        JOURNAL.append(f"on_failure {self.name} base={base_timeout} len={len(history)} {checks} -> {decision}")
        return decision

    def revert(self, history, base_timeout, flow_failures):
        JOURNAL.append(
            f"revert {self.name} base={base_timeout} provided={list(history.provided_iter())} "
            f"flow_failures={ {name: fail.exception_str for name, fail in flow_failures.items()} }"
        )


class Login(task.Task):
    def execute(self, timeout):
        CALLS["login"] += 1
        JOURNAL.append(f"execute {self.name} timeout={timeout} call={CALLS['login']}")
        if CALLS["login"] == 1:
            raise TransientError("connection reset")
        raise BadCredentials("password expired")

    def revert(self, timeout, result, flow_failures, **kwargs):
        JOURNAL.append(f"revert {self.name} timeout={timeout} result={result.exception_str}")


class Audit(task.Task):
    def execute(self, timeout):
        JOURNAL.append(f"execute {self.name} timeout={timeout}")
        return f"audited@{timeout}"

    def revert(self, timeout, result, flow_failures, **kwargs):
        JOURNAL.append(f"revert {self.name} timeout={timeout} result={result}")


def main() -> dict:
    backoff = BackoffRetry(name="backoff", provides="timeout")
    session = lf.Flow("session", retry=backoff).add(Audit("audit", provides="audit"), Login("login"))
    engine = engines.load(session, store={"base_timeout": 5})
    with capturing.CaptureListener(engine) as capture:
        try:
            engine.run()
        except Exception as exc:
            raised = _observe.caught(exc, failure.Failure)
            raised["is_permission_error"] = isinstance(exc, PermissionError)
        else:
            raised = None
    return {
        **_observe.final_state(engine, ["backoff", *_observe.atom_names(session, flow.Flow)], failure.Failure),
        "retry_requires": sorted(backoff.requires),
        "retry_provides": sorted(backoff.provides),
        "raised": raised,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


def _failure(cls: str, types: str, message: str) -> str:
    return f"<Failure: p25_custom_retry_caused_by.{cls}: {message} types=['p25_custom_retry_caused_by.{cls}', {types}]>"


_TRANSIENT = _failure("TransientError", "'Exception'", "connection reset")
_BAD_CREDENTIALS = _failure("BadCredentials", "'PermissionError', 'OSError', 'Exception'", "password expired")

EXPECTED = {
    "flow_state": "REVERTED",
    "atom_states": {"backoff": "REVERTED", "audit": "REVERTED", "login": "REVERTED"},
    "intentions": {"backoff": "REVERT", "audit": "REVERT", "login": "REVERT"},
    "fetch_all": {"base_timeout": 5},
    "retry_requires": ["base_timeout"],
    "retry_provides": ["timeout"],
    "raised": {"type": "BadCredentials", "message": "password expired", "is_permission_error": True},
    "journal": [
        "execute backoff attempts_so_far=0 -> 5",
        "execute audit timeout=5",
        "execute login timeout=5 call=1",
        "on_failure backoff base=5 len=1 {'transient_any': True, 'transient_last': True, "
        "'permission_by_name': False, 'with_retry_failure': True, 'own_failure': None} -> RETRY",
        "revert login timeout=5 result=connection reset",
        "revert audit timeout=5 result=audited@5",
        "execute backoff attempts_so_far=1 -> 10",
        "execute audit timeout=10",
        "execute login timeout=10 call=2",
        "on_failure backoff base=5 len=2 {'transient_any': True, 'transient_last': False, "
        "'permission_by_name': True, 'with_retry_failure': True, 'own_failure': None} -> REVERT",
        "revert login timeout=10 result=password expired",
        "revert audit timeout=10 result=audited@10",
        "revert backoff base=5 provided=[5, 10] flow_failures={'login': 'password expired'}",
    ],
    "events": [
        "flow session PENDING->RUNNING",
        "retry backoff PENDING->RUNNING",
        "retry backoff RUNNING->SUCCESS result=5",
        "task audit PENDING->RUNNING",
        "task audit RUNNING->SUCCESS result='audited@5'",
        "task login PENDING->RUNNING",
        f"task login RUNNING->FAILURE result={_TRANSIENT}",
        "task login FAILURE->REVERTING",
        "task login REVERTING->REVERTED result=None",
        "task audit SUCCESS->REVERTING",
        "task audit REVERTING->REVERTED result=None",
        "retry backoff SUCCESS->RETRYING",
        "task audit REVERTED->PENDING",
        "task login REVERTED->PENDING",
        "retry backoff RETRYING->RUNNING",
        "retry backoff RUNNING->SUCCESS result=10",
        "task audit PENDING->RUNNING",
        "task audit RUNNING->SUCCESS result='audited@10'",
        "task login PENDING->RUNNING",
        f"task login RUNNING->FAILURE result={_BAD_CREDENTIALS}",
        "task login FAILURE->REVERTING",
        "task login REVERTING->REVERTED result=None",
        "task audit SUCCESS->REVERTING",
        "task audit REVERTING->REVERTED result=None",
        "retry backoff SUCCESS->REVERTING",
        "retry backoff REVERTING->REVERTED result=None",
        "flow session RUNNING->REVERTED",
    ],
}
