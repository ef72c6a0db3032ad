"""The command line, as an operator uses it: a run killed mid-way, a deploy that renamed an
atom, then ``check``, ``plan`` and ``resume --migrations`` — each a real ``ferroflow`` process.

The application (``checkout_app.py``, written below into a fresh directory, with this
directory's ``shop`` module on PYTHONPATH) is started with ``ferroflow run`` and SIGKILLed while
shipping (``$SHOP_KILL_IN``). Version 2 of ``checkout_app.py`` renames 'charge' to 'capture' and
lists the migration in ``checkout_migrations.py``. Printed: each command and what it printed
(flow uuids, times and process ids replaced by placeholders, so that the output is the same at
every run).
"""

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

VERSION_1 = """
from ferroflow.patterns import linear_flow
from shop import Charge, Reserve, Ship


def make(order):
    given = {"order": order}
    return linear_flow.Flow("checkout").add(
        Reserve("reserve", inject=given), Charge("charge", inject=given), Ship("ship", inject=given)
    )
"""

VERSION_2 = VERSION_1.replace('Charge("charge"', 'Charge("capture"')

MIGRATIONS = """
from ferroflow.migrations import Rename

MIGRATIONS = [Rename("charge", "capture")]
"""


def ferroflow_command() -> list[str]:
    script = Path(sys.executable).parent / "ferroflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ferroflow"]


def normalize(text: str) -> str:
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<flow-uuid>", text)
    text = re.sub(r" in \d+\.\d+s", " in <time>", text)
    text = re.sub(r"owner \S+:\d+", "owner <host>:<pid>", text)
    return text.replace(str(Path.cwd()), "<dir>")


def ferroflow(*args: str, **env: str) -> str:
    """Runs ``ferroflow ARGS --db shop.db``, prints the command and its output; returns its stdout."""
    shown = normalize(" ".join(args))
    print(f"$ {' '.join(f'{k}={v}' for k, v in env.items())}{' ' if env else ''}ferroflow {shown}")
    done = subprocess.run(
        [*ferroflow_command(), *args, "--db", "shop.db"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE), **env},
    )
    print(textwrap.indent(normalize(done.stdout).rstrip(), "  "))
    for line in done.stderr.splitlines():
        if line.startswith("ferroflow: "):
            print(textwrap.indent(normalize(line), "  "))
    print(f"  (exit status {done.returncode})\n")
    return done.stdout


with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)
    Path("checkout_app.py").write_text(VERSION_1)
    started = ferroflow("run", "checkout_app:make", "--arg", "42", "--no-progress", SHOP_KILL_IN="ship")
    flow_uuid = started.split()[1]
    ferroflow("check")

    print("# version 2 is deployed: 'charge' is now 'capture'\n")
    Path("checkout_app.py").write_text(VERSION_2)
    Path("checkout_migrations.py").write_text(MIGRATIONS)
    ferroflow("plan")
    ferroflow("plan", "--migrations", "checkout_migrations:MIGRATIONS")
    ferroflow("resume", "--migrations", "checkout_migrations:MIGRATIONS", "--no-progress")
    ferroflow("show", flow_uuid)
    ferroflow("check")
