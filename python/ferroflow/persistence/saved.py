"""The saved atom details of one flow, as columns: what a prepare reads, without a model per row.

A backend that can read its rows as columns (SQLite: `SQLiteConnection.saved_atoms`) gives the
identity columns decoded and the payloads still as JSON text; the engine decodes only the payloads
of the atoms it restores, and asks for a full `AtomDetail` model only on the rare paths that need
one (failures, retries, migrations, version policies, orphans). A backend that returns models is
wrapped by `SavedAtoms.from_details`, so prepare reads both the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ferroflow import exceptions
from ferroflow.persistence import columns, models


def damaged(what: str, field: str, problem: str) -> exceptions.StorageFailure:
    """The error for a saved row that cannot be read: ``what`` names the detail (``"atom detail
    'x' (uuid)"``), ``field`` the column, ``problem`` what is wrong with it."""
    return exceptions.StorageFailure(
        f"{what}: its {field!r} field {problem}; the store is damaged (repair or remove that row)"
    )


def decode_json(text: str | None, what: str, field: str) -> Any:
    """A saved JSON column, decoded (``None`` for SQL NULL); StorageFailure naming ``what`` and
    ``field`` when it is not JSON (or nests deeper than Python can decode)."""
    if text is None or text == "null":
        return None
    try:
        return columns.decode(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise damaged(what, field, f"is not valid JSON ({type(e).__name__}: {e})") from None


def decode_meta(text: str | None, what: str) -> dict[str, Any]:
    """A saved ``meta`` column: a JSON object (``{}`` for none); StorageFailure naming ``what``
    otherwise."""
    if text is None or text == "{}":
        return {}
    meta = decode_json(text, what, "meta")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise damaged(what, "meta", f"holds a JSON {type(meta).__name__}, not an object")
    return meta


class SavedAtoms:
    """Parallel columns over a flow's saved atom details, in the order they were first saved.

    ``uuids``, ``names``, ``retries`` (is a retry's detail), ``states``, ``intentions`` and
    ``versions`` are always there. Payload columns (``results``, ``failures``, ``revert_results``,
    ``revert_failures``, ``metas``: JSON text, ``"null"`` for none) are there when the rows came
    from a store (`raw` is true); then `detail` builds a model with ``make_detail(self, position)``
    (given the columns rather than closing over them: no reference cycle).
    """

    __slots__ = (
        "_cache",
        "_details",
        "_make_detail",
        "_read_columns",
        "failures",
        "intentions",
        "metas",
        "names",
        "position_of",
        "results",
        "retries",
        "revert_failures",
        "revert_results",
        "states",
        "uuid_of",
        "uuids",
        "versions",
    )

    _COLUMNS = frozenset(
        (
            "uuids",
            "names",
            "retries",
            "states",
            "intentions",
            "versions",
            "results",
            "failures",
            "revert_results",
            "revert_failures",
            "metas",
        )
    )

    def __init__(
        self,
        columns: Sequence[list[Any]] | None,
        make_detail: Callable[[SavedAtoms, int], models.AtomDetail] | None = None,
        details: list[models.AtomDetail] | None = None,
        read_columns: Callable[[], Sequence[list[Any]]] | None = None,
    ) -> None:
        """``columns`` as described above; or ``None`` and ``read_columns``, which reads them when
        one is first used (an engine's prepare that restores from the plan's own read never does).
        ``make_detail(self, position)`` reads one detail's model; `uuid_of` and `position_of`
        (settable) give a position's uuid and a name's position without reading the columns."""
        self._make_detail = make_detail
        self._details = details
        self._cache: dict[int, models.AtomDetail] = {}
        self._read_columns = read_columns
        self.uuid_of: Callable[[int], str | None] | None = None
        self.position_of: Callable[[str], int | None] | None = None
        if columns is not None:
            self._set_columns(columns)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a column not read yet (slots that are set never come here).
        read = self._read_columns if name in SavedAtoms._COLUMNS else None
        if read is None:
            raise AttributeError(name)
        self._read_columns = None
        self._set_columns(read())
        return getattr(self, name)

    def _set_columns(self, columns: Sequence[list[Any]]) -> None:
        (
            self.uuids,
            self.names,
            self.retries,
            self.states,
            self.intentions,
            self.versions,
            self.results,
            self.failures,
            self.revert_results,
            self.revert_failures,
            self.metas,
        ) = columns

    @classmethod
    def from_details(cls, details: list[models.AtomDetail]) -> SavedAtoms:
        """Columns over models a backend returned (payload columns are absent)."""
        none: list[Any] = []
        columns = (
            [ad.uuid for ad in details],
            [ad.name for ad in details],
            [isinstance(ad, models.RetryDetail) for ad in details],
            [ad.state for ad in details],
            [ad.intention for ad in details],
            [ad.version for ad in details],
            none,
            none,
            none,
            none,
            none,
        )
        return cls(columns, details=details)

    @property
    def raw(self) -> bool:
        """Whether the payload columns are there (rows read from a store)."""
        return self._details is None

    def __len__(self) -> int:
        return len(self.uuids)

    def position(self, name: str) -> int | None:
        """The position of the detail named ``name`` (the first one), or None."""
        if self.position_of is not None:
            return self.position_of(name)
        try:
            return self.names.index(name)
        except ValueError:
            return None

    def detail(self, position: int) -> models.AtomDetail:
        """The model of one saved detail (made once, on first use, from a store's row)."""
        if self._details is not None:
            return self._details[position]
        ad = self._cache.get(position)
        if ad is None:
            assert self._make_detail is not None
            ad = self._cache[position] = self._make_detail(self, position)
        return ad

    def uuid(self, position: int) -> str:
        """The uuid of one saved detail (from `uuid_of` when set: the columns stay unread)."""
        uuid = self.uuid_of(position) if self.uuid_of is not None else None
        return uuid if uuid is not None else self.uuids[position]

    def details(self) -> list[models.AtomDetail]:
        """Models of every saved detail (migrations work on models)."""
        if self._details is not None:
            return self._details
        return [self.detail(position) for position in range(len(self))]
