"""ferroflow: durable, resumable workflows with a Rust core, speaking OpenStack TaskFlow's API.

A TaskFlow program moves over by replacing ``taskflow`` with ``ferroflow`` in its imports: the public
modules (``ferroflow.task``, ``ferroflow.retry``, ``ferroflow.patterns.*``, ``ferroflow.engines``,
``ferroflow.states``, ``ferroflow.exceptions``, ...) keep TaskFlow's names and behaviour.

Importing this package does not load the compiled core (``ferroflow._core``); the modules that run flows
import it themselves.
"""

from typing import Any as _Any


def __getattr__(name: str) -> _Any:
    """``ferroflow.__version__``: the installed distribution's version (read once, on first use,
    from the package metadata that the build took from Cargo.toml)."""
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("ferroflow")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module 'ferroflow' has no attribute {name!r}")
