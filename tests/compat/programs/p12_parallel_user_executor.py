"""The parallel engine running on a ``concurrent.futures.ThreadPoolExecutor`` the program owns: tasks run
on that pool's threads, the results are the serial ones, and the pool is still usable afterwards (the
engine must not shut down an executor it was given)."""

import threading
from concurrent import futures

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.types import failure

from . import _observe

POOL_PREFIX = "compat-pool"
THREADS: dict[str, bool] = {}
_lock = threading.Lock()


class Download(task.Task):
    def execute(self, base_url):
        with _lock:
            THREADS[self.name] = threading.current_thread().name.startswith(POOL_PREFIX)
        return f"{base_url}/{self.name}.tar"


class Bundle(task.Task):
    def execute(self, kernel, initrd, rootfs):
        with _lock:
            THREADS[self.name] = threading.current_thread().name.startswith(POOL_PREFIX)
        return [kernel, initrd, rootfs]


def main() -> dict:
    downloads = uf.Flow("downloads").add(
        *(Download(part, provides=part) for part in ("kernel", "initrd", "rootfs"))
    )
    image = lf.Flow("image").add(downloads, Bundle("bundle", provides="bundle"))
    with futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix=POOL_PREFIX) as pool:
        engine = engines.load(image, engine="parallel", executor=pool, store={"base_url": "http://mirror"})
        with capturing.CaptureListener(engine) as capture:
            engine.run()
        pool_still_usable = pool.submit(sum, [1, 2, 3]).result(timeout=10)
    events = _observe.events(capture.values, failure.Failure)
    downloads_done = [i for i, event in enumerate(events) if event.endswith(".tar'")]
    return {
        **_observe.final_state(engine, _observe.atom_names(image, flow.Flow), failure.Failure),
        "ran_on_given_pool": dict(THREADS),
        "pool_still_usable": pool_still_usable,
        "bundle_starts_after_downloads": events.index("task bundle PENDING->RUNNING") > max(downloads_done),
        "events": events,
    }


# Tasks on a pool finish in any order: notifications are compared per atom (plus the one ordering the
# structure imposes, bundle_starts_after_downloads).
COMPARE_AS = {"events": "per_atom"}

EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {
        "base_url": "http://mirror",
        "kernel": "http://mirror/kernel.tar",
        "initrd": "http://mirror/initrd.tar",
        "rootfs": "http://mirror/rootfs.tar",
        "bundle": ["http://mirror/kernel.tar", "http://mirror/initrd.tar", "http://mirror/rootfs.tar"],
    },
    "ran_on_given_pool": {"kernel": True, "initrd": True, "rootfs": True, "bundle": True},
    "pool_still_usable": 6,
    "bundle_starts_after_downloads": True,
    "events": [
        "flow image PENDING->RUNNING",
        "task kernel PENDING->RUNNING",
        "task kernel RUNNING->SUCCESS result='http://mirror/kernel.tar'",
        "task initrd PENDING->RUNNING",
        "task initrd RUNNING->SUCCESS result='http://mirror/initrd.tar'",
        "task rootfs PENDING->RUNNING",
        "task rootfs RUNNING->SUCCESS result='http://mirror/rootfs.tar'",
        "task bundle PENDING->RUNNING",
        "task bundle RUNNING->SUCCESS result=['http://mirror/kernel.tar', 'http://mirror/initrd.tar', "
        "'http://mirror/rootfs.tar']",
        "flow image RUNNING->SUCCESS",
    ],
}
