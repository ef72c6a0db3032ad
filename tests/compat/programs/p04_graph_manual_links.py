"""A graph flow ordered by manual ``link()`` calls as well as by inferred requires/provides links."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import graph_flow as gf
from taskflow.types import failure

from . import _observe

EXECUTED: list[str] = []


class Step(task.Task):
    """A step that only records that it ran; its order comes from manual links."""

    def execute(self):
        EXECUTED.append(self.name)


class CreateUser(task.Task):
    def execute(self, username):
        EXECUTED.append(self.name)
        return f"id-{username}"


class GrantQuota(task.Task):
    def execute(self, user_id):
        EXECUTED.append(self.name)
        return {"user": user_id, "gigabytes": 5}


def main() -> dict:
    reserve = Step("reserve_name")
    create = CreateUser("create_user", provides="user_id")
    grant = GrantQuota("grant_quota", provides="quota")
    notify = Step("notify")
    onboarding = gf.Flow("onboarding")
    onboarding.add(notify, grant, create, reserve)
    onboarding.link(reserve, create)  # manual only
    onboarding.link(create, grant)  # manual, and also inferred through user_id
    onboarding.link(grant, notify)  # manual only
    outsider = Step("outsider")
    try:
        onboarding.link(notify, outsider)
    except ValueError:
        link_to_unknown = "ValueError"
    else:
        link_to_unknown = "no error"

    engine = engines.load(onboarding, store={"username": "ada"})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, _observe.atom_names(onboarding, flow.Flow), failure.Failure),
        "links": _observe.links(onboarding),
        "link_to_unknown": link_to_unknown,
        "executed": list(EXECUTED),
        "events": _observe.events(capture.values, failure.Failure),
    }


EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {"username": "ada", "user_id": "id-ada", "quota": {"user": "id-ada", "gigabytes": 5}},
    "links": [
        ("create_user", "grant_quota", {"manual": True, "reasons": ["user_id"]}),
        ("grant_quota", "notify", {"manual": True}),
        ("reserve_name", "create_user", {"manual": True}),
    ],
    "link_to_unknown": "ValueError",
    "executed": ["reserve_name", "create_user", "grant_quota", "notify"],
    "events": [
        "flow onboarding PENDING->RUNNING",
        "task reserve_name PENDING->RUNNING",
        "task reserve_name RUNNING->SUCCESS result=None",
        "task create_user PENDING->RUNNING",
        "task create_user RUNNING->SUCCESS result='id-ada'",
        "task grant_quota PENDING->RUNNING",
        "task grant_quota RUNNING->SUCCESS result={'user': 'id-ada', 'gigabytes': 5}",
        "task notify PENDING->RUNNING",
        "task notify RUNNING->SUCCESS result=None",
        "flow onboarding RUNNING->SUCCESS",
    ],
}
