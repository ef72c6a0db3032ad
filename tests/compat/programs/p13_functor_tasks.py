"""Tasks made from plain functions: FunctorTask (with a revert functor), MapFunctorTask, ReduceFunctorTask."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

JOURNAL: list[str] = []


def allocate_ip(subnet):
    JOURNAL.append(f"allocate_ip {subnet}")
    return f"{subnet}.17"


def release_ip(subnet, **kwargs):
    # Unlike Task.revert, a revert functor may not name ``result``/``flow_failures`` as parameters: TaskFlow
    # maps them as required inputs and validate() then fails with MissingDependencies. They arrive in
    # **kwargs instead, which is what TaskFlow programs therefore do.
    JOURNAL.append(
        f"release_ip {subnet} result={kwargs['result']!r} failures={sorted(kwargs['flow_failures'])}"
    )


def bytes_to_kib(size):
    return size // 1024


def larger(left, right):
    return max(left, right)


def register_dns(ip):
    JOURNAL.append(f"register_dns {ip}")
    raise RuntimeError(f"dns refused {ip}")


def unregister_dns(*args, **kwargs):
    JOURNAL.append(f"unregister_dns args={args} kwargs={sorted(kwargs)}")
    return "unregistered"


def build(fail: bool) -> lf.Flow:
    sizes = ["disk", "ram", "swap"]
    pipeline = lf.Flow("machine").add(
        task.FunctorTask(allocate_ip, provides="ip", revert=release_ip),
        task.MapFunctorTask(bytes_to_kib, requires=sizes, provides="kib"),
        task.ReduceFunctorTask(larger, requires=sizes, provides="largest", name="largest_size"),
    )
    if fail:
        pipeline.add(task.FunctorTask(register_dns, name="dns", revert=unregister_dns))
    return pipeline


def main() -> dict:
    store = {"subnet": "10.0.3", "disk": 10 * 1024**2, "ram": 4 * 1024**2, "swap": 2048}
    good = build(fail=False)
    run_result = engines.run(good, store=store)
    good_names = _observe.atom_names(good, flow.Flow)

    bad = build(fail=True)
    engine = engines.load(bad, store=store)
    with capturing.CaptureListener(engine) as capture:
        try:
            engine.run()
        except Exception as exc:
            raised = _observe.caught(exc, failure.Failure)
        else:
            raised = None
    return {
        "atom_names": good_names,
        "run_result": run_result,
        **_observe.final_state(engine, _observe.atom_names(bad, flow.Flow), failure.Failure),
        "raised": raised,
        "journal": list(JOURNAL),
        "events": _observe.events(capture.values, failure.Failure),
    }


DNS_FAILURE = "<Failure: RuntimeError: dns refused 10.0.3.17 types=['RuntimeError', 'Exception']>"

EXPECTED = {
    # a FunctorTask is named after its callable (module-qualified) unless given a name
    "atom_names": ["p13_functor_tasks.allocate_ip", "p13_functor_tasks.bytes_to_kib", "largest_size"],
    "run_result": {
        "subnet": "10.0.3",
        "disk": 10 * 1024**2,
        "ram": 4 * 1024**2,
        "swap": 2048,
        "ip": "10.0.3.17",
        "kib": [10240, 4096, 2],
        "largest": 10 * 1024**2,
    },
    "flow_state": "REVERTED",
    "raised": {"type": "RuntimeError", "message": "dns refused 10.0.3.17"},
    "journal": [
        "allocate_ip 10.0.3",
        "allocate_ip 10.0.3",
        "register_dns 10.0.3.17",
        "unregister_dns args=() kwargs=['flow_failures', 'result']",  # no named args: ip is not passed
        "release_ip 10.0.3 result='10.0.3.17' failures=['dns']",
    ],
    "events": [
        "flow machine PENDING->RUNNING",
        "task p13_functor_tasks.allocate_ip PENDING->RUNNING",
        "task p13_functor_tasks.allocate_ip RUNNING->SUCCESS result='10.0.3.17'",
        "task p13_functor_tasks.bytes_to_kib PENDING->RUNNING",
        "task p13_functor_tasks.bytes_to_kib RUNNING->SUCCESS result=[10240, 4096, 2]",
        "task largest_size PENDING->RUNNING",
        "task largest_size RUNNING->SUCCESS result=10485760",
        "task dns PENDING->RUNNING",
        f"task dns RUNNING->FAILURE result={DNS_FAILURE}",
        "task dns FAILURE->REVERTING",
        "task dns REVERTING->REVERTED result='unregistered'",
        "task largest_size SUCCESS->REVERTING",
        "task largest_size REVERTING->REVERTED result=None",
        "task p13_functor_tasks.bytes_to_kib SUCCESS->REVERTING",
        "task p13_functor_tasks.bytes_to_kib REVERTING->REVERTED result=None",
        "task p13_functor_tasks.allocate_ip SUCCESS->REVERTING",
        "task p13_functor_tasks.allocate_ip REVERTING->REVERTED result=None",
        "flow machine RUNNING->REVERTED",
    ],
}
