"""Argument plans: how each atom's ``execute``/``revert`` keyword arguments are found.

Built once per atom from the compiled providers (Rust resolved *who* provides each name with
TaskFlow's visibility rules); at run time a plan is a short list walked without any lookup of
scopes. Precedence, as in TaskFlow: atom ``inject`` → flow-level ``store`` → the visible provider.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ferroflow import exceptions

_MISSING = object()


class ArgSource(NamedTuple):
    """Where one argument comes from."""

    arg: str
    name: str  #: storage name (after rebind)
    provider: int | None  #: atom index of the provider, or None
    optional: bool


def build_plan(
    rebind: dict[str, str],
    optional: set[str] | frozenset[str],
    names: list[str],
    providers: list[int | None],
) -> tuple[ArgSource, ...]:
    """Pairs each ``(arg, storage name)`` of an atom with the provider Rust found for the name."""
    by_name = dict(zip(names, providers, strict=False))
    return tuple(
        ArgSource(arg, name, by_name.get(name), name in optional or arg in optional)
        for arg, name in rebind.items()
    )


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
