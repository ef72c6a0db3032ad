"""TaskFlow 6.5.0's own unit tests and examples, run against ferroflow (driven by taskflow-compat.sh).

What it does, from a TaskFlow sdist downloaded at run time (never kept in this repository):

1. Copies the unit test files of ``TEST_FILES`` (plus the test utilities they import) twice: once as they
   are (the reference run, on TaskFlow) and once migrated the way a porting user would do it: every code
   reference to the import root ``taskflow`` becomes ``ferroflow`` (a token rewrite: strings and comments
   stay as they are). No module aliases, no stubs, nothing else changes in a test.
   The test *harness* (``taskflow/test.py`` and the ``taskflow/tests`` package: base TestCase, fixtures,
   helper tasks) is not part of the library, so both copies keep it under their own root, ``tfcompat``.
2. Leaves out what needs a service or a feature ferroflow does not provide, statement by statement
   (``EXCLUDED``: each entry names what it removes and why; an entry that no longer matches is an error).
3. Runs both copies with pytest and compares outcomes test by test: a test is *eligible* when TaskFlow
   itself passes it.
4. Runs every example that needs no external service under TaskFlow and, migrated, under ferroflow, and
   compares their standard output byte for byte once what differs between any two runs is masked (uuids,
   as TaskFlow's own example test does; object addresses, timestamps, traceback frames; see
   `normalise_output`). An example is *eligible* when TaskFlow runs it to the end.
5. Prints the counts and fails when ferroflow passes fewer than ``UNIT_FLOOR`` eligible tests or matches
   fewer than ``EXAMPLES_FLOOR`` examples.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tokenize
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

#: Eligible tests ferroflow must pass (set to what the latest run passed; raise it as compatibility grows).
UNIT_FLOOR = 840
#: Examples whose output must equal TaskFlow's.
EXAMPLES_FLOOR = 29

TEST_FILES = [
    "tests/unit/test_engines.py",
    "tests/unit/test_retries.py",
    "tests/unit/test_suspend.py",
    "tests/unit/test_arguments_passing.py",
    "tests/unit/test_deciders.py",
    "tests/unit/test_listeners.py",
    "tests/unit/test_storage.py",
    "tests/unit/test_flow_dependencies.py",
    "tests/unit/test_functor_task.py",
    "tests/unit/test_task.py",
    "tests/unit/test_failure.py",
    "tests/unit/test_states.py",
    "tests/unit/test_notifier.py",
    "tests/unit/test_progress.py",
    "tests/unit/persistence/",
    "tests/unit/patterns/",
]

#: Test utilities the files above import (the harness, copied under ``tfcompat``).
HARNESS_FILES = [
    "test.py",
    "tests/__init__.py",
    "tests/fixtures.py",
    "tests/utils.py",
    "tests/unit/__init__.py",
]

HARNESS_ROOT = "tfcompat"

# Top-level statements removed before running: (file relative to taskflow/, kind, name, reason).
# kind: "import" (an import of module ``name``), "class", "def" or "assign" (a top-level name).
_ZK = "needs a ZooKeeper server (kazoo); ferroflow has no ZooKeeper support"
_WBE = "worker-based engine (kombu transport); ferroflow does not provide it"
_EVENTLET = "eventlet green threads (deprecated in TaskFlow); ferroflow does not provide them"
_MYSQL_PG = (
    "MySQL/PostgreSQL through SQLAlchemy against a local server with the openstack_citest user"
    " (SQLBackendFetchingTest's MySQL/PostgreSQL cases skip themselves on both)"
)
_SERVICES = "probes for ZooKeeper/Redis/etcd servers, used only by excluded tests"
EXCLUDED: list[tuple[str, str, str, str]] = [
    ("tests/utils.py", "import", "etcd3gw", _SERVICES),
    ("tests/utils.py", "import", "redis", _SERVICES),
    ("tests/utils.py", "import", "taskflow.utils.kazoo_utils", _SERVICES),
    ("tests/utils.py", "import", "taskflow.utils.redis_utils", _SERVICES),
    ("tests/utils.py", "def", "zookeeper_available", _SERVICES),
    ("tests/utils.py", "def", "redis_available", _SERVICES),
    ("tests/utils.py", "def", "etcd_available", _SERVICES),
    ("tests/unit/test_engines.py", "import", "taskflow.engines.worker_based.engine", _WBE),
    ("tests/unit/test_engines.py", "import", "taskflow.engines.worker_based.worker", _WBE),
    ("tests/unit/test_engines.py", "class", "WorkerBasedEngineTest", _WBE),
    ("tests/unit/test_engines.py", "import", "taskflow.utils.eventlet_utils", _EVENTLET),
    ("tests/unit/test_engines.py", "class", "ParallelEngineWithEventletTest", _EVENTLET),
    ("tests/unit/test_retries.py", "import", "taskflow.utils.eventlet_utils", _EVENTLET),
    ("tests/unit/test_retries.py", "class", "ParallelEngineWithEventletTest", _EVENTLET),
    ("tests/unit/test_suspend.py", "import", "taskflow.utils.eventlet_utils", _EVENTLET),
    ("tests/unit/test_suspend.py", "class", "ParallelEngineWithEventletTest", _EVENTLET),
    ("tests/unit/test_arguments_passing.py", "import", "taskflow.utils.eventlet_utils", _EVENTLET),
    ("tests/unit/test_arguments_passing.py", "class", "ParallelEngineWithEventletTest", _EVENTLET),
    ("tests/unit/test_listeners.py", "import", "taskflow.jobs.backends", _ZK),
    ("tests/unit/test_listeners.py", "import", "taskflow.jobs.backends.impl_zookeeper", _ZK),
    ("tests/unit/test_listeners.py", "import", "taskflow.listeners.claims", _ZK),
    ("tests/unit/test_listeners.py", "import", "taskflow.utils.kazoo_utils", _ZK),
    ("tests/unit/test_listeners.py", "assign", "ZOOKEEPER_AVAILABLE", _ZK),
    ("tests/unit/test_listeners.py", "class", "TestClaimListener", _ZK),
    ("tests/unit/persistence/test_zk_persistence.py", "file", "", _ZK),
    ("tests/unit/persistence/test_sql_persistence.py", "class", "BackendPersistenceTestMixin", _MYSQL_PG),
    ("tests/unit/persistence/test_sql_persistence.py", "class", "MysqlPersistenceTest", _MYSQL_PG),
    ("tests/unit/persistence/test_sql_persistence.py", "class", "PostgresPersistenceTest", _MYSQL_PG),
]

#: Eligible tests that reach into TaskFlow's private names, which ferroflow does not reproduce:
#: (test class or ``Class.test`` suffix, private name, why). Counted apart from the others.
#: (Those that map onto what ferroflow has are provided and pass: ``impl_memory.FakeFilesystem``,
#: public in TaskFlow and documented in ferroflow; ``failure._are_equal_exc_info_tuples``, what
#: ``Failure.__eq__`` uses; ``engine.storage._flowdetail``, the flow detail the storage writes.)
PRIVATE_NAMES = [
    (
        "test_restart_reverted_unordered_flows_with_retries",
        "engine._task_executor",
        "TaskFlow engine's executor object, compared with its ParallelGreenThreadTaskExecutor class;"
        " ferroflow's parallel engine takes a concurrent.futures executor per run and has no such classes",
    ),
]

#: Eligible tests whose outcome a documented ferroflow improvement (DESIGN.md) changes: (suffix, why).
IMPROVEMENTS: list[tuple[str, str]] = []


def _category(test_id: str) -> str | None:
    for suffix, name, _why in PRIVATE_NAMES:
        if f".{suffix}." in f"{test_id}." or test_id.endswith(f".{suffix}"):
            return f"private name {name}"
    for suffix, why in IMPROVEMENTS:
        if test_id.endswith(f".{suffix}"):
            return f"improvement: {why}"
    return None


#: Eligible examples whose output a documented deliberate difference changes: (name, why). They are
#: run and compared like the others, and counted apart.
DELIBERATE_EXAMPLES = {
    "resume_vm_boot": (
        "saves its flow factory, a function of the script run as __main__: ferroflow refuses to save it"
        " (a resuming process never imports code from a store outside trusted modules, and no trust"
        " setting trusts __main__, see ferroflow.trust), where TaskFlow saves it"
    ),
}

#: Examples not run: (name, reason).
EXCLUDED_EXAMPLES = {
    "99_bottles": _ZK + " (conductor on a ZooKeeper jobboard)",
    "jobboard_produce_consume_colors": _ZK + " (jobboard)",
    "tox_conductor": _ZK + " (conductor on a ZooKeeper jobboard)",
    "wbe_event_sender": _WBE,
    "wbe_mandelbrot": _WBE,
    "wbe_simple_linear": _WBE,
}

#: How an example's output is compared: both outputs go through `normalise_output` first, which
#: masks what differs on every run of the same program (uuids, as TaskFlow's own example test does;
#: object addresses) and lets the migrated program name its own library in module paths
#: (``<taskflow.engines...>`` printed by TaskFlow is ``<ferroflow.engines...>`` migrated). Python's
#: ``random`` is seeded the same in both runs (a ``sitecustomize`` on ``PYTHONPATH``) and
#: ``PYTHONHASHSEED`` is fixed, so examples that draw random numbers do the same work in both.
#: Tracebacks are compared by their first and last lines, timestamps masked. Examples whose output
#: depends on timing (or memory layout) even between two runs of TaskFlow itself get one more
#: normalisation each, listed in `TIMING_DEPENDENT`.
_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ADDRESS = re.compile(r"\b0x[0-9a-f]{6,}\b")
_MODULE_PATH = re.compile(r"\btaskflow\.(?=[a-z_]+[.\w]*)")
_SECONDS = re.compile(r"\d+\.\d+ seconds")
_TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?")
# A traceback's frames name the library's own files and lines, which necessarily differ: only its
# first line and the exception it ends with are compared.
_TRACEBACK_FRAMES = re.compile(r"(?m)(^Traceback \(most recent call last\):\n)(?:^ .*\n)+")


def _running_lines(text: str) -> str:
    # Its tasks print from several threads at once, so lines interleave: compare what was printed.
    found = re.findall(r"Running '[^']*' in thread '\d+'", text)
    return "\n".join(sorted(re.sub(r"thread '\d+'", "thread '<ID>'", line) for line in found))


def _sorted_lines(text: str) -> str:
    return "\n".join(sorted(_SECONDS.sub("<N> seconds", text).splitlines()))


def _racing_volumes(text: str) -> str:
    # Its threads print at once, so two lines may share one: each message is cut out, then sorted.
    text = re.sub(r"(?=Making volume|Finished making volume|<ferroflow\.| -- )", "\n", text)
    return "\n".join(sorted(line for line in _sorted_lines(text).splitlines() if line.strip()))


_SET_ORDER = (
    "TaskFlow's serial engine runs (and reports) the atoms ready together in the iteration order of a set"
    " of task objects, which follows their memory addresses: it changes between two runs of TaskFlow itself"
    " when allocations differ"
)
TIMING_DEPENDENT = {
    "timing_listener": ("prints how long its sleeping tasks took", lambda t: _SECONDS.sub("<N> seconds", t)),
    "share_engine_thread": ("prints thread idents from two engines racing on one pool", _running_lines),
    "create_parallel_volume": (
        "five tasks sleep random times on a thread pool and print from it: lines in completion order",
        _racing_volumes,
    ),
    "parallel_table_multiply": (
        "prints the parallel engine's states: how many times it waits depends on how many of its tasks"
        " are done at the first wait (consecutive WAITING/ANALYZING pairs are compared as one)",
        lambda t: re.sub(r"(WAITING\nANALYZING\n)+", "WAITING\nANALYZING\n", t),
    ),
    "wrapped_exception": (
        "two tasks sleep the same second on a thread pool and both fail: their failures are listed in the"
        " order they finished, on TaskFlow as on ferroflow",
        _sorted_lines,
    ),
    "build_a_car": (_SET_ORDER, _sorted_lines),
    "buildsystem": (_SET_ORDER, _sorted_lines),
}


def normalise_output(name: str, text: str, reference: bool) -> str:
    text = _ADDRESS.sub("0x<ADDR>", _UUID.sub("<SOME UUID>", text))
    text = _TRACEBACK_FRAMES.sub(r"\1", _TIMESTAMP.sub("<TIME>", text))
    if reference:
        text = _MODULE_PATH.sub("ferroflow.", text)
    if name in TIMING_DEPENDENT:
        text = TIMING_DEPENDENT[name][1](text)
    return text


_SITECUSTOMIZE = "import random\nrandom.seed(20240605)\n"


# -- copying and rewriting -------------------------------------------------------------------------------


def _module_of(node: ast.stmt) -> list[str]:
    """Modules an import statement imports (``from a import b`` -> ``a.b`` and ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _matches(node: ast.stmt, kind: str, name: str) -> bool:
    if kind == "import":
        return name in _module_of(node)
    if kind == "class":
        return isinstance(node, ast.ClassDef) and node.name == name
    if kind == "def":
        return isinstance(node, ast.FunctionDef) and node.name == name
    if kind == "assign":
        return isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
    raise ValueError(f"unknown exclusion kind {kind!r}")


def remove_statements(source: str, rel: str, exclusions: list[tuple[str, str, str]]) -> str:
    """Drop the top-level statements ``exclusions`` name (each must match), keeping every other line."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for kind, name, _why in exclusions:
        hits = [node for node in tree.body if _matches(node, kind, name)]
        if not hits:
            raise SystemExit(f"exclusion {kind} {name!r} of {rel} matches nothing: update EXCLUDED")
        for node in hits:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            drop.update(range(first - 1, node.end_lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def rewrite_root(source: str, root: str) -> str:
    """``taskflow`` -> ``root`` in code (NAME tokens), the harness (``taskflow.test[s]``) -> ``tfcompat``.

    Strings and comments are left alone: this is what replacing the import root does to a program.
    """
    lines = source.splitlines(keepends=True)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits = []
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string == "taskflow":
            nxt = tokens[i + 1].string if i + 1 < len(tokens) else ""
            after = tokens[i + 2].string if i + 2 < len(tokens) else ""
            harness = (nxt == "." and after in ("test", "tests")) or (nxt == "import" and after == "test")
            edits.append((tok.start, HARNESS_ROOT if harness else root))
    for (row, col), name in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + name + line[col + len("taskflow") :]
    return "".join(lines)


def _test_paths(pkg: Path) -> list[str]:
    files = []
    for entry in TEST_FILES:
        path = pkg / entry
        if entry.endswith("/"):
            files += [str(p.relative_to(pkg)) for p in sorted(path.glob("*.py"))]
        else:
            files.append(entry)
    return files


def build_tree(pkg: Path, dest: Path, root: str, tests: bool = True) -> list[str]:
    """Copy the harness and test files of TaskFlow's package ``pkg`` into ``dest`` for import root ``root``.

    Returns the copied test files (relative to ``dest``).
    """
    if dest.exists():
        shutil.rmtree(dest)
    per_file: dict[str, list[tuple[str, str, str]]] = {}
    for rel, kind, name, why in EXCLUDED:
        per_file.setdefault(rel, []).append((kind, name, why))
    copied = []
    for rel in HARNESS_FILES + (_test_paths(pkg) if tests else []):
        exclusions = per_file.get(rel, [])
        if any(kind == "file" for kind, _n, _w in exclusions):
            continue
        source = (pkg / rel).read_text()
        source = remove_statements(source, rel, exclusions) if exclusions else source
        target = dest / HARNESS_ROOT / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in target.parents:
            if parent == dest:
                break
            (parent / "__init__.py").touch()
        target.write_text(rewrite_root(source, root))
        if rel.startswith("tests/unit/") and Path(rel).name.startswith("test_"):
            copied.append(str(target.relative_to(dest)))
    (dest / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (dest / "conftest.py").write_text(_CONFTEST)
    return copied


# TaskFlow runs its tests with stestr, where testscenarios multiplies a test class by its ``scenarios``;
# under pytest the same expansion is done here: one subclass per scenario, named ``<Class>_<scenario>``.
_CONFTEST = """
import unittest

from _pytest.unittest import UnitTestCase


def pytest_pycollect_makeitem(collector, name, obj):
    scenarios = getattr(obj, "scenarios", None)
    if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase) and scenarios):
        return None
    items = []
    for label, attrs in scenarios:
        namespace = dict(attrs, scenarios=None, __module__=obj.__module__)
        sub = type(f"{name}_{label}", (obj,), namespace)
        setattr(collector.obj, sub.__name__, sub)
        items.append(UnitTestCase.from_parent(collector, name=sub.__name__, obj=sub))
    return items
