"""How listeners write atom and flow metadata (``meta`` of the atom and flow details).

Listeners go through the engine's storage — ``Storage.update_atom_metadata(atom_name, update_with)`` and
``Storage.update_flow_metadata(update_with)``, as in TaskFlow — which merge the update into the detail's
``meta`` and persist it when a backend is attached. A listener must never break the run it observes, so a
`~ferroflow.exceptions.StorageFailure` is logged as a warning (with the caller's message) and swallowed.
"""

from __future__ import annotations

import logging
from typing import Any

from ferroflow import exceptions


def update_atom_meta(
    engine: Any, atom_name: str, update: dict[str, Any], log: logging.Logger, message: str, *args: Any
) -> bool:
    """Merges ``update`` into the metadata of atom ``atom_name``; on a storage failure logs
    ``message % args`` as a warning on ``log`` and returns False."""
    try:
        engine.storage.update_atom_metadata(atom_name, update)
    except exceptions.StorageFailure:
        log.warning(message, *args, exc_info=True)
        return False
    return True


def update_flow_meta(engine: Any, update: dict[str, Any], log: logging.Logger, message: str, *args: Any) -> bool:
    """Merges ``update`` into the flow detail's metadata; on a storage failure logs ``message % args``
    as a warning on ``log`` and returns False."""
    try:
        engine.storage.update_flow_metadata(update)
    except exceptions.StorageFailure:
        log.warning(message, *args, exc_info=True)
        return False
    return True
