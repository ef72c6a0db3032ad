"""Trust: which code a store may name, and the one place such names are resolved.

A saved flow names code: its factory (``FlowDetail.meta['factory']``, called with arguments from
the store to rebuild the flow on resume) and, for atoms that completed, a *revert reference* (an
Atom class and its constructor arguments, some of them callables saved by name) used to revert
an orphan whose code was removed. Resolving a name imports its module and the resumed process
then calls what it found with arguments from the store, so a name is code execution.

**Threat model.** Anyone who can write the store (the SQLite file, the directory, later a shared
database) can write any name and any arguments: ``os.system`` with a shell command, a revert
reference naming ``subprocess.Popen``. What the store says about *who* saved a flow is in the
same rows and is forged as easily. So a name from a store is resolved only if:

- its module lies under a prefix the user trusted: ``pkg`` trusts ``pkg`` and ``pkg.sub``, not
  ``pkgx``. Prefixes come from an argument (``trusted_modules=[...]`` of
  `ferroflow.engines.load_from_detail`, ``flow_from_detail``, ``load``...), the CLI
  (``--trust MODULE``, repeatable, on ``resume`` and ``plan``) or the environment
  (``FERROFLOW_TRUSTED_MODULES``, comma separated), first found wins; the module is checked
  before anything is imported;
- it is not in the standard library, ``builtins`` or ``__main__`` (`is_stdlib`), even when the
  user lists them: no prefix makes ``os.system``, ``subprocess.Popen``, ``builtins.eval`` or
  ``importlib.import_module`` resolvable. Nor is ferroflow's own code, except the modules that
  define the demo and benchmark flows (`FERROFLOW_FACTORY_MODULES`) and, for revert references,
  ferroflow's atom classes (`FERROFLOW_ATOM_MODULES`, whose behaviour comes from their own,
  checked, callable arguments);
- it is what it claims to be, once imported: a factory is a Python function (or a staticmethod
  or classmethod) defined in that module under that name — not a class, not a builtin, not a
  callable imported there from elsewhere (a ``functools.partial`` the module itself defines, of
  such a function, is accepted); a revert reference's class is an `ferroflow.atom.Atom`
  subclass defined there; a callable argument is a function or class defined there (or a
  builtin exception class, or an exception class of a standard-library module already imported).

Anything else raises `ferroflow.exceptions.UntrustedCode` naming the flow, the name, its module
and how to trust it; for an orphan it becomes the `ferroflow.migrations.OrphanRevertError` that
stops the rollback (an orphan is never silently skipped).

**The default**, when the user gives no trust at all, is the top-level package of the code that
saved the flow, as the saved factory name records it (``resume_factories.chain`` →
``resume_factories``), when that package is not the standard library, builtins, ``__main__``,
ferroflow itself (only its demo and benchmark modules) or a packaging and test tool that runs
code from its arguments (`TOOL_PACKAGES`: pip, setuptools, pytest...). An engine reverting
orphans also trusts, by default, the top-level packages of the atoms of the flow it runs (code
this process already runs). The default is a convenience for stores only you write: it keeps
standard-library and builtin code out, but since the recorded package comes from the store, a
store writer can still name a function of any other installed package. **If anyone else can
write your store, give the trust explicitly** — an explicit argument, flag or environment
variable *replaces* the default entirely.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferroflow import exceptions

#: Environment variable listing trusted module prefixes, comma separated.
ENV_VAR = "FERROFLOW_TRUSTED_MODULES"
#: ferroflow's own modules that define flow factories (the demo and the benchmarks): the only
#: part of ferroflow a factory or callable named by a store may come from, when trusted.
FERROFLOW_FACTORY_MODULES = ("ferroflow.demo_flow", "ferroflow.benchmarking.flows")
#: ferroflow's own Atom classes, accepted as revert-reference classes whatever the trust (their
#: callable arguments are checked like any other).
FERROFLOW_ATOM_MODULES = ("ferroflow.task", "ferroflow.retry")
#: Packaging, test and shell tools whose functions run code or install packages from their
#: arguments: never trusted *by default* (best effort: list them explicitly to trust them).
TOOL_PACKAGES = frozenset(
    {
        "pip",
        "setuptools",
        "pkg_resources",
        "_distutils_hack",
        "distutils",
        "wheel",
        "build",
        "maturin",
        "virtualenv",
        "pipx",
        "uv",
        "pytest",
        "_pytest",
        "pluggy",
        "nox",
        "tox",
        "invoke",
        "fabric",
        "IPython",
        "ipykernel",
        "jupyter_core",
        "sh",
        "plumbum",
        "pexpect",
    }
)

#: Source label of trust given as an argument.
ARGUMENT = "trusted_modules"
#: Source label of trust given on the command line.
CLI_FLAG = "--trust"
#: Source label of the default.
DEFAULT = "default: the package that saved the flow"

_NEVER = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names) | {"builtins", "__main__"}


@dataclass(frozen=True)
class TrustedModules:
    """Module prefixes whose code a store may name, and where they came from (for messages).

    ``pkg`` covers ``pkg`` and ``pkg.sub``, not ``pkgx``.
    """

    prefixes: tuple[str, ...]
    source: str = ARGUMENT

    @classmethod
    def parse(cls, given: str | Iterable[str], source: str = ARGUMENT) -> TrustedModules:
        """Prefixes from a comma-separated string or an iterable of names.

        :raises ValueError: a name that is not a dotted module name, or one in the standard
            library or builtins (which are never trusted).
        """
        items = given.split(",") if isinstance(given, str) else list(given)
        prefixes: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"{source}: {item!r} is not a module name")
            text = item.strip()
            if not text and isinstance(given, str):
                continue
            if not _is_dotted(text):
                raise ValueError(f"{source}: {text!r} is not a dotted module name (like mypkg or mypkg.flows)")
            if is_stdlib(text):
                raise ValueError(
                    f"{source}: {text!r} is part of the Python standard library or builtins, which ferroflow never "
                    "trusts to run code named by a store; list the package of your own flows instead"
                )
            if text not in prefixes:
                prefixes.append(text)
        return cls(tuple(prefixes), source)

    def covers(self, module: str) -> bool:
        """Whether ``module`` lies under one of the prefixes."""
        return any(module == prefix or module.startswith(prefix + ".") for prefix in self.prefixes)

    def describe(self) -> str:
        """``'mypkg, other (--trust)'`` or ``'nothing (default: ...)'``."""
        return f"{', '.join(self.prefixes) or 'nothing'} ({self.source})"


def is_stdlib(name: str) -> bool:
    """Whether dotted ``name`` lies in the standard library, ``builtins`` or ``__main__``."""
    return name.split(".", 1)[0] in _NEVER


def is_ferroflow_internal(name: str, allowed: Iterable[str] = FERROFLOW_FACTORY_MODULES) -> bool:
    """Whether ``name`` lies in ferroflow but not under one of the ``allowed`` modules."""
    if name != "ferroflow" and not name.startswith("ferroflow."):
        return False
    return not any(name == module or name.startswith(module + ".") for module in allowed)


def explicit(argument: Any = None, env: Mapping[str, str] | None = None) -> TrustedModules | None:
    """The trust the user gave: ``argument`` (a `TrustedModules`, a comma-separated string or
    an iterable of names), else ``$FERROFLOW_TRUSTED_MODULES`` of ``env`` (default
    ``os.environ``; empty means unset); ``None`` when neither is given.

    :raises ValueError: see `TrustedModules.parse`.
    """
    if isinstance(argument, TrustedModules):
        return argument
    if argument is not None:
        return TrustedModules.parse(argument, ARGUMENT)
    text = (os.environ if env is None else env).get(ENV_VAR, "")
    if text.strip():
        return TrustedModules.parse(text, f"${ENV_VAR}")
    return None


def default_prefix(name: str | None) -> str | None:
    """The prefix the default trusts for code named ``name`` by a store or found in the flow
    being run: its top-level package, or ``None`` when the default never trusts it (see the
    module docstring)."""
    if not isinstance(name, str) or not _is_dotted(name) or is_stdlib(name):
        return None
    top = name.split(".", 1)[0]
    if top in TOOL_PACKAGES:
        return None
    if top == "ferroflow":
        return next(
            (module for module in FERROFLOW_FACTORY_MODULES if name == module or name.startswith(module + ".")), None
        )
    return top


def default(saved_factory: str | None = None, code_modules: Iterable[str | None] = ()) -> TrustedModules:
    """The default trust: the package of the saved factory name, and those of ``code_modules``
    (modules of code the process already runs), each when `default_prefix` allows it."""
    prefixes: list[str] = []
    for name in (saved_factory, *code_modules):
        prefix = default_prefix(name)
        if prefix is not None and prefix not in prefixes:
            prefixes.append(prefix)
    return TrustedModules(tuple(prefixes), DEFAULT)


def trusted_from(
    argument: Any = None,
    env: Mapping[str, str] | None = None,
    saved_factory: str | None = None,
    code_modules: Iterable[str | None] = (),
) -> TrustedModules:
    """The trust to resolve names with: the `explicit` trust if any (it replaces the default),
    else the `default` for ``saved_factory`` and ``code_modules``."""
    given = explicit(argument, env)
    return given if given is not None else default(saved_factory, code_modules)


# -- resolving -------------------------------------------------------------------------------------


def resolve_factory(name: Any, trusted: TrustedModules, flow: str = "") -> Any:
    """The flow factory a store names: a function (or staticmethod, classmethod) defined in a
    trusted module under that name.

    :param flow: the flow, for messages (``"'name' (uuid)"``).
    :raises UntrustedCode: the name is not trusted or not a factory function.
    :raises ImportError: a trusted name whose module or attribute does not exist (any more).
    """
    module, obj = _resolve(name, trusted, "factory", flow)
    if not (_is_function_named(obj, module, name) or _is_trusted_partial(obj, trusted)):
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names factory {name!r}, which is {_kind_text(obj)}, not a flow factory "
            f"function defined in module {module!r} under that name; a factory is a module-level function, "
            "staticmethod or classmethod"
        )
    return obj


def resolve_atom_class(name: Any, trusted: TrustedModules, flow: str = "") -> type:
    """The Atom class a revert reference names: an `ferroflow.atom.Atom` subclass defined in a
    trusted module (or one of ferroflow's atom modules) under that name.

    :raises UntrustedCode: the name is not trusted or not an Atom subclass.
    :raises ImportError: a trusted name that does not exist (any more).
    """
    from ferroflow.atom import Atom

    module, obj = _resolve(name, trusted, "revert reference class", flow, FERROFLOW_ATOM_MODULES)
    if not (inspect.isclass(obj) and issubclass(obj, Atom) and _defined_as(obj, module, name)):
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names revert reference class {name!r}, which is {_kind_text(obj)}, "
            f"not an Atom subclass defined in module {module!r} under that name"
        )
    return obj


def resolve_callable(name: Any, trusted: TrustedModules, flow: str = "") -> Any:
    """A callable argument of a revert reference: a function or class defined in a trusted
    module under that name, or an exception class (builtin, or of a standard-library module
    already imported: nothing is imported for it).

    :raises UntrustedCode: the name is not trusted or not a function or class defined there.
    :raises ImportError: a trusted name that does not exist (any more).
    """
    exception = _stdlib_exception(name)
    if exception is not None:
        return exception
    module, obj = _resolve(name, trusted, "callable argument", flow)
    if not (_is_function_named(obj, module, name) or (inspect.isclass(obj) and _defined_as(obj, module, name))):
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names callable {name!r}, which is {_kind_text(obj)}, not a function or "
            f"class defined in module {module!r} under that name"
        )
    return obj


def check_saved_name(name: str, what: str = "factory") -> None:
    """Refuses, when a name is *saved*, one that no resuming process would ever resolve
    (standard library, builtins, ``__main__``, ferroflow internals).

    :raises ValueError: naming it and why.
    """
    if is_stdlib(name):
        top = name.split(".", 1)[0]
        where = "a script run as __main__" if top == "__main__" else "the Python standard library or builtins"
        raise ValueError(
            f"{what} {name!r} is in {where}: a resuming process never imports such code from a store; "
            "use a function of your own package"
        )
    if is_ferroflow_internal(name):
        raise ValueError(
            f"{what} {name!r} is part of ferroflow, whose code a store may not name (only "
            f"{', '.join(FERROFLOW_FACTORY_MODULES)}); use a function of your own package"
        )


def check_factory_object(name: str, obj: Any) -> None:
    """Refuses, when saved, a factory that is not a function defined where ``name`` says.

    :raises ValueError: naming it.
    """
    check_saved_name(name)
    module = _module_of(obj)
    if not _is_function_named(obj, module, name):
        raise ValueError(
            f"flow factory {name!r} is {_kind_text(obj)}: a flow factory must be a module-level function, "
            "staticmethod or classmethod, re-importable by that name"
        )


def import_by_name(name: str) -> Any:
    """Imports ``package.module.attr[.attr...]`` (the longest importable module prefix).

    Only for names this process made itself, to check that what it saves can be imported back
    (a factory it was given, an atom class it runs); never for a name read from a store — those
    go through `resolve_factory`, `resolve_atom_class` and `resolve_callable`.
    """
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ImportError(f"cannot import {name!r}: module {module_name!r} has no {exc.name!r}") from exc
        return obj
    raise ImportError(f"cannot import {name!r}: no importable module in that name")


# -- internals -------------------------------------------------------------------------------------


def _is_dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _flow_text(flow: str) -> str:
    return f"flow {flow}: " if flow else ""


def _how_to_trust(package: str) -> str:
    return (
        f"if you trust it, pass trusted_modules=[{package!r}] (command line: --trust {package}, or {ENV_VAR}={package})"
    )


def _resolve(name: Any, trusted: TrustedModules, what: str, flow: str, always: Iterable[str] = ()) -> tuple[str, Any]:
    """``(module name, object)`` for trusted dotted ``name``; nothing is imported unless the
    name is trusted, and only modules under a trusted prefix are imported."""
    if not isinstance(name, str) or not _is_dotted(name) or "." not in name:
        raise exceptions.UntrustedCode(f"{_flow_text(flow)}the store names {what} {name!r}, which is not a dotted name")
    module_text = name.rpartition(".")[0]
    package = name.split(".", 1)[0]
    if is_stdlib(name):
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names {what} {name!r} from module {module_text!r}, which is part of the "
            "Python standard library or builtins; ferroflow never imports such code named by a store, whatever "
            "is trusted (was the store tampered with?)"
        )
    if any(part.startswith("__") for part in name.split(".")):
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names {what} {name!r}: names with dunder parts are never resolved"
        )
    always = tuple(always)
    allowed_internal = (*FERROFLOW_FACTORY_MODULES, *always)
    if is_ferroflow_internal(name, allowed_internal):
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names {what} {name!r} from module {module_text!r}, which is part of "
            f"ferroflow; a store may only name ferroflow's {', '.join(allowed_internal)} (was the store tampered "
            "with?)"
        )

    def allowed(module: str) -> bool:
        return trusted.covers(module) or any(module == m or module.startswith(m + ".") for m in always)

    parts = name.split(".")
    candidates = [".".join(parts[:split]) for split in range(len(parts) - 1, 0, -1)]
    candidates = [module for module in candidates if allowed(module)]
    if not candidates:
        raise exceptions.UntrustedCode(
            f"{_flow_text(flow)}the store names {what} {name!r} from module {module_text!r}, which is not trusted "
            f"(trusted: {trusted.describe()}); {_how_to_trust(package)}"
        )
    failure: ImportError | None = None
    for module_name in candidates:
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            if failure is None:
                failure = exc
            continue
        try:
            for attr in parts[len(module_name.split(".")) :]:
                obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ImportError(f"cannot import {name!r}: module {module_name!r} has no {exc.name!r}") from exc
        return module_name, obj
    raise ImportError(f"cannot import {name!r}: {failure}") from failure


def _defined_as(obj: Any, module: str, name: str) -> bool:
    return getattr(obj, "__module__", None) == module and f"{module}.{getattr(obj, '__qualname__', '')}" == name


def _is_function_named(obj: Any, module: str | None, name: str) -> bool:
    """A Python function, staticmethod or classmethod (bound to its class), defined in ``module``
    under ``name``."""
    if module is None:
        return False
    if inspect.ismethod(obj):
        if not inspect.isclass(obj.__self__):
            return False  # bound to an instance
        obj = obj.__func__
    return inspect.isfunction(obj) and _defined_as(obj, module, name)


def _is_trusted_partial(obj: Any, trusted: TrustedModules) -> bool:
    """A ``functools.partial`` (the module's own, not the store's) of a Python function defined
    in a trusted module outside the standard library and ferroflow's internals."""
    if not isinstance(obj, functools.partial):
        return False
    while isinstance(obj, functools.partial):
        obj = obj.func
    module = _module_of(obj)
    return (
        module is not None
        and _is_function_named(obj, module, f"{module}.{getattr(obj, '__qualname__', '')}")
        and trusted.covers(module)
        and not is_stdlib(module)
        and not is_ferroflow_internal(module)
    )


def _module_of(obj: Any) -> str | None:
    target = obj.__func__ if inspect.ismethod(obj) else obj
    module = getattr(target, "__module__", None)
    return module if isinstance(module, str) else None


def _stdlib_exception(name: Any) -> type | None:
    """The exception class ``name`` names in builtins or in an already imported standard-library
    module (nothing is imported), else ``None``."""
    if not isinstance(name, str) or not _is_dotted(name) or not is_stdlib(name) or "." not in name:
        return None
    module_name, _, attr = name.rpartition(".")
    module = builtins if module_name == "builtins" else sys.modules.get(module_name)
    if module is None or module_name == "__main__":
        return None
    obj = getattr(module, attr, None)
    if inspect.isclass(obj) and issubclass(obj, BaseException) and _defined_as(obj, module_name, name):
        return obj
    return None


def _kind_text(obj: Any) -> str:
    if inspect.isclass(obj):
        return f"a class ({obj.__module__}.{obj.__qualname__})"
    if inspect.isbuiltin(obj):
        return f"a builtin function ({getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', '?')})"
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        target = obj.__func__ if inspect.ismethod(obj) else obj
        return f"a function defined as {target.__module__}.{target.__qualname__}"
    if inspect.ismodule(obj):
        return "a module"
    return f"a {type(obj).__name__} object"


__all__ = [
    "ENV_VAR",
    "FERROFLOW_ATOM_MODULES",
    "FERROFLOW_FACTORY_MODULES",
    "TOOL_PACKAGES",
    "TrustedModules",
    "check_factory_object",
    "check_saved_name",
    "default",
    "default_prefix",
    "explicit",
    "import_by_name",
    "is_ferroflow_internal",
    "is_stdlib",
    "resolve_atom_class",
    "resolve_callable",
    "resolve_factory",
    "trusted_from",
]
