"""Argument plans: how each atom's ``execute``/``revert`` keyword arguments are found.

Built once per atom from the compiled providers (Rust resolved *who* provides each name with
TaskFlow's visibility rules); at run time a plan is a short tuple walked without any scope lookup.
Precedence, as in TaskFlow: atom ``inject`` → flow-level ``store`` → the visible provider.
"""

from __future__ import annotations

from typing import Any

from ferroflow import exceptions

#: One argument: ``(arg, storage name, provider atom index or None, optional, key in the
#: provider's result or None for the whole result)``. Plain tuples: plans are built per atom.
ArgSource = tuple[str, str, "int | None", bool, Any]


def build_plan(
    rebind: dict[str, str],
    optional: Any,
    names: list[str],
    providers: list[int | None],
    atoms: list[Any],
) -> tuple[ArgSource, ...]:
    """Pairs each ``(arg, storage name)`` of an atom with the provider Rust found for the name
    (``providers`` is aligned with ``names``) and the key of that name in the provider's result."""
    by_name = dict(zip(names, providers, strict=False))
    optional_names = frozenset(optional)
    plan = []
    for arg, name in rebind.items():
        provider = by_name.get(name)
        key = None if provider is None else atoms[provider].save_as.get(name)
        plan.append((arg, name, provider, name in optional_names or arg in optional_names, key))
    return tuple(plan)


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
