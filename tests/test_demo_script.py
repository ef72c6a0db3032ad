"""``scripts/demo.sh`` shows the build's progress instead of staying silent, and stops with the
build log when the build fails. Run against a stand-in virtualenv whose ``pip`` prints what a
real build prints (cargo's ``Compiling`` lines, slowly) and whose ``ferroflow`` records its call."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_PIP = """#!/usr/bin/env bash
case "$*" in
  *--upgrade*) exit 0 ;;
esac
for crate in libc pyo3-build-config rusqlite pyo3 ferroflow-core; do
  echo "   Compiling $crate v1.0.0"
  sleep 0.7
done
if [ -n "${FAIL_BUILD:-}" ]; then echo "error: linking failed"; exit 1; fi
echo "Successfully installed ferroflow-0.1.0"
"""

FAKE_FERROFLOW = """#!/usr/bin/env bash
echo "demo ran with: $*"
"""


def _fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, text in (("python", "#!/bin/sh\nexit 0\n"), ("pip", FAKE_PIP), ("ferroflow", FAKE_FERROFLOW)):
        path = venv / "bin" / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return venv


def _demo(venv: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERROFLOW_VENV": str(venv), **extra}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--atoms", "500"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_demo_script_shows_build_progress_then_runs_the_demo(tmp_path: Path) -> None:
    result = _demo(_fake_venv(tmp_path))
    assert result.returncode == 0, result.stderr
    err = result.stderr.splitlines()
    assert err[0].startswith("building ferroflow from")
    progress = [line for line in err if line.startswith("  building: ")]
    assert progress, result.stderr  # something is shown while it builds (stderr is not a terminal)
    assert any("(now: " in line for line in progress) or "0 crates" in progress[0]
    assert err[-1].startswith("  built and installed ferroflow (5 crates compiled)")
    assert result.stdout.strip() == "demo ran with: demo --atoms 500"


def test_demo_script_prints_the_build_log_when_the_build_fails(tmp_path: Path) -> None:
    result = _demo(_fake_venv(tmp_path), FAIL_BUILD="1")
    assert result.returncode == 1
    assert "building ferroflow failed; the build log:" in result.stderr
    assert "error: linking failed" in result.stderr and "Compiling ferroflow-core" in result.stderr
    assert "demo ran" not in result.stdout
