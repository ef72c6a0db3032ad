"""What the ``tests/test_cli_*.py`` files share: a user's flow module whose code a test changes
between runs, and the ``ferroflow`` executable run in a subprocess.

`APP_MODULE` is written as ``appflows.py`` into a test's work directory. Its factory ``make``
builds the flow that ``code.json`` (in the working directory) describes *when it is called*, so a
test changes the code between two runs by rewriting that file (`deploy`): the atoms in order
(a linear chain, each adding one to the previous atom's result), per-atom versions and classes,
the flow's name. What the atoms do is read from the same file on every call: ``kill`` names an
atom that SIGKILLs its own process, ``fail`` one that raises, ``sleep`` seconds each atom waits.
Every execute and revert is appended to ``journal`` before it acts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from ferroflow.persistence import backends

APP_MODULE = '''
import json
import os
import pathlib
import signal
import time

from ferroflow import task
from ferroflow.patterns import linear_flow


def code():
    path = pathlib.Path("code.json")
    return json.loads(path.read_text()) if path.exists() else {}


def journal(line):
    with open("journal", "a") as out:
        out.write(line + "\\n")


class Step(task.Task):
    def execute(self, x):
        journal("execute " + self.name)
        now = code()
        time.sleep(now.get("sleep", 0))
        if now.get("kill") == self.name:
            os.kill(os.getpid(), signal.SIGKILL)
        if now.get("fail") == self.name:
            raise ValueError("boom in " + self.name)
        return x + 1

    def revert(self, x, result, flow_failures):
        journal("revert " + self.name)


if code().get("refund_class", True):

    class Refund(Step):
        """A step whose revert refunds: removed from the code by some tests."""


def make():
    now = code()
    flow = linear_flow.Flow(now.get("name", "app"))
    previous = None
    for name in now.get("atoms", ["a", "b", "c", "d"]):
        cls = globals()[now.get("classes", {}).get(name, "Step")]
        if previous is None:
            step = cls(name, provides=name, inject={"x": 0})
        else:
            step = cls(name, provides=name, rebind={"x": previous})
        step.version = now.get("versions", {}).get(name, "1.0")
        flow.add(step)
        previous = name
    return flow
'''

MIGRATIONS_MODULE = """
from ferroflow.migrations import Rename

RENAMES = [Rename("b", "b2")]
NOT_A_LIST = Rename("b", "b2")
"""


def make_workdir(path: Path) -> Path:
    (path / "appflows.py").write_text(textwrap.dedent(APP_MODULE))
    (path / "appmigrations.py").write_text(textwrap.dedent(MIGRATIONS_MODULE))
    return path


def deploy(workdir: Path, **code: Any) -> None:
    """The code `make` builds from now on (see the module docstring)."""
    (workdir / "code.json").write_text(json.dumps(code))


def take_journal(workdir: Path) -> list[str]:
    path = workdir / "journal"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    path.write_text("")
    return lines


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("FERROFLOW_DB", "FERROFLOW_TRUSTED_MODULES")}
    out.update(extra)
    return out


def ferroflow_executable() -> list[str]:
    """The installed ``ferroflow`` console script (next to this interpreter), else ``-m``."""
    script = Path(sys.executable).parent / "ferroflow"
    if script.exists():
        return [str(script)]
    found = shutil.which("ferroflow")
    return [found] if found else [sys.executable, "-m", "ferroflow"]


def ferroflow(*args: str, cwd: Path, timeout: float = 120, environ: dict[str, str] | None = None):
    return subprocess.run(
        [*ferroflow_executable(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ or env(),
    )


def flow_uuid_in(stdout: str) -> str:
    match = re.search(r"^flow ([0-9a-f-]{36}) ", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def one_line_error(stderr: str, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.match(r"ferroflow( [a-z]+)?: error: ", lines[0]) and "Traceback" not in stderr, stderr
    for word in words:
        assert word in lines[0], stderr
    return lines[0]


def saved(db: Path) -> dict[str, Any]:
    """Everything in the store: ``{flow uuid: (flow state, {atom: (state, result)})}`` and the
    logbook count, read through the public connection API."""
    backend = backends.fetch(f"sqlite:///{db}?mode=ro")
    try:
        with backend.get_connection() as conn:
            flows = {}
            books = list(conn.get_logbooks())
            for book in books:
                for fd in conn.get_flows_for_book(book.uuid):
                    atoms = {ad.name: (ad.state, ad.results) for ad in conn.get_atoms_for_flow(fd.uuid)}
                    atoms.pop("_TaskFlow_INJECTOR", None)
                    flows[fd.uuid] = (fd.state, atoms)
            return {"flows": flows, "books": len(books)}
    finally:
        backend.close()
