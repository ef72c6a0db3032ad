"""Every script in ``examples/`` runs and prints exactly its expected output (``NAME.out.txt``
next to it), as TaskFlow's examples are checked; the user guide shows each example and its
output verbatim.

In an expected output, ``{...}`` stands for any text on that line (timings).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
#: Modules the examples import (the application and helpers), not examples themselves.
HELPERS = {"shop", "crash"}
SCRIPTS = sorted(path.stem for path in EXAMPLES.glob("*.py") if path.stem not in HELPERS)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FERROFLOW_") and k != "PYTHONPATH"}


def matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected``, line by line, ``{...}`` matching any text."""
    want, got = expected.splitlines(), actual.splitlines()
    if len(want) != len(got):
        return False
    for pattern, line in zip(want, got, strict=True):
        regex = "^" + re.escape(pattern).replace(r"\{\.\.\.\}", ".*?") + "$"
        if not re.match(regex, line):
            return False
    return True


def test_matches_treats_the_wildcard_as_any_text_on_one_line() -> None:
    assert matches("ran in {...}s\nend", "ran in 0.25s\nend")
    assert not matches("ran in {...}s\nend", "ran in 0.25s\nEND")
    assert not matches("a\nb", "a\nb\nc")
    assert not matches("a (b)", "a xbx")


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_prints_its_expected_output(name: str, tmp_path: Path) -> None:
    expected_file = EXAMPLES / f"{name}.out.txt"
    assert expected_file.exists(), f"examples/{name}.py has no expected output examples/{name}.out.txt"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    expected = expected_file.read_text()
    assert matches(expected, done.stdout), f"--- expected\n{expected}\n--- got\n{done.stdout}"


def test_every_expected_output_has_its_example() -> None:
    outputs = {path.name.removesuffix(".out.txt") for path in EXAMPLES.glob("*.out.txt")}
    assert outputs == set(SCRIPTS)


# -- the guide shows them verbatim -----------------------------------------------------------------

_EMBED = re.compile(r"<!-- (example|output): (examples/[\w.]+) -->\n+```[a-z]*\n(.*?)```", re.S)


def _embedded() -> list[tuple[str, str, str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for kind, path, body in _EMBED.findall(page.read_text()):
            found.append((page.name, kind, path, body))
    return found


def test_the_guide_embeds_examples_and_outputs_verbatim() -> None:
    embedded = _embedded()
    assert embedded, "no <!-- example: ... --> blocks in docs/"
    for page, kind, path, body in embedded:
        text = (ROOT / path).read_text()
        assert body == text, f"docs/{page}: the {kind} block of {path} differs from the file"


def test_every_resumption_example_is_in_the_guide() -> None:
    shown = {path for _page, kind, path, _body in _embedded() if kind == "example"}
    for name in SCRIPTS:
        if name.startswith(("resume_", "rewind", "cli_", "taskflow_")):
            assert f"examples/{name}.py" in shown, name
