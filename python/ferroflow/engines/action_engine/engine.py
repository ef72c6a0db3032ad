"""The engine classes at TaskFlow's path (``taskflow.engines.action_engine.engine``).

They are defined in `ferroflow.engines.engine` and name this module as their home, so their repr,
pickling and ``reflection`` show the path TaskFlow programs know.
"""

from ferroflow.engines.engine import ActionEngine, ParallelActionEngine, SerialActionEngine

__all__ = ["ActionEngine", "ParallelActionEngine", "SerialActionEngine"]
