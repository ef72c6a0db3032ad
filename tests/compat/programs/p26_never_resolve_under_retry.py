"""The engine option ``never_resolve=True``: a task fails inside a subflow controlled by ``Times(3)``, yet
the retry is never asked (no ``on_failure`` call, nothing recorded in its history), nothing is reverted or
retried, the flow ends FAILURE and ``run()`` re-raises the original exception.
"""

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


class ChecksumMismatch(Exception):
    pass


class Step(task.Task):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        return self.name

    def revert(self, result, **kwargs):
        JOURNAL.append(f"revert {self.name}")


class Verify(Step):
    def execute(self):
        JOURNAL.append(f"execute {self.name}")
        raise ChecksumMismatch("checksum mismatch")


class WatchedTimes(retry.Times):
    def on_failure(self, history, *args, **kwargs):
        JOURNAL.append(f"on_failure {self.name}")
        return super().on_failure(history, *args, **kwargs)

    def revert(self, history, *args, **kwargs):
        JOURNAL.append(f"revert {self.name}")


def main() -> dict:
    transfer = lf.Flow("transfer", retry=WatchedTimes(3, name="transfer_retry")).add(
        Step("copy", provides="copied"), Verify("verify"), Step("commit")
    )
    root = lf.Flow("root").add(Step("open", provides="opened"), transfer, Step("close"))
    engine = engines.load(root, never_resolve=True)
    with capturing.CaptureListener(engine) as capture:
        try:
            engine.run()
        except Exception as exc:
            raised = _observe.caught(exc, failure.Failure)
            raised["is_checksum_mismatch"] = isinstance(exc, ChecksumMismatch)
        else:
            raised = None
    history = engine.storage.get_retry_history("transfer_retry")
    return {
        **_observe.final_state(engine, ["transfer_retry", *_observe.atom_names(root, flow.Flow)], failure.Failure),
        "history": [(provided, sorted(outcomes)) for provided, outcomes in history],
        "execute_failures": sorted(engine.storage.get_execute_failures()),
        "raised": raised,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


_MISMATCH = (
    "<Failure: p26_never_resolve_under_retry.ChecksumMismatch: checksum mismatch "
    "types=['p26_never_resolve_under_retry.ChecksumMismatch', 'Exception']>"
)

EXPECTED = {
    "flow_state": "FAILURE",
    "atom_states": {
        "open": "SUCCESS",
        "transfer_retry": "SUCCESS",
        "copy": "SUCCESS",
        "verify": "FAILURE",
        "commit": "PENDING",
        "close": "PENDING",
    },
    "intentions": {
        "open": "EXECUTE",
        "transfer_retry": "EXECUTE",
        "copy": "EXECUTE",
        "verify": "EXECUTE",
        "commit": "EXECUTE",
        "close": "EXECUTE",
    },
    "fetch_all": {"opened": "open", "copied": "copy"},
    "history": [(1, [])],
    "execute_failures": ["verify"],
    "raised": {"type": "ChecksumMismatch", "message": "checksum mismatch", "is_checksum_mismatch": True},
    "journal": ["execute open", "execute copy", "execute verify"],
    "events": [
        "flow root PENDING->RUNNING",
        "task open PENDING->RUNNING",
        "task open RUNNING->SUCCESS result='open'",
        "retry transfer_retry PENDING->RUNNING",
        "retry transfer_retry RUNNING->SUCCESS result=1",
        "task copy PENDING->RUNNING",
        "task copy RUNNING->SUCCESS result='copy'",
        "task verify PENDING->RUNNING",
        f"task verify RUNNING->FAILURE result={_MISMATCH}",
        "flow root RUNNING->FAILURE",
    ],
}
