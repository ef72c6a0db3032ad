"""The models' column encoding shared by the SQL backends (``sqlite``, ``postgresql``).

Rows are tuples in the stores' column order: payloads (results, meta, failures in their dict
form, a retry's history as ``[[value, {atom: failure dict}], ...]``) are JSON text, versions
strings, timestamps UTC seconds. Reading rows back, and what a backend adds to a transition (its
own columns, its parameter style), stay in each backend.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ferroflow import codec, states
from ferroflow import exceptions as exc
from ferroflow.persistence import models

if TYPE_CHECKING:
    from ferroflow._core import AtomRow, FlowRow
    from ferroflow._core import LogBookRow as BookRow

__all__ = [
    "UPDATABLE_FIELDS",
    "atom_row",
    "book_row",
    "column",
    "datetime_of",
    "dumps",
    "dumps_failure",
    "encode_change",
    "encode_transition",
    "flow_row",
    "history",
    "loads",
    "missing",
    "same_atom",
    "same_book",
    "same_flow",
    "timestamp",
    "unsaveable",
    "version",
]

#: Columns a backend's ``apply()`` can update in place.
UPDATABLE_FIELDS = frozenset({"state", "intention", "results", "failure", "revert_results", "revert_failure", "meta"})

_EPOCH = datetime.datetime(1970, 1, 1)
_SECOND = datetime.timedelta(seconds=1)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# For failures: an exception's args may be any object; those JSON cannot hold are kept as repr().
_encode_failure = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode
_scan = json.JSONDecoder().scan_once
_decode_whole = json.JSONDecoder().decode


def decode(text: str) -> Any:
    """``json.loads(text)``, faster on what ferroflow writes: the decoder's scanner is called
    directly (no whitespace passes around it, half the cost of a small value). Text it does not
    take whole (whitespace around the value, extra data, an error) goes through the full decoder,
    which decides, and raises what ``json.loads`` raises."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _decode_whole(text)
    return value if end == len(text) else _decode_whole(text)


def dumps(value: Any, field: str) -> str:
    """JSON text of ``value``; a TypeError naming ``field`` and the offending type if it has none."""
    if value is None:
        return "null"
    if not value and type(value) is dict:
        return "{}"
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        codec.JSON.dumps(value)  # raises the descriptive error
    except TypeError as e:
        raise TypeError(f"its {field} cannot be saved as JSON: {e}") from None
    raise AssertionError("unreachable: the json codec accepted what json refused")


def dumps_failure(failure: Any) -> str | None:
    """JSON text of a failure's dict form; never fails because of the exception's args."""
    if not failure:
        return None
    if isinstance(failure, dict):
        return _encode_failure(failure)
    try:
        return _encode_failure(failure.to_dict())
    except (TypeError, ValueError):  # args JSON cannot hold even as repr (non-string dict keys...)
        return _encode_failure(failure.to_dict(include_args=False))


def loads(text: str | None) -> Any:
    if text is None or text == "null":
        return None
    if text == "{}":
        return {}
    return decode(text)


def timestamp(when: datetime.datetime | None) -> float | None:
    """UTC seconds of ``when`` (a naive one is taken as UTC)."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC).replace(tzinfo=None)
    return (when - _EPOCH) / _SECOND


def datetime_of(seconds: float | None) -> datetime.datetime | None:
    """The naive UTC datetime of a :func:`timestamp`."""
    return None if seconds is None else _EPOCH + datetime.timedelta(seconds=seconds)


def unsaveable(kind: str, name: str, uuid: str, error: TypeError) -> TypeError:
    return TypeError(f"{kind} '{name}' ({uuid}): {error}")


def missing(what: str, uuid: str) -> exc.NotFound:
    # The wording of the other backends (and TaskFlow's).
    return exc.NotFound(f"No {what} found with uuid '{uuid}'")


def version(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple | list):
        return ".".join(str(part) for part in value)
    return str(value)


def history(value: Any) -> list[Any]:
    """A retry's history with its failures in (JSON-safe) dict form."""
    return [
        (result, {name: loads(dumps_failure(failure)) for name, failure in failures.items()})
        for result, failures in value or ()
    ]


