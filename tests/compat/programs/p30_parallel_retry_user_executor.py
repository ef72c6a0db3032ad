"""A retry on the parallel engine, running on a ``ThreadPoolExecutor`` the program owns.

``Times(3)`` controls an unordered subflow of two tasks that run at the same time on the pool (they meet at
a barrier); one of them fails on its first attempt. Both are reverted once they have finished, the retry
runs again and the second attempt succeeds. Tasks run on the pool's threads, the retry on the engine's
(the caller's) thread, and the pool stays usable afterwards.
"""

import threading
from concurrent import futures

from taskflow import engines, flow, retry, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.types import failure

from . import _observe

POOL_PREFIX = "compat-retry-pool"
JOURNAL: list[str] = []
THREADS: dict[str, set[str]] = {}
BARRIER = threading.Barrier(2, timeout=10)
MET_AT_BARRIER: list[bool] = []
_lock = threading.Lock()


class NodeBusy(Exception):
    pass


def _note(who: str, what: str) -> None:
    on_pool = threading.current_thread().name.startswith(POOL_PREFIX)
    with _lock:
        JOURNAL.append(f"{what} {who}")
        THREADS.setdefault(who, set()).add("pool" if on_pool else "engine")


class Replicate(task.Task):
    def execute(self, attempt):
        _note(self.name, f"execute#{attempt}")
        if attempt == 1:
            try:
                BARRIER.wait()
                met = True
            except threading.BrokenBarrierError:
                met = False
            with _lock:
                MET_AT_BARRIER.append(met)
        if self.name == "replica_b" and attempt == 1:
            raise NodeBusy("node b busy")
        return f"{self.name}@{attempt}"

    def revert(self, attempt, result, **kwargs):
        _note(self.name, f"revert#{attempt}")


class PoolTimes(retry.Times):
    def execute(self, history, *args, **kwargs):
        _note(self.name, "execute")
        return super().execute(history, *args, **kwargs)

    def on_failure(self, history, *args, **kwargs):
        _note(self.name, "on_failure")
        return super().on_failure(history, *args, **kwargs)


class Publish(task.Task):
    def execute(self, replica_a, replica_b):
        _note(self.name, "execute")
        return [replica_a, replica_b]


def main() -> dict:
    replicas = uf.Flow("replicas", retry=PoolTimes(3, name="replicas_retry", provides="attempt")).add(
        Replicate("replica_a", provides="replica_a"), Replicate("replica_b", provides="replica_b")
    )
    release = lf.Flow("release").add(replicas, Publish("publish", provides="published"))
    with futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix=POOL_PREFIX) as pool:
        engine = engines.load(release, engine="parallel", executor=pool)
        with capturing.CaptureListener(engine) as capture:
            engine.run()
        pool_still_usable = pool.submit(sum, [1, 2, 3]).result(timeout=10)
    history = engine.storage.get_retry_history("replicas_retry")
    return {
        **_observe.final_state(engine, ["replicas_retry", *_observe.atom_names(release, flow.Flow)], failure.Failure),
        "history": [(provided, sorted(outcomes)) for provided, outcomes in history],
        "met_at_barrier": list(MET_AT_BARRIER),
        "threads": {who: sorted(kinds) for who, kinds in THREADS.items()},
        "pool_still_usable": pool_still_usable,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


# The two replicas run concurrently: calls are compared as a set, notifications per atom.
COMPARE_AS = {"journal": "multiset", "events": "per_atom"}

_BUSY = (
    "<Failure: p30_parallel_retry_user_executor.NodeBusy: node b busy "
    "types=['p30_parallel_retry_user_executor.NodeBusy', 'Exception']>"
)

EXPECTED = {
    "flow_state": "SUCCESS",
    "atom_states": {"replicas_retry": "SUCCESS", "replica_a": "SUCCESS", "replica_b": "SUCCESS", "publish": "SUCCESS"},
    "intentions": {"replicas_retry": "EXECUTE", "replica_a": "EXECUTE", "replica_b": "EXECUTE", "publish": "EXECUTE"},
    "fetch_all": {
        "attempt": 2,
        "replica_a": "replica_a@2",
        "replica_b": "replica_b@2",
        "published": ["replica_a@2", "replica_b@2"],
    },
    "history": [(1, ["replica_b"]), (2, [])],
    "met_at_barrier": [True, True],
    "threads": {"replicas_retry": ["engine"], "replica_a": ["pool"], "replica_b": ["pool"], "publish": ["pool"]},
    "pool_still_usable": 6,
    "journal": [
        "execute replicas_retry",
        "execute#1 replica_a",
        "execute#1 replica_b",
        "on_failure replicas_retry",
        "revert#1 replica_a",
        "revert#1 replica_b",
        "execute replicas_retry",
        "execute#2 replica_a",
        "execute#2 replica_b",
        "execute publish",
    ],
    "events": [
        "flow release PENDING->RUNNING",
        "retry replicas_retry PENDING->RUNNING",
        "retry replicas_retry RUNNING->SUCCESS result=1",
        "task replica_a PENDING->RUNNING",
        "task replica_a RUNNING->SUCCESS result='replica_a@1'",
        "task replica_b PENDING->RUNNING",
        f"task replica_b RUNNING->FAILURE result={_BUSY}",
        "task replica_a SUCCESS->REVERTING",
        "task replica_a REVERTING->REVERTED result=None",
        "task replica_b FAILURE->REVERTING",
        "task replica_b REVERTING->REVERTED result=None",
        "retry replicas_retry SUCCESS->RETRYING",
        "task replica_a REVERTED->PENDING",
        "task replica_b REVERTED->PENDING",
        "retry replicas_retry RETRYING->RUNNING",
        "retry replicas_retry RUNNING->SUCCESS result=2",
        "task replica_a PENDING->RUNNING",
        "task replica_a RUNNING->SUCCESS result='replica_a@2'",
        "task replica_b PENDING->RUNNING",
        "task replica_b RUNNING->SUCCESS result='replica_b@2'",
        "task publish PENDING->RUNNING",
        "task publish RUNNING->SUCCESS result=['replica_a@2', 'replica_b@2']",
        "flow release RUNNING->SUCCESS",
    ],
}
