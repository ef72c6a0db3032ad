"""A store does not decide what code runs: names it holds are resolved only through trust the user
gave (`ferroflow.trust`). Real processes (the ``ferroflow`` CLI and child scripts) on real files;
stores are tampered with at the file level, as anyone with write access to them could.

The CLI's ``--db`` is a SQLite file, so the CLI tests run on ``sqlite:///``; the library paths
(`load_from_detail`, orphan reverts) run on ``sqlite:///`` and ``dir:///``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import resume_changes_factories as rc
import resume_factories as rf
from ferroflow import engines, exceptions, trust
from ferroflow.engines import revert_refs

TESTS = Path(__file__).resolve().parent
KILLED = -9
BACKENDS = ["sqlite", "dir"]

CHILD = r"""
import contextlib
import json
import os
import sys

from ferroflow import engines
from ferroflow.persistence import backends


def main(argv):
    command, uri, workdir = argv[:3]
    os.environ["RESUME_CHANGES_WORKDIR"] = workdir
    sys.path.insert(0, workdir)
    backend = backends.fetch(uri)
    try:
        if command == "start-chain":  # resume_factories.chain, suspended after its first atom
            import resume_factories as rf

            engine = engines.load_from_factory(rf.chain, factory_args=[workdir], backend=backend)
            engine.atom_notifier.register("SUCCESS", lambda *_, **__: engine.suspend())
            print(engine.storage.flow_uuid, flush=True)
            engine.run()
            print("done", engine.storage.get_flow_state(), flush=True)
            return 0
        if command == "start-changes":  # resume_changes_factories.make; behaviour.json may SIGKILL it
            import resume_changes_factories as rc

            engine = engines.load_from_factory(rc.make, factory_kwargs={"workdir": workdir}, backend=backend)
            print(engine.storage.flow_uuid, flush=True)
            engine.run()
            print("done", engine.storage.get_flow_state(), flush=True)
            return 0
        flow_uuid, options = argv[3], json.loads(argv[4])
        with contextlib.closing(backend.get_connection()) as conn:
            flow_detail = conn.get_flow_details(flow_uuid)
        if command == "flow":
            engines.flow_from_detail(flow_detail, **options)
            print("built", flush=True)
            return 0
        engine = engines.load_from_detail(flow_detail, backend=backend, **options)
        engine.run()
        print("done", engine.storage.get_flow_state(), flush=True)
        return 0
    except Exception as exc:
        print("raised", type(exc).__name__, exc, flush=True)
        return 1
    finally:
        backend.close()


sys.exit(main(sys.argv[1:]))
"""

#: A package that is not trusted: importing it leaves a file, so a test sees whether it was imported.
EVIL_MODULE = """
import pathlib

pathlib.Path(__file__).with_name("imported-evilpkg").touch()


def make(*args, **kwargs):
    pathlib.Path(__file__).with_name("called-evilpkg").touch()
    raise SystemExit("evilpkg.make was called")