def book_row(book: models.LogBook) -> BookRow:
    created_at = timestamp(book.created_at)
    try:
        meta = dumps(book.meta, "meta")
    except TypeError as e:
        raise unsaveable("logbook", book.name, book.uuid, e) from None
    return (book.uuid, book.name, meta, time.time() if created_at is None else created_at, timestamp(book.updated_at))


def flow_row(fd: models.FlowDetail, book_uuid: str, now: float) -> FlowRow:
    try:
        meta = dumps(fd.meta, "meta")
    except TypeError as e:
        raise unsaveable("flow detail", fd.name, fd.uuid, e) from None
    return (fd.uuid, book_uuid, fd.name, fd.state, meta, now, now)


def atom_row(ad: models.AtomDetail, flow_uuid: str, now: float) -> AtomRow:
    try:
        results = history(ad.results) if isinstance(ad, models.RetryDetail) else ad.results
        return (
            ad.uuid,
            flow_uuid,
            ad.name,
            models.atom_detail_type(ad),
            ad.state,
            ad.intention or states.EXECUTE,
            dumps(results, "results"),
            dumps_failure(ad.failure),
            dumps(ad.revert_results, "revert results"),
            dumps_failure(ad.revert_failure),
            version(ad.version),
            dumps(ad.meta, "meta"),
            now,
            now,
        )
    except TypeError as e:
        raise unsaveable("atom detail", ad.name, ad.uuid, e) from None


# A row is rewritten only when its content (every field but the uuid and the timestamps) changed.


def same_book(row: BookRow, old: BookRow) -> bool:
    return row[1:] == old[1:]  # a book's timestamps are content


def same_flow(row: FlowRow, old: FlowRow) -> bool:
    return row[1:5] == old[1:5]


def same_atom(row: AtomRow, old: AtomRow) -> bool:
    return row[1:12] == old[1:12]


def column(field: str, value: Any) -> Any:
    """One column of a transition, encoded (``history`` is a retry's results, decoded form)."""
    if field == "state" or field == "intention":
        return value
    if field == "results" or field == "revert_results":
        return dumps(value, field.replace("_", " "))
    if field == "history":
        return dumps(history(value), "results")
    if field == "failure" or field == "revert_failure":
        return dumps_failure(value)
    return value if isinstance(value, str) else dumps(value, "meta")  # meta: a dict or its JSON text


def encode_transition(ad: models.AtomDetail, fields: Iterable[str], change: dict[str, Any]) -> dict[str, Any]:
    """Adds to ``change`` (the atom's ``uuid`` and the backend's own columns) the columns writing
    ``fields`` of a model; returns it."""
    try:
        for field in fields:
            if field not in UPDATABLE_FIELDS:
                known = ", ".join(sorted(UPDATABLE_FIELDS))
                raise ValueError(f"apply() cannot update {field!r}; updatable fields: {known}")
            value = getattr(ad, field)
            if value is None and (field == "state" or field == "intention"):
                raise ValueError(f"atom detail '{ad.name}' ({ad.uuid}): apply() cannot clear the {field}")
            retry_results = field == "results" and isinstance(ad, models.RetryDetail)
            change[field] = column("history" if retry_results else field, value)
    except TypeError as e:
        raise unsaveable("atom detail", ad.name, ad.uuid, e) from None
    return change


def encode_change(change: Mapping[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Adds to ``row`` (the atom's ``uuid`` and the backend's own columns) an engine's change of
    one atom row (decoded values, keyed by field; ``history`` is a retry's results), encoded;
    returns it."""
    try:
        for field, value in change.items():
            if field == "history":
                row["results"] = column(field, value)
            elif field in UPDATABLE_FIELDS:
                row[field] = column(field, value)
            elif field != "uuid":
                raise ValueError(f"apply() cannot change {field!r} of atom detail {change['uuid']}")
    except TypeError as e:
        raise unsaveable("atom detail", change["uuid"], change["uuid"], e) from None
    return row
