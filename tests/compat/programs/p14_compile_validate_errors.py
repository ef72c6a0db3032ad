"""The explicit engine lifecycle (compile, prepare, validate, run) and the errors it reports up front:
MissingDependencies from validate() for an argument nobody provides, Duplicate atom names at compile,
and InvalidState for steps called out of order."""

from collections.abc import Mapping

from taskflow import engines, exceptions, states, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.types import failure

from . import _observe


class Connect(task.Task):
    def execute(self, endpoint, api_key):
        return f"session({endpoint})"


class ListBuckets(task.Task):
    def execute(self, session):
        return ["logs", "media"]


def build() -> lf.Flow:
    return lf.Flow("storage_client").add(
        Connect("connect", provides="session"),
        ListBuckets("list_buckets", provides="buckets"),
    )


def missing_dependencies() -> dict:
    engine = engines.load(build(), store={"endpoint": "s3.local"})
    try:
        engine.validate()  # before compile() and prepare()
    except exceptions.InvalidState:
        early_validate = "InvalidState"
    else:
        early_validate = "no error"
    engine.compile()
    engine.prepare()
    state_after_prepare = engine.storage.get_flow_state()
    try:
        engine.validate()
    except exceptions.MissingDependencies as exc:
        message = str(exc)
        seen = {
            "type": type(exc).__name__,
            "is_dependency_failure": isinstance(exc, exceptions.DependencyFailure),
            "names_atom": "connect" in message,
            "names_missing_argument": "api_key" in message,
            "mentions_provided_endpoint": "endpoint" in message,
            "missing_requirements": list(exc.missing_requirements),
        }
    else:
        seen = {"type": "no error"}

    engine.storage.inject({"api_key": "secret"})
    engine.validate()
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        "early_validate": early_validate,
        "state_after_prepare": state_after_prepare,
        "validate_error": seen,
        "after_inject": _observe.final_state(engine, ["connect", "list_buckets"], failure.Failure),
        "after_inject_events": _observe.events(capture.values, failure.Failure),
        "statistics_is_mapping": isinstance(engine.statistics, Mapping),
        "final_is_success": engine.storage.get_flow_state() == states.SUCCESS,
    }


def duplicate_names() -> dict:
    outcome = {}
    for label, flow in {
        "siblings": lf.Flow("dup").add(ListBuckets("twin"), Connect("twin")),
        "nested": lf.Flow("outer").add(ListBuckets("twin"), uf.Flow("inner").add(Connect("twin"))),
    }.items():
        step = "load"
        try:
            engine = engines.load(flow, store={"endpoint": "e", "api_key": "k", "session": "s"})
            step = "compile"
            engine.compile()
            step = "no error"
        except exceptions.Duplicate as exc:
            outcome[label] = {"step": step, "type": type(exc).__name__, "names_atom": "twin" in str(exc)}
        else:
            outcome[label] = {"step": step}
    return outcome


def main() -> dict:
    return {**missing_dependencies(), "duplicates": duplicate_names()}


EXPECTED = {
    "early_validate": "InvalidState",
    "state_after_prepare": "PENDING",
    "validate_error": {
        "type": "MissingDependencies",
        "is_dependency_failure": True,
        "names_atom": True,
        "names_missing_argument": True,
        "mentions_provided_endpoint": False,
        "missing_requirements": ["api_key"],
    },
    "after_inject": {
        "flow_state": "SUCCESS",
        "atom_states": {"connect": "SUCCESS", "list_buckets": "SUCCESS"},
        "intentions": {"connect": "EXECUTE", "list_buckets": "EXECUTE"},
        "fetch_all": {
            "endpoint": "s3.local",
            "api_key": "secret",
            "session": "session(s3.local)",
            "buckets": ["logs", "media"],
        },
    },
    "statistics_is_mapping": True,
    "final_is_success": True,
    "duplicates": {
        "siblings": {"step": "compile", "type": "Duplicate", "names_atom": True},
        "nested": {"step": "compile", "type": "Duplicate", "names_atom": True},
    },
}
