"""Conductors (TaskFlow's ``taskflow.conductors``): claim jobs from a jobboard and run their flows.

``ferroflow.conductors.backends.fetch('blocking' | 'nonblocking', name, board, persistence=...,
engine=..., engine_options=..., wait_timeout=...)``; see `ferroflow.conductors.executor`.
"""
