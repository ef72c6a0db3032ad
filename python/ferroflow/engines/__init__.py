"""Engines: load a flow, run it, resume it (TaskFlow's ``taskflow.engines``)."""

from ferroflow.engines.engine import ActionEngine, ParallelActionEngine, SerialActionEngine
from ferroflow.engines.factories import flow_from_detail, load_from_detail, load_from_factory, save_factory_details
from ferroflow.engines.helpers import load, run
from ferroflow.engines.many import FlowResult, Resumer, resume_many

__all__ = [
    "ActionEngine",
    "FlowResult",
    "ParallelActionEngine",
    "Resumer",
    "SerialActionEngine",
    "flow_from_detail",
    "load",
    "load_from_detail",
    "load_from_factory",
    "resume_many",
    "run",
    "save_factory_details",
]
