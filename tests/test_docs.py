"""The user guide builds strictly, and the README matches the command line it documents."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ferroflow.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
GUIDE = "https://github.com/ferroflow/ferroflow/blob/main/"


def test_the_guide_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed: CI must build the guide (pip install '.[docs]')")
        pytest.skip("mkdocs is not installed (pip install '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index", "resuming", "cli", "durability", "taskflow"):
        html = (site / ("index.html" if page == "index" else f"{page}/index.html")).read_text()
        assert "<h1" in html, page
    assert "Rename(charge → capture)" in (site / "resuming" / "index.html").read_text()


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed")
    copy = tmp_path / "copy"
    (copy / "docs").mkdir(parents=True)
    for page in (ROOT / "docs").iterdir():
        (copy / "docs" / page.name).write_bytes(page.read_bytes())
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "no-such-page.md" in done.stderr


def test_readme_command_table_matches_ferroflow_help() -> None:
    readme = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| `ferroflow (\w+)", readme, re.M)
    assert table == list(COMMANDS)
    subcommands = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert list(subcommands.choices) == list(COMMANDS)
    cli_chapter = (ROOT / "docs" / "cli.md").read_text()
    assert re.findall(r"^\| `ferroflow (\w+)", cli_chapter, re.M) == list(COMMANDS)


def test_readme_links_the_guide_chapters_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = re.findall(re.escape(GUIDE) + r"(docs/[\w-]+\.md)", readme)
    assert {"docs/index.md", "docs/resuming.md", "docs/cli.md", "docs/durability.md", "docs/taskflow.md"} <= set(linked)
    for path in linked:
        assert (ROOT / path).exists(), path
    opening = readme.split("## A short tour")[0]
    assert "--migrations" in opening and "Rename(" in opening  # the rename resumed from the shell


def test_docs_script_builds_strictly() -> None:
    script = (ROOT / "scripts" / "docs.sh").read_text()
    assert "mkdocs build --strict" in script
