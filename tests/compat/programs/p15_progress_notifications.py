"""Progress reporting: tasks call ``update_progress()``, a listener registered on the task's own
``notifier`` for ``EVENT_UPDATE_PROGRESS`` sees every value, and storage keeps the latest.

TaskFlow publishes progress only on each task's notifier (the engine's ``atom_notifier`` carries state
changes, never progress), and the engine itself reports 0.0 when a task starts and 1.0 when it succeeds.
"""

from taskflow import engines, flow, task
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure

from . import _observe

SEEN: list[tuple[str, str, float]] = []
ATOM_NOTIFIER_PROGRESS: list[str] = []


class CopyFiles(task.Task):
    def execute(self, files):
        for done in range(1, len(files) + 1):
            self.update_progress(done / len(files) / 2)
        self.update_progress(1.5)  # clamped to 1.0 (TaskFlow logs a warning)
        return len(files)


class Verify(task.Task):
    def execute(self, copied):
        self.update_progress(0.25)
        return copied == 4


def main() -> dict:
    copy_files, verify = CopyFiles("copy_files", provides="copied"), Verify("verify", provides="ok")

    def on_progress(event_type, details):
        SEEN.append((event_type, "copy_files", details["progress"]))

    def on_verify_progress(event_type, details):
        SEEN.append((event_type, "verify", details["progress"]))

    copy_files.notifier.register(task.EVENT_UPDATE_PROGRESS, on_progress)
    verify.notifier.register(task.EVENT_UPDATE_PROGRESS, on_verify_progress)
    backup = lf.Flow("backup").add(copy_files, verify)
    engine = engines.load(backup, store={"files": ["a", "b", "c", "d"]})
    engine.atom_notifier.register(
        task.EVENT_UPDATE_PROGRESS, lambda event_type, details: ATOM_NOTIFIER_PROGRESS.append(event_type)
    )
    engine.run()
    names = _observe.atom_names(backup, flow.Flow)
    return {
        **_observe.final_state(engine, names, failure.Failure),
        "event_name": task.EVENT_UPDATE_PROGRESS,
        "progress_seen": list(SEEN),
        "atom_notifier_progress": list(ATOM_NOTIFIER_PROGRESS),
        "stored_progress": {name: engine.storage.get_task_progress(name) for name in names},
    }


EXPECTED = {
    "flow_state": "SUCCESS",
    "fetch_all": {"files": ["a", "b", "c", "d"], "copied": 4, "ok": True},
    "event_name": "update_progress",
    "progress_seen": [
        ("update_progress", "copy_files", 0.0),
        ("update_progress", "copy_files", 0.125),
        ("update_progress", "copy_files", 0.25),
        ("update_progress", "copy_files", 0.375),
        ("update_progress", "copy_files", 0.5),
        ("update_progress", "copy_files", 1.0),
        ("update_progress", "copy_files", 1.0),
        ("update_progress", "verify", 0.0),
        ("update_progress", "verify", 0.25),
        ("update_progress", "verify", 1.0),
    ],
    "atom_notifier_progress": [],
    "stored_progress": {"copy_files": 1.0, "verify": 1.0},
}