"""


# -- running the tests ------------------------------------------------------------------------------------


def run_tests(python: str, tree: Path, files: list[str], label: str, timeout: int) -> dict[str, str]:
    """Run ``files`` with pytest inside ``tree``; ``{test id: passed|failed|skipped}``."""
    junit = tree / "junit.xml"
    log = tree / "pytest.log"
    cmd = [
        python,
        "-m",
        "pytest",
        "-q",
        "-rN",
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        f"--timeout={timeout}",
        *files,
    ]
    print(f"[{label}] pytest over {len(files)} files ...", flush=True)
    with log.open("w") as out:
        subprocess.run(cmd, cwd=tree, stdout=out, stderr=subprocess.STDOUT, check=False)
    outcomes: dict[str, str] = {}
    if not junit.exists():
        print(f"[{label}] pytest wrote no report; see {log}")
        return outcomes
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}.{case.get('name')}"
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        # A setup error and a call failure may both be reported: the worst outcome wins.
        if outcomes.get(test_id) != "failed":
            outcomes[test_id] = outcome
    return outcomes


def _dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".") + "."


def _file_of(test_id: str) -> str:
    return test_id.split(".")[3] if test_id.startswith(f"{HARNESS_ROOT}.tests.unit.") else test_id


# -- running the examples ---------------------------------------------------------------------------------


@dataclass
class ExampleRun:
    name: str
    reference: str
    migrated: str
    reference_rc: int
    migrated_rc: int
    stderr: str = field(repr=False, default="")

    @property
    def eligible(self) -> bool:
        """TaskFlow itself runs it to the end (a few examples use its removed process executor)."""
        return self.reference_rc == 0

    @property
    def same(self) -> bool:
        return (
            self.eligible
            and self.migrated_rc == 0
            and normalise_output(self.name, self.reference, True) == normalise_output(self.name, self.migrated, False)
        )


def _run_example(python: str, path: Path, work: Path, pythonpath: list[Path], timeout: int) -> tuple[int, str, str]:
    """Runs one example in its own temporary directory (some use fixed names under it)."""
    tmp = work / "tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    site = work / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(
        os.environ,
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(tmp),
        PYTHONPATH=os.pathsep.join(str(p) for p in [site, *pythonpath]),
    )
    try:
        done = subprocess.run(
            [python, str(path)], capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=tmp
        )
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout} s"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done.returncode, done.stdout, done.stderr


def example_names(examples: Path) -> list[str]:
    return sorted(
        p.stem for p in examples.glob("*.py") if not p.stem.endswith("utils") and p.stem not in EXCLUDED_EXAMPLES
    )


def copy_examples(examples: Path, dest: Path) -> Path:
    """Migrated copy of the examples directory (every ``.py`` rewritten), at ``dest/examples``.

    The examples put ``../..`` on ``sys.path``; ``dest`` holds no ``ferroflow``, so the installed one runs.
    """
    target = dest / "x" / "examples"
    if target.parent.exists():
        shutil.rmtree(target.parent)
    shutil.copytree(examples, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.rglob("*.py"):
        path.write_text(rewrite_root(path.read_text(), "ferroflow"))
    return target


def run_examples(python: str, pkg: Path, work: Path, only: list[str] | None, timeout: int) -> list[ExampleRun]:
    """Each example under TaskFlow (from the sdist, as it is) and migrated under ferroflow.

    Two examples import TaskFlow's test utilities: the migrated ones find the harness copy (``tfcompat``).
    """
    examples = pkg / "examples"
    migrated = copy_examples(examples, work)
    harness = work / "harness"
    build_tree(pkg, harness, "ferroflow", tests=False)
    runs = []
    for name in example_names(examples):
        if only and name not in only:
            continue
        ref_rc, ref_out, _ = _run_example(python, examples / f"{name}.py", work, [], timeout)
        mig_rc, mig_out, mig_err = _run_example(python, migrated / f"{name}.py", work, [harness], timeout)
        run = ExampleRun(name, ref_out, mig_out, ref_rc, mig_rc, mig_err)
        verdict = "same" if run.same else "DIFFERS" if run.eligible else "fails on TaskFlow too: not counted"
        print(f"  example {name}: {verdict}", flush=True)
        runs.append(run)
    return runs


# -- main -------------------------------------------------------------------------------------------------


def _extract(sdist: Path, work: Path) -> Path:
    target = work / "sdist"
    if target.exists():
        shutil.rmtree(target)
    with tarfile.open(sdist) as tar:
        tar.extractall(target, filter="data")
    (top,) = target.iterdir()
    return top / "taskflow"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, required=True, help="taskflow-6.5.0.tar.gz")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--reference", type=Path, help="reuse TaskFlow's outcomes from an earlier --report")
    parser.add_argument("--no-examples", action="store_true")
    parser.add_argument("--no-tests", action="store_true")
    parser.add_argument("--only", nargs="*", help="test files (test_storage, persistence/...) or example names")
    parser.add_argument("--report", type=Path, help="write per-test outcomes as JSON here")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per test / example")
    args = parser.parse_args(argv)
    if os.sep in args.python:  # tests and examples run from their own directories
        args.python = os.path.abspath(args.python)

    args.work.mkdir(parents=True, exist_ok=True)
    pkg = _extract(args.sdist, args.work)
    report: dict[str, object] = {}
    ok = True

    if not args.no_tests:
        ff_tree = args.work / "ferroflow-tests"
        files = build_tree(pkg, ff_tree, "ferroflow")
        if args.only:
            files = [f for f in files if any(o in f for o in args.only)] or files
        ours = run_tests(args.python, ff_tree, files, "ferroflow", args.timeout)
        if args.reference:
            theirs = json.loads(args.reference.read_text())["theirs"]
            theirs = {t: o for t, o in theirs.items() if any(t.startswith(_dotted(f)) for f in files)}
        else:
            tf_tree = args.work / "taskflow-tests"
            build_tree(pkg, tf_tree, "taskflow")
            theirs = run_tests(args.python, tf_tree, files, "taskflow", args.timeout)
        eligible = sorted(t for t, o in theirs.items() if o == "passed") if theirs else sorted(ours)
        passing = [t for t in eligible if ours.get(t) == "passed"]
        failing = [t for t in eligible if ours.get(t) != "passed"]
        per_file: dict[str, list[int]] = {}
        for t in eligible:
            counts = per_file.setdefault(_file_of(t), [0, 0])
            counts[1] += 1
            counts[0] += ours.get(t) == "passed"
        print("\nUnit tests (passed by ferroflow / eligible = passed by TaskFlow):")
        for name, (won, total) in sorted(per_file.items()):
            print(f"  {name:32} {won:4} / {total:4}")
        share = 100.0 * len(passing) / len(eligible) if eligible else 0.0
        print(f"unit tests: {len(passing)} of {len(eligible)} eligible pass on ferroflow ({share:.1f}%)")
        apart = {t: _category(t) for t in eligible if _category(t)}
        counted = [t for t in eligible if t not in apart]
        won = sum(1 for t in counted if ours.get(t) == "passed")
        if counted:
            print(
                f"  without the {len(apart)} that reach into private names or that an improvement changes: "
                f"{won} of {len(counted)} ({100.0 * won / len(counted):.1f}%)"
            )
        for t in failing:
            print(
                f"  FAILS {t.removeprefix(HARNESS_ROOT + '.tests.unit.')}" + (f"  [{apart[t]}]" if t in apart else "")
            )
        ff_only = sorted(t for t, o in ours.items() if o == "passed" and theirs and theirs.get(t) != "passed")
        if ff_only:
            print(f"  ({len(ff_only)} pass on ferroflow only)")
        report["failing"] = failing
        report["ours"] = ours
        report["theirs"] = theirs
        if len(passing) < UNIT_FLOOR and not args.only:
            print(f"FAIL: {len(passing)} unit tests pass, below the floor of {UNIT_FLOOR}")
            ok = False

    if not args.no_examples:
        print("\nExamples (stdout on ferroflow == stdout on TaskFlow):")
        runs = run_examples(args.python, pkg, args.work, args.only, args.timeout)
        same = [r.name for r in runs if r.same]
        eligible = [r.name for r in runs if r.eligible]
        print(f"examples: {len(same)} of {len(eligible)} eligible give TaskFlow's output")
        apart_examples = [name for name in eligible if name in DELIBERATE_EXAMPLES]
        if apart_examples:
            counted_examples = [name for name in eligible if name not in DELIBERATE_EXAMPLES]
            won_examples = sum(1 for name in counted_examples if name in same)
            print(
                f"  without the {len(apart_examples)} a documented deliberate difference changes: "
                f"{won_examples} of {len(counted_examples)}"
            )
            for name in apart_examples:
                print(f"  {name}: {'same' if name in same else 'differs'} [deliberate: {DELIBERATE_EXAMPLES[name]}]")
        report["examples"] = {
            r.name: {
                "same": r.same,
                "taskflow_rc": r.reference_rc,
                "ferroflow_rc": r.migrated_rc,
                "taskflow": r.reference,
                "ferroflow": r.migrated,
                "ferroflow_stderr": r.stderr[-4000:],
            }
            for r in runs
        }
        if len(same) < EXAMPLES_FLOOR and not args.only:
            print(f"FAIL: {len(same)} examples match, below the floor of {EXAMPLES_FLOOR}")
            ok = False

    if args.report:
        args.report.write_text(json.dumps(report, indent=1, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
