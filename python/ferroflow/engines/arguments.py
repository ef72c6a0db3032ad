"""Arguments: picking a named value out of a provider's result (its ``save_as`` key)."""

from __future__ import annotations

from typing import Any

from ferroflow import exceptions


def extract(result: Any, index: Any, provider_name: str, name: str) -> Any:
    """Picks ``name`` out of a provider's result using its ``save_as`` index/key."""
    if index is None:
        return result
    try:
        return result[index]
    except (LookupError, TypeError) as exc:
        raise exceptions.NotFound(
            f"Unable to find result {name!r}: the result of atom {provider_name!r} has no item {index!r}"
        ) from exc