"""


# -- helpers -----------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FERROFLOW_DB", None)
    env.pop(trust.ENV_VAR, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def ferroflow(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferroflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(**env),
    )


class Store:
    """A store (``kind`` is ``sqlite`` or ``dir``) in a work directory, driven by child processes."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.path = workdir / ("flows.db" if kind == "sqlite" else "store")
        self.uri = f"sqlite:///{self.path}" if kind == "sqlite" else f"dir:///{self.path}"
        self.child_script = workdir / "trust_child.py"
        self.child_script.write_text(CHILD)
        self.output = ""
        self.uuid = ""

    def child(self, *args: str, **env: str) -> int:
        done = subprocess.run(
            [sys.executable, str(self.child_script), args[0], self.uri, str(self.workdir), *args[1:]],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(**env),
        )
        self.output = done.stdout + done.stderr
        return done.returncode

    def start_chain(self) -> str:
        """A ``resume_factories.chain`` flow (a, b, c) saved SUSPENDED after ``a``."""
        rf.configure(self.workdir)
        assert self.child("start-chain") == 0, self.output
        self.uuid = self.output.split()[0]
        assert "done SUSPENDED" in self.output, self.output
        assert rf.take_journal(self.workdir) == ["execute a"]
        return self.uuid

    def load(self, **options: Any) -> int:
        """``load_from_detail(...).run()`` in a child process; 0 when it ran."""
        env = options.pop("env", {})
        return self.child("load", self.uuid, json.dumps(options), **env)

    def build(self, **options: Any) -> int:
        """``flow_from_detail(...)`` in a child process; 0 when it built."""
        return self.child("flow", self.uuid, json.dumps(options))

    # -- tampering, as someone with write access to the files would ---------------------------------
    def set_factory(self, record: dict[str, Any]) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                (meta,) = db.execute("SELECT meta FROM flowdetails WHERE uuid = ?", (self.uuid,)).fetchone()
                meta = {**json.loads(meta), "factory": record}
                db.execute("UPDATE flowdetails SET meta = ? WHERE uuid = ?", (json.dumps(meta), self.uuid))
            db.close()
            return
        path = self.path / "flow_details" / self.uuid / "metadata"
        data = json.loads(path.read_text())
        data["meta"]["factory"] = record
        path.write_text(json.dumps(data))

    def set_revert_reference(self, atom_name: str, reference: dict[str, Any]) -> None:
        """Replaces the revert reference in the resume record of detail ``atom_name``."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                uuid, record = db.execute(
                    "SELECT uuid, resume FROM atomdetails WHERE flow_id = (SELECT id FROM flowdetails WHERE uuid = ?) "
                    "AND name = ?",
                    (self.uuid, atom_name),
                ).fetchone()
                assert record, "the completed atom has a resume record"
                inputs = record.split(revert_refs.FIELD_END, 1)[0]
                db.execute(
                    "UPDATE atomdetails SET resume = ? WHERE uuid = ?",
                    (revert_refs.encode_record(inputs, reference), uuid),
                )
            db.close()
            return
        for path in (self.path / "atom_details").glob("*/metadata"):
            data = json.loads(path.read_text())
            if data["atom"]["name"] == atom_name:
                assert data.get("resume"), "the completed atom has a resume record"
                inputs = data["resume"].split(revert_refs.FIELD_END, 1)[0]
                data["resume"] = revert_refs.encode_record(inputs, reference)
                path.write_text(json.dumps(data))
                return
        raise AssertionError(f"no detail {atom_name!r} in {self.path}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return Store(request.param, tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    return Store("sqlite", tmp_path)


def _one_line_error(stderr: str, *parts: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ferroflow: error: "), stderr
    for part in parts:
        assert part in lines[0], (part, stderr)


# -- a factory tampered to os.system ----------------------------------------------------------------


def test_plan_and_resume_run_nothing_when_the_factory_names_os_system(sqlite_store: Store) -> None:
    store, workdir = sqlite_store, sqlite_store.workdir
    store.start_chain()
    pwned = workdir / "pwned"
    store.set_factory({"name": "os.system", "args": [f"touch {pwned}"], "kwargs": {}})
    db = str(store.path)

    listed = ferroflow("show", "--db", db, cwd=workdir)
    assert listed.returncode == 0 and "os.system" in listed.stdout, listed.stderr
    for command in ("plan", "resume"):
        result = ferroflow(command, store.uuid, "--db", db, cwd=workdir)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        _one_line_error(result.stderr, store.uuid, "UntrustedCode", "'os.system'", "module 'os'", "standard library")
        assert not pwned.exists(), f"{command} ran the command the store named"

    # Listing the standard library does not make it trusted: a usage error, before anything runs.
    listed_os = ferroflow("resume", store.uuid, "--trust", "os", "--db", db, cwd=workdir)
    assert listed_os.returncode == 2, listed_os.stderr
    _one_line_error(listed_os.stderr, "'os'", "standard library")
    from_env = ferroflow("plan", store.uuid, "--db", db, cwd=workdir, **{trust.ENV_VAR: "os"})
    assert from_env.returncode == 1, from_env.stderr
    _one_line_error(from_env.stderr, "'os'", "standard library")
    assert not pwned.exists()
    assert rf.take_journal(workdir) == [], "no atom ran"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("os.system", ["touch {pwned}"]),
        ("subprocess.Popen", [["touch", "{pwned}"]]),
        ("subprocess.run", [["touch", "{pwned}"]]),
        ("builtins.eval", ["__import__('os').system('touch {pwned}')"]),
        ("importlib.import_module", ["antigravity"]),
    ],
    ids=["os.system", "subprocess.Popen", "subprocess.run", "builtins.eval", "importlib"],
)
def test_load_from_detail_never_resolves_standard_library_factories(store: Store, name: str, args: list) -> None:
    store.start_chain()
    pwned = store.workdir / "pwned"
    args = json.loads(json.dumps(args).replace("{pwned}", str(pwned)))
    store.set_factory({"name": name, "args": args, "kwargs": {}})
    module = name.rpartition(".")[0]

    assert store.load() == 1
    assert f"raised UntrustedCode flow 'chain' ({store.uuid})" in store.output, store.output
    assert f"{name!r} from module {module!r}" in store.output and "standard library" in store.output
    # Explicit trust of another package (which replaces the default) does not reach it either.
    assert store.load(trusted_modules=["resume_factories"]) == 1
    assert "raised UntrustedCode" in store.output and repr(name) in store.output, store.output
    assert store.build() == 1 and "raised UntrustedCode" in store.output, store.output
    # Nor does listing it.
    assert store.load(trusted_modules=[module]) == 1
    assert "raised ValueError" in store.output and "standard library" in store.output, store.output
    assert not pwned.exists()
    assert rf.take_journal(store.workdir) == []


@pytest.mark.parametrize(
    ("name", "args", "why"),
    [
        ("resume_factories.os.system", ["touch {pwned}"], "a builtin function (posix.system)"),
        ("resume_factories.subprocess.run", [["touch", "{pwned}"]], "a function defined as subprocess.run"),
        ("resume_factories.Step", ["x", "{pwned}"], "a class (resume_factories.Step)"),
        ("resume_factories.pathlib.Path.touch", [], "a function defined as pathlib.Path.touch"),
        ("resume_factories.__builtins__.eval", ["1"], "dunder"),
    ],
    ids=["reexported-builtin", "reexported-function", "class", "reexported-method", "dunder"],
)
def test_a_trusted_module_does_not_reach_what_it_imported(store: Store, name: str, args: list, why: str) -> None:
    """The name must be a factory function defined where it says: not a class, not something the
    trusted module imported from the standard library."""
    store.start_chain()
    pwned = store.workdir / "pwned"
    args = json.loads(json.dumps(args).replace("{pwned}", str(pwned)))
    store.set_factory({"name": name, "args": args, "kwargs": {}})

    assert store.load() == 1
    assert "raised UntrustedCode" in store.output and repr(name) in store.output, store.output
    assert why in store.output, store.output
    assert not pwned.exists()
    assert rf.take_journal(store.workdir) == []


# -- untrusted packages -----------------------------------------------------------------------------


def test_an_untrusted_package_is_never_imported_and_show_imports_nothing(sqlite_store: Store) -> None:
    store, workdir = sqlite_store, sqlite_store.workdir
    (workdir / "evilpkg.py").write_text(EVIL_MODULE)
    imported = workdir / "imported-evilpkg"
    store.start_chain()
    store.set_factory({"name": "evilpkg.make", "args": [], "kwargs": {}})
    db = str(store.path)

    for args in (["show"], ["show", store.uuid], ["show", "--json"], ["show", store.uuid, "--json"]):
        shown = ferroflow(*args, "--db", db, cwd=workdir)
        assert shown.returncode == 0, shown.stderr
        assert "evilpkg.make" in shown.stdout
        assert not imported.exists(), f"{args} imported the factory's module"

    for command in ("plan", "resume"):
        result = ferroflow(command, store.uuid, "--trust", "resume_factories", "--db", db, cwd=workdir)
        assert result.returncode == 1, result.stderr
        _one_line_error(
            result.stderr,
            "'evilpkg.make'",
            "module 'evilpkg'",
            "not trusted",
            "resume_factories (--trust)",
            "--trust evilpkg",
            trust.ENV_VAR,
            "trusted_modules=['evilpkg']",
        )
        assert not imported.exists(), f"{command} imported an untrusted module"
    assert not (workdir / "called-evilpkg").exists()


def test_packaging_tools_are_not_trusted_by_default(store: Store) -> None:
    store.start_chain()
    store.set_factory({"name": "pip._internal.cli.main.main", "args": [["--version"]], "kwargs": {}})
    assert store.load() == 1
    assert "raised UntrustedCode" in store.output and "module 'pip._internal.cli.main'" in store.output
    assert "trusted: nothing (default: the package that saved the flow)" in store.output, store.output


# -- what is trusted ------------------------------------------------------------------------------------


def test_the_package_that_saved_the_flow_is_trusted_by_default(store: Store) -> None:
    store.start_chain()
    if store.kind == "sqlite":
        result = ferroflow("resume", store.uuid, "--db", str(store.path), "--no-progress", cwd=store.workdir)
        assert result.returncode == 0, result.stderr
    else:
        assert store.load() == 0, store.output
        assert "done SUCCESS" in store.output
    assert rf.take_journal(store.workdir) == ["execute b a=a@1", "execute c b=b@1"]


def test_explicit_trust_replaces_the_default(sqlite_store: Store) -> None:
    store, workdir = sqlite_store, sqlite_store.workdir
    store.start_chain()
    db = str(store.path)

    # A prefix covers a module and its submodules, not a longer name: "resume" is not "resume_factories".
    for trusted in ("elsewhere", "resume"):
        flag = ferroflow("resume", store.uuid, "--trust", trusted, "--db", db, cwd=workdir)
        assert flag.returncode == 1, flag.stderr
        _one_line_error(flag.stderr, "'resume_factories.chain'", "not trusted", f"{trusted} (--trust)")
    env = ferroflow("plan", store.uuid, "--db", db, cwd=workdir, **{trust.ENV_VAR: "elsewhere, other.pkg"})
    assert env.returncode == 1, env.stderr
    _one_line_error(env.stderr, "not trusted", f"elsewhere, other.pkg (${trust.ENV_VAR})")
    assert rf.take_journal(workdir) == [], "nothing ran"

    # The flag replaces the environment, which replaces the default.
    planned = ferroflow("plan", store.uuid, "--db", db, cwd=workdir, **{trust.ENV_VAR: "elsewhere,resume_factories"})
    assert planned.returncode == 0, planned.stderr
    resumed = ferroflow(
        "resume",
        store.uuid,
        "--trust",
        "elsewhere",
        "--trust",
        "resume_factories",
        "--no-progress",
        "--db",
        db,
        cwd=workdir,
        **{trust.ENV_VAR: "elsewhere"},
    )
    assert resumed.returncode == 0, resumed.stderr
    assert rf.take_journal(workdir) == ["execute b a=a@1", "execute c b=b@1"]


def test_explicit_trust_in_the_library(store: Store) -> None:
    store.start_chain()
    assert store.load(trusted_modules=["elsewhere"]) == 1
    assert "raised UntrustedCode" in store.output and "elsewhere (trusted_modules)" in store.output, store.output
    assert store.load(env={trust.ENV_VAR: "elsewhere"}) == 1
    assert f"elsewhere (${trust.ENV_VAR})" in store.output, store.output
    assert rf.take_journal(store.workdir) == []
    # The argument replaces the environment.
    assert store.load(trusted_modules=["resume_factories"], env={trust.ENV_VAR: "elsewhere"}) == 0, store.output
    assert rf.take_journal(store.workdir) == ["execute b a=a@1", "execute c b=b@1"]


def test_the_demo_factory_is_trusted_by_default(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    ran = ferroflow("run", "ferroflow.demo_flow:make_pipeline", "--arg", "5", "--arg", "2", "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    flow_uuid = json.loads(ferroflow("show", "--json", "--db", db, cwd=tmp_path).stdout)[0]["uuid"]
    planned = ferroflow("plan", flow_uuid, "--db", db, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "5 reuse" in planned.stdout


# -- orphans' revert references --------------------------------------------------------------------


EVIL_ATOM_MODULE = """
import pathlib

