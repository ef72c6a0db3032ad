"""ferroflow: durable, resumable workflows with a Rust core, speaking OpenStack TaskFlow's API.

A TaskFlow program moves over by replacing ``taskflow`` with ``ferroflow`` in its imports: the public
modules (``ferroflow.task``, ``ferroflow.retry``, ``ferroflow.patterns.*``, ``ferroflow.engines``,
``ferroflow.states``, ``ferroflow.exceptions``, ...) keep TaskFlow's names and behaviour.

Importing this package does not load the compiled core (``ferroflow._core``); the modules that run flows
import it themselves.
"""
