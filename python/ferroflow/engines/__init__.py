"""Engines: load a flow, run it, resume it (TaskFlow's ``taskflow.engines``)."""

from ferroflow.engines.engine import ActionEngine, ParallelActionEngine, SerialActionEngine
from ferroflow.engines.helpers import load, run

__all__ = ["ActionEngine", "ParallelActionEngine", "SerialActionEngine", "load", "run"]