from resume_changes_factories import Step

pathlib.Path(__file__).with_name("imported-evil_steps").touch()


class EvilStep(Step):
    pass
"""


def _popen(pwned: Path) -> dict[str, Any]:
    return {"kind": "class", "name": "subprocess.Popen", "args": [["touch", str(pwned)]], "kwargs": {}}


def _functor(pwned: Path) -> dict[str, Any]:
    return {
        "kind": "class",
        "name": "ferroflow.task.FunctorTask",
        "args": [{"$callable": "resume_changes_factories.migrate_result"}],
        "kwargs": {"name": "b", "revert": {"$callable": "os.system"}},
        "revert_kwargs": {"command": f"touch {pwned}"},
    }


def _untrusted_class(pwned: Path) -> dict[str, Any]:
    return {"kind": "class", "name": "evil_steps.EvilStep", "args": ["b", str(pwned)], "kwargs": {}}


def _killed_with_an_orphan(store: Store) -> None:
    """``abcd`` SIGKILLed in ``d``; the code then drops ``b``, which completed: an orphan."""
    rc.deploy(store.workdir, "abcd")
    rc.configure(store.workdir, 1, kill=["d"])
    assert store.child("start-changes") == KILLED, store.output
    store.uuid = store.output.split()[0]
    assert rc.take_journal(store.workdir) == ["execute a", "execute b a=a@1", "execute c b=b@1", "execute d c=c@1"]
    rc.deploy(store.workdir, "acd")
    rc.configure(store.workdir, 2, fail=["d"])


@pytest.mark.parametrize(
    ("make_reference", "named", "why"),
    [
        (_popen, "'subprocess.Popen'", "standard library"),
        (_functor, "'os.system'", "standard library"),
        (_untrusted_class, "'evil_steps.EvilStep'", "not trusted"),
    ],
    ids=["subprocess.Popen", "functor-os.system", "untrusted-package"],
)
def test_a_revert_reference_naming_untrusted_code_runs_nothing_on_rollback(
    store: Store, make_reference: Any, named: str, why: str
) -> None:
    (store.workdir / "evil_steps.py").write_text(EVIL_ATOM_MODULE)
    pwned = store.workdir / "pwned"
    _killed_with_an_orphan(store)
    store.set_revert_reference("b", make_reference(pwned))

    assert store.load() == 1
    assert "raised OrphanRevertError Cannot revert orphan 'b'" in store.output, store.output
    assert named in store.output and why in store.output, store.output
    assert "UntrustedCode" in store.output or "not trusted" in store.output
    # The current atoms were reverted; the orphan was not, and nothing it named ran or was imported.
    assert rc.take_journal(store.workdir) == ["execute d c=c@1", "revert d", "revert c", "revert a"]
    assert not pwned.exists()
    assert not (store.workdir / "imported-evil_steps").exists()


def test_an_orphan_of_the_trusted_package_is_reverted(store: Store) -> None:
    _killed_with_an_orphan(store)
    assert store.load() == 1, store.output  # d fails, the flow is reverted: its run raises d's failure
    assert "d failed" in store.output, store.output
    assert rc.take_journal(store.workdir) == ["execute d c=c@1", "revert d", "revert c", "revert a", "revert b"]


def test_an_orphan_class_outside_the_trust_is_refused_until_trusted(store: Store) -> None:
    (store.workdir / "evil_steps.py").write_text(EVIL_ATOM_MODULE)
    imported = store.workdir / "imported-evil_steps"
    _killed_with_an_orphan(store)
    reference = {"kind": "class", "name": "evil_steps.EvilStep", "args": ["b", str(store.workdir)], "kwargs": {}}
    store.set_revert_reference("b", reference)

    assert store.load(env={trust.ENV_VAR: "resume_changes_factories"}) == 1
    assert "Cannot revert orphan 'b'" in store.output and "'evil_steps.EvilStep'" in store.output, store.output
    assert f"resume_changes_factories (${trust.ENV_VAR})" in store.output, store.output
    assert not imported.exists()
    assert rc.take_journal(store.workdir)[-1] == "revert a", "the orphan was not reverted"

    # Explicit trust replaces the default: trusting only the orphan's package refuses the factory.
    assert store.load(env={trust.ENV_VAR: "evil_steps"}) == 1
    assert "raised UntrustedCode" in store.output and "'resume_changes_factories.make'" in store.output
    assert rc.take_journal(store.workdir) == [] and not imported.exists()

    # Trusting both, the orphan is rebuilt from its class and reverted.
    assert store.load(env={trust.ENV_VAR: "resume_changes_factories,evil_steps"}) == 1
    assert "d failed" in store.output, store.output
    assert imported.exists()
    assert rc.take_journal(store.workdir)[-1] == "revert b"


# -- the rules, in process --------------------------------------------------------------------------


def test_prefixes_cover_modules_and_submodules_only() -> None:
    trusted = trust.TrustedModules.parse("pkg, other.sub")
    assert trusted.prefixes == ("pkg", "other.sub")
    assert trusted.covers("pkg") and trusted.covers("pkg.sub.deep") and trusted.covers("other.sub.x")
    assert not trusted.covers("pkgx") and not trusted.covers("other") and not trusted.covers("other.subx")
    for never in ("os", "os.path", "builtins", "subprocess", "importlib", "__main__", "sys"):
        with pytest.raises(ValueError, match="standard library"):
            trust.TrustedModules.parse([never])
    with pytest.raises(ValueError, match="not a dotted module name"):
        trust.TrustedModules.parse(["pkg/flows.py"])


def test_the_default_never_comes_from_the_standard_library_ferroflow_or_tools() -> None:
    assert trust.default("mypkg.flows.make").prefixes == ("mypkg",)
    assert trust.default("ferroflow.demo_flow.make_pipeline").prefixes == ("ferroflow.demo_flow",)
    for name in ("os.system", "builtins.eval", "ferroflow.cli.main", "pip._internal.cli.main.main", "__main__.f", ""):
        assert trust.default(name).prefixes == (), name
    assert trust.trusted_from(None, env={trust.ENV_VAR: "a,b"}).prefixes == ("a", "b")
    assert trust.trusted_from([], env={trust.ENV_VAR: "a"}, saved_factory="mypkg.f").prefixes == ()


def test_ferroflow_internals_are_refused_even_when_ferroflow_is_trusted() -> None:
    everything = trust.TrustedModules.parse(["ferroflow"])
    with pytest.raises(exceptions.UntrustedCode, match="part of ferroflow"):
        trust.resolve_factory("ferroflow.cli.main", everything)
    assert trust.resolve_factory("ferroflow.demo_flow.make_pipeline", everything).__name__ == "make_pipeline"
    # ferroflow's atom classes are revert-reference classes whatever the trust; not its other classes.
    assert trust.resolve_atom_class("ferroflow.task.FunctorTask", trust.TrustedModules(())).__name__ == "FunctorTask"
    with pytest.raises(exceptions.UntrustedCode, match="Atom subclass"):
        trust.resolve_atom_class("ferroflow.retry.History", trust.TrustedModules(()))


def test_exception_classes_are_accepted_as_callable_arguments_without_imports() -> None:
    nothing = trust.TrustedModules(())
    assert trust.resolve_callable("builtins.ValueError", nothing) is ValueError
    with pytest.raises(exceptions.UntrustedCode, match="standard library"):
        trust.resolve_callable("builtins.eval", nothing)
    assert "antigravity" not in sys.modules
    with pytest.raises(exceptions.UntrustedCode, match="standard library"):
        trust.resolve_callable("antigravity.Error", nothing)
    assert "antigravity" not in sys.modules


def test_factories_that_no_resume_could_resolve_are_refused_when_saved(tmp_path: Path) -> None:
    backend = f"sqlite:///{tmp_path / 'flows.db'}"
    for factory, message in (
        ("os.system", "standard library"),
        (subprocess.Popen, "standard library"),
        ("ferroflow.cli.main", "part of ferroflow"),
        (rf.Step, "must be a module-level function"),
        ("resume_factories.Step", "must be a module-level function"),
    ):
        with pytest.raises(ValueError, match=message):
            engines.load_from_factory(factory, factory_args=["echo pwned"], backend=backend)
    assert not (tmp_path / "flows.db").exists(), "refused before the store is opened"


def test_revert_references_do_not_save_standard_library_callables() -> None:
    with pytest.raises(TypeError, match="standard library"):
        revert_refs._encode(os.system)
    with pytest.raises(TypeError, match="standard library"):
        revert_refs._encode(subprocess.Popen)
    assert revert_refs._encode(ValueError) == {"$callable": "builtins.ValueError"}
    assert revert_refs._encode(rc.migrate_result) == {"$callable": "resume_changes_factories.migrate_result"}


def test_untrusted_code_message_says_how_to_trust_it() -> None:
    with pytest.raises(exceptions.UntrustedCode) as raised:
        trust.resolve_factory("somepkg.flows.make", trust.TrustedModules(("mypkg",), trust.CLI_FLAG), "'f' (u)")
    text = str(raised.value)
    assert text.startswith("flow 'f' (u): ")
    for part in ("'somepkg.flows.make'", "module 'somepkg.flows'", "mypkg (--trust)", "trusted_modules=['somepkg']"):
        assert part in text, text
    assert f"{trust.ENV_VAR}=somepkg" in text and "--trust somepkg" in text
