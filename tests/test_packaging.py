"""What users download: the sdist built by ``maturin sdist`` (size, content, metadata), the
license in every distribution, and ``ferroflow.__version__``."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import ferroflow

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/ferroflow/ferroflow"
MAX_SDIST_BYTES = 2 * 1024 * 1024


def _maturin() -> list[str] | None:
    beside = Path(sys.executable).parent / "maturin"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("maturin")
    return [found] if found else None


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    maturin = _maturin()
    if maturin is None:
        if os.environ.get("CI"):
            pytest.fail("maturin is not installed: CI must build the sdist")
        pytest.skip("maturin is not installed")
    out = tmp_path_factory.mktemp("sdist")
    done = subprocess.run([*maturin, "sdist", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (archive,) = out.glob("ferroflow-*.tar.gz")
    return archive


def _members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    prefix = names[0].split("/", 1)[0] + "/"
    return [name.removeprefix(prefix) for name in names if name.startswith(prefix)]


def test_sdist_is_small_and_holds_the_sources_only(sdist: Path) -> None:
    assert sdist.stat().st_size < MAX_SDIST_BYTES, f"{sdist.name} is {sdist.stat().st_size} bytes"
    members = _members(sdist)
    for needed in (
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "rust/lib.rs",
        "python/ferroflow/__init__.py",
        "python/ferroflow/py.typed",
        "python/ferroflow/_core.pyi",
    ):
        assert needed in members, needed
    unwanted = [
        name
        for name in members
        if re.match(r"(\.?venv[^/]*|target|dist|site)(/|$)", name)
        or name.endswith((".so", ".pyc", ".pyd", ".whl"))
        or "__pycache__" in name
        or name.endswith((".db", ".db-wal", ".db-shm"))
    ]
    assert unwanted == []


def test_sdist_metadata_has_license_urls_classifiers_and_an_index_ready_readme(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO"))
        handle = tar.extractfile(member)
        assert handle is not None
        info = email.message_from_bytes(handle.read())
    assert info["License-Expression"] == "Apache-2.0"
    assert info.get_all("License-File") == ["LICENSE"]
    urls = dict(url.split(", ", 1) for url in info.get_all("Project-URL"))
    assert urls["Source"] == REPOSITORY and urls["Documentation"].startswith(REPOSITORY)
    classifiers = info.get_all("Classifier")
    assert "License :: OSI Approved :: Apache Software License" not in classifiers  # the expression says it
    assert {"Programming Language :: Rust", "Programming Language :: Python :: 3.11"} <= set(classifiers)
    readme = info.get_payload()
    assert readme.startswith("# ferroflow")
    # On an index page relative links lead nowhere: every link and image must be absolute.
    targets = re.findall(r"\]\(([^)\s]+)", readme) + re.findall(r'src="([^"]+)"', readme)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#", "mailto:"))]
    assert relative == []


def test_license_file_is_apache_2_and_ships_in_the_wheel_metadata() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    files = [str(f) for f in metadata.distribution("ferroflow").files or ()]
    assert any(f.endswith("licenses/LICENSE") or f.endswith(".dist-info/LICENSE") for f in files), files


def test_version_comes_from_the_package_metadata() -> None:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    assert ferroflow.__version__ == metadata.version("ferroflow") == cargo
    run = subprocess.run([sys.executable, "-m", "ferroflow", "--version"], capture_output=True, text=True)
    assert run.stdout.strip() == f"ferroflow {cargo}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ferroflow.nope  # noqa: B018
