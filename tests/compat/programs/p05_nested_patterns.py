"""Flows nested three levels deep, mixing the linear, unordered and graph patterns."""

from taskflow import engines, flow, task
from taskflow.listeners import capturing
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.types import failure

from . import _observe

EXECUTED: list[str] = []


class Prepare(task.Task):
    def execute(self, region):
        EXECUTED.append(self.name)
        return f"env@{region}"


class CreateNetwork(task.Task):
    def execute(self, env):
        EXECUTED.append(self.name)
        return f"net({env})"


class MakeVolume(task.Task):
    def execute(self, env, size=1):
        EXECUTED.append(self.name)
        return f"vol{size}({env})"


class Attach(task.Task):
    def execute(self, volume):
        EXECUTED.append(self.name)
        return f"attached:{volume}"


class Boot(task.Task):
    def execute(self, network, attachment):
        EXECUTED.append(self.name)
        return f"server[{network}|{attachment}]"


class Announce(task.Task):
    def execute(self, server):
        EXECUTED.append(self.name)
        return len(server)


MUST_PRECEDE = [
    ("prepare", "create_network"),
    ("prepare", "make_volume"),
    ("make_volume", "attach"),
    ("create_network", "boot"),
    ("attach", "boot"),
    ("boot", "announce"),
]


def build() -> lf.Flow:
    storage = gf.Flow("storage").add(
        Attach("attach", provides="attachment"), MakeVolume("make_volume", provides="volume")
    )
    provision = uf.Flow("provision").add(CreateNetwork("create_network", provides="network"), storage)
    finish = lf.Flow("finish").add(Boot("boot", provides="server"), Announce("announce", provides="length"))
    return lf.Flow("deploy").add(Prepare("prepare", provides="env"), provision, finish)


def main() -> dict:
    deploy = build()
    engine = engines.load(deploy, store={"region": "eu", "size": 8})
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    return {
        **_observe.final_state(engine, _observe.atom_names(deploy, flow.Flow), failure.Failure),
        "flow_requires": sorted(deploy.requires),
        "flow_provides": sorted(deploy.provides),
        "orderings": {f"{a}<{b}": EXECUTED.index(a) < EXECUTED.index(b) for a, b in MUST_PRECEDE},
        "executed": list(EXECUTED),
        "events": _observe.events(capture.values, failure.Failure),
    }


# create_network and the storage subflow are unordered siblings: their relative order is not part of the
# contract (TaskFlow itself varies it between runs), so compare what ran as a multiset, events per atom,
# and the orderings the structure does impose through the literal "orderings" field.
COMPARE_AS = {"executed": "multiset", "events": "per_atom"}

EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {
        "region": "eu",
        "size": 8,
        "env": "env@eu",
        "network": "net(env@eu)",
        "volume": "vol8(env@eu)",
        "attachment": "attached:vol8(env@eu)",
        "server": "server[net(env@eu)|attached:vol8(env@eu)]",
        "length": 41,
    },
    "flow_requires": ["region"],  # size is optional (it has a default), so it is not required
    "flow_provides": ["attachment", "env", "length", "network", "server", "volume"],
    "orderings": {f"{a}<{b}": True for a, b in MUST_PRECEDE},
    "executed": ["prepare", "create_network", "make_volume", "attach", "boot", "announce"],
}
