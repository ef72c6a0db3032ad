"""Persisted records of a workflow: LogBook -> FlowDetail -> AtomDetail (TaskDetail, RetryDetail).

These classes have TaskFlow's fields, defaults and methods, and their ``to_dict`` forms are the
on-disk contract shared with TaskFlow's backends. Two deliberate improvements:

- ``version`` is always written as a string (``(1, 0)`` is stored as ``"1.0"``).
- failures are written as their dict form and always read back as
  :class:`~ferroflow.types.failure.Failure` objects, so ``check()`` still matches by type name.

A model object is **not** saved when it changes; a backend connection saves it.
"""

from __future__ import annotations

import abc
import copy
import datetime
import os
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import Any, Self

from ferroflow import exceptions as exc
from ferroflow import states
from ferroflow.types.failure import Failure

#: Name of the pseudo atom detail holding a flow's ``store`` values (TaskFlow's name, kept in
#: logbooks): the engine's storage, TaskFlow's ``Storage`` and the command line all know it by this.
INJECTOR_NAME = "_TaskFlow_INJECTOR"

__all__ = [
    "ATOM_TYPES",
    "FACTORY_META",
    "INJECTOR_NAME",
    "AtomDetail",
    "FlowDetail",
    "LogBook",
    "RetryDetail",
    "TaskDetail",
    "atom_detail_class",
    "atom_detail_type",
]

#: The key of ``FlowDetail.meta`` holding the factory record (importable name, args, kwargs) that
#: rebuilds the flow on resume (`ferroflow.engines.factories`).
FACTORY_META = "factory"


def _new_uuid() -> str:
    return str(uuidlib.uuid4())


def _utcnow() -> datetime.datetime:
    # Naive UTC, as TaskFlow (oslo timeutils.utcnow) stores it.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _marshal_time(when: datetime.datetime | None) -> dict[str, Any] | None:
    """Datetime -> JSON-friendly dict, in the shape oslo's ``marshall_now`` produces."""
    if not when:
        return None
    marshalled: dict[str, Any] = {
        "day": when.day,
        "month": when.month,
        "year": when.year,
        "hour": when.hour,
        "minute": when.minute,
        "second": when.second,
        "microsecond": when.microsecond,
    }
    if when.tzinfo is not None:
        tzname = when.tzinfo.tzname(when)
        marshalled["tzname"] = "UTC" if tzname in ("UTC+00:00", None) else tzname
    return marshalled


def _unmarshal_time(data: dict[str, Any] | None) -> datetime.datetime | None:
    if not data:
        return None
    when = datetime.datetime(
        year=data["year"],
        month=data["month"],
        day=data["day"],
        hour=data["hour"],
        minute=data["minute"],
        second=min(data["second"], 59),  # datetime has no leap seconds
        microsecond=data["microsecond"],
    )
    tzname = data.get("tzname")
    if tzname:
        tzinfo: datetime.tzinfo
        if tzname in ("UTC", "UTC+00:00"):
            tzinfo = datetime.UTC
        else:
            import zoneinfo  # (rare: not loaded at every start)

            tzinfo = zoneinfo.ZoneInfo(tzname)
        when = when.replace(tzinfo=tzinfo)
    return when


def _identity(value: Any) -> Any:
    return value


def _copier(deep_copy: bool) -> Callable[[Any], Any]:
    return copy.deepcopy if deep_copy else _identity


def _meta_from(data: dict[str, Any]) -> dict[str, Any]:
    # Old schemas allowed a non-dict meta; replace it rather than fail.
    meta = data.get("meta")
    return meta if isinstance(meta, dict) else {}


def _version_string(version: Any) -> str | None:
    """``(1, 0)`` / ``[1, 0]`` / ``'1.0'`` / ``1`` -> ``'1.0'`` / ``'1.0'`` / ``'1.0'`` / ``'1'``."""
    if version is None:
        return None
    if isinstance(version, str):
        return version
    if isinstance(version, (tuple, list)):
        return ".".join(str(part) for part in version)
    return str(version)


def _as_failure(data: Any) -> Failure:
    return data if isinstance(data, Failure) else Failure.from_dict(data)


def _failure_from(data: Any) -> Failure | None:
    return _as_failure(data) if data else None


def _failure_to_dict(failure: Any) -> dict[str, Any] | None:
    if not failure:
        return None
    if isinstance(failure, dict):
        return failure
    return failure.to_dict()


def _copy_failure(failure: Failure | None, deep_copy: bool) -> Failure | None:
    # Failures hold tracebacks, which cannot be deep-copied; Failure.copy() is their deep copy.
    if not failure:
        return None
    return failure.copy() if deep_copy else failure


def _all_none(*values: Any) -> bool:
    return all(value is None for value in values)


def _format_meta(meta: dict[str, Any], indent: int) -> list[str]:
    if not meta:
        return []
    pad = " " * indent
    lines = [f"{pad}- metadata:"]
    for key, value in meta.items():
        if key == "progress" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value * 100.0:0.2f}%"
        lines.append(f"{pad}  + {key} = {value}")
    return lines


def _format_header(obj: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{type(obj).__name__}: '{obj.name}'", f"{pad} - uuid = {obj.uuid}"]
    if hasattr(obj, "state"):
        lines.append(f"{pad} - state = {obj.state}")
    return lines


class LogBook:
    """A named collection of flow details (typically one per job or engine) plus metadata.

    :ivar created_at: when this logbook was created (naive UTC ``datetime``).
    :ivar updated_at: when a flow detail was last added (or ``None``).
    :ivar meta: a dict of user metadata.
    """

    def __init__(self, name: str, uuid: str | None = None) -> None:
        self._uuid = uuid or _new_uuid()
        self._name = name
        self._flowdetails_by_id: dict[str, FlowDetail] = {}
        self.created_at: datetime.datetime | None = _utcnow()
        self.updated_at: datetime.datetime | None = None
        self.meta: dict[str, Any] = {}

    @property
    def uuid(self) -> str:
        """The unique identifier of this logbook."""
        return self._uuid

    @property
    def name(self) -> str:
        """The name of this logbook."""
        return self._name

    def add(self, fd: FlowDetail) -> None:
        """Add (or replace, by uuid) a flow detail; not saved until a backend saves the book."""
        self._flowdetails_by_id[fd.uuid] = fd
        self.updated_at = _utcnow()

    def find(self, flow_uuid: str) -> FlowDetail | None:
        """Return the contained flow detail with ``flow_uuid``, or ``None``."""
        return self._flowdetails_by_id.get(flow_uuid)

    def merge(self, lb: LogBook, deep_copy: bool = False) -> LogBook:
        """Take ``meta``, ``created_at`` and ``updated_at`` from ``lb`` where they differ.

        The name, uuid and contained flow details are left alone. ``deep_copy`` deep-copies what
        is taken instead of sharing it. Returns ``self``.
        """
        if lb is self:
            return self
        copy_fn = _copier(deep_copy)
        if self.meta != lb.meta:
            self.meta = copy_fn(lb.meta)
        if self.created_at != lb.created_at:
            self.created_at = copy_fn(lb.created_at)
        if self.updated_at != lb.updated_at:
            self.updated_at = copy_fn(lb.updated_at)
        return self

    def copy(self, retain_contents: bool = True) -> LogBook:
        """Shallow copy; the flow details are shared (or dropped if not ``retain_contents``)."""
        clone = copy.copy(self)
        clone._flowdetails_by_id = dict(self._flowdetails_by_id) if retain_contents else {}
        clone.meta = dict(self.meta) if self.meta else self.meta
        return clone

    def to_dict(self, marshal_time: bool = False) -> dict[str, Any]:
        """This logbook as a dict (without its flow details); ``marshal_time`` makes times JSON-able."""
        marshal: Callable[[Any], Any] = _marshal_time if marshal_time else _identity
        return {
            "name": self.name,
            "meta": self.meta,
            "uuid": self.uuid,
            "updated_at": marshal(self.updated_at),
            "created_at": marshal(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], unmarshal_time: bool = False) -> Self:
        """Build a logbook from a :meth:`to_dict` form."""
        unmarshal: Callable[[Any], Any] = _unmarshal_time if unmarshal_time else _identity
        book = cls(data["name"], uuid=data["uuid"])
        book.updated_at = unmarshal(data.get("updated_at"))
        book.created_at = unmarshal(data.get("created_at"))
        book.meta = _meta_from(data)
        return book

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """A human-readable multi-line description of this logbook and its contents."""
        pad = " " * (indent + 1)
        lines = [f"{' ' * indent}{type(self).__name__}: '{self.name}'", f"{pad}- uuid = {self.uuid}"]
        lines.extend(_format_meta(self.meta, indent + 1))
        if self.created_at is not None:
            lines.append(f"{pad}- created_at = {self.created_at.isoformat()}")
        if self.updated_at is not None:
            lines.append(f"{pad}- updated_at = {self.updated_at.isoformat()}")
        lines.extend(fd.pformat(indent=indent + 1, linesep=linesep) for fd in self)
        return linesep.join(lines)

    def __iter__(self) -> Iterator[FlowDetail]:
        return iter(list(self._flowdetails_by_id.values()))

    def __len__(self) -> int:
        return len(self._flowdetails_by_id)

    def __repr__(self) -> str:
        return f"<LogBook {self.name!r} uuid={self.uuid} flows={len(self)}>"


class FlowDetail:
    """The persisted state of one flow: its state, metadata and one atom detail per atom.

    :ivar state: the flow's state name (``None`` until the engine first sets it).
    :ivar meta: a dict of metadata (``factory``, ``store``, ...).
    """

    def __init__(self, name: str, uuid: str | None = None) -> None:
        self._uuid = uuid or _new_uuid()
        self._name = name
        self._atomdetails_by_id: dict[str, AtomDetail] = {}
        self.state: str | None = None
        self.meta: dict[str, Any] = {}

    @property
    def uuid(self) -> str:
        """The unique identifier of this flow detail."""
        return self._uuid

    @property
    def name(self) -> str:
        """The name of this flow detail (usually the flow's name)."""
        return self._name

    def add(self, ad: AtomDetail) -> None:
        """Add (or replace, by uuid) an atom detail; not saved until a backend saves it."""
        self._atomdetails_by_id[ad.uuid] = ad

    def find(self, ad_uuid: str) -> AtomDetail | None:
        """Return the contained atom detail with ``ad_uuid``, or ``None``."""
        return self._atomdetails_by_id.get(ad_uuid)

    def update(self, fd: FlowDetail) -> FlowDetail:
        """Become ``fd``: take its state, meta and atom details by reference. Returns ``self``."""
        if fd is not self:
            self._atomdetails_by_id = fd._atomdetails_by_id
            self.state = fd.state
            self.meta = fd.meta
        return self

    def merge(self, fd: FlowDetail, deep_copy: bool = False) -> FlowDetail:
        """Take ``meta`` and ``state`` from ``fd`` where they differ (atom details are not merged)."""
        if fd is self:
            return self
        if self.meta != fd.meta:
            self.meta = _copier(deep_copy)(fd.meta)
        if self.state != fd.state:
            self.state = fd.state
        return self

    def copy(self, retain_contents: bool = True) -> FlowDetail:
        """Shallow copy; the atom details are shared (or dropped if not ``retain_contents``)."""
        clone = copy.copy(self)
        clone._atomdetails_by_id = dict(self._atomdetails_by_id) if retain_contents else {}
        clone.meta = dict(self.meta) if self.meta else self.meta
        return clone

    def to_dict(self) -> dict[str, Any]:
        """This flow detail as a dict (without its atom details)."""
        return {"name": self.name, "meta": self.meta, "state": self.state, "uuid": self.uuid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build a flow detail from a :meth:`to_dict` form."""
        fd = cls(data["name"], data["uuid"])
        fd.state = data.get("state")
        fd.meta = _meta_from(data)
        return fd

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """A human-readable multi-line description of this flow detail and its atoms."""
        lines = _format_header(self, indent)
        lines.extend(_format_meta(self.meta, indent + 1))
        lines.extend(ad.pformat(indent=indent + 1, linesep=linesep) for ad in self)
        return linesep.join(lines)

    def __iter__(self) -> Iterator[AtomDetail]:
        return iter(list(self._atomdetails_by_id.values()))

    def __len__(self) -> int:
        return len(self._atomdetails_by_id)

    def __repr__(self) -> str:
        return f"<FlowDetail {self.name!r} uuid={self.uuid} state={self.state} atoms={len(self)}>"


class AtomDetail(abc.ABC):
    """The persisted state of one atom (abstract; see :class:`TaskDetail` and :class:`RetryDetail`).

    :ivar state: the atom's state name (``None`` until the engine first sets it).
    :ivar intention: what the engine plans for the atom (``EXECUTE``, ``REVERT``, ``RETRY``, ``IGNORE``).
    :ivar results: what ``execute`` produced.
    :ivar failure: the :class:`~ferroflow.types.failure.Failure` of ``execute``, or ``None``.
    :ivar revert_results: what ``revert`` produced.
    :ivar revert_failure: the failure of ``revert``, or ``None``.
    :ivar meta: a dict of metadata (``progress``, ``progress_details``, ``injected``, ...).
    :ivar version: the atom's version (written as a string such as ``"1.0"``).
    """

    __slots__ = (
        "_name",
        "_uuid",
        "failure",
        "intention",
        "meta",
        "results",
        "revert_failure",
        "revert_results",
        "state",
        "version",
    )

    def __init__(self, name: str, uuid: str | None = None) -> None:
        self._uuid = uuid or _new_uuid()
        self._name = name
        self.state: str | None = None
        self.intention: str = states.EXECUTE
        self.results: Any = None
        self.failure: Failure | None = None
        self.revert_results: Any = None
        self.revert_failure: Failure | None = None
        self.meta: dict[str, Any] = {}
        self.version: Any = None

    @property
    def uuid(self) -> str:
        """The unique identifier of this atom detail."""
        return self._uuid

    @property
    def name(self) -> str:
        """The name of the atom this detail belongs to."""
        return self._name

    @property
    def last_results(self) -> Any:
        """The most recent result (for a task, simply ``results``)."""
        return self.results

    def update(self, ad: AtomDetail) -> AtomDetail:
        """Become ``ad``: take every public attribute by reference. Returns ``self``."""
        if ad is not self:
            self.state = ad.state
            self.intention = ad.intention
            self.meta = ad.meta
            self.failure = ad.failure
            self.results = ad.results
            self.revert_results = ad.revert_results
            self.revert_failure = ad.revert_failure
            self.version = ad.version
        return self

    @abc.abstractmethod
    def merge(self, other: AtomDetail, deep_copy: bool = False) -> AtomDetail:
        """Take ``other``'s state; subclasses also take its results. Returns ``self``.

        State and intention are always taken; failures, meta and version where they differ
        (``deep_copy`` copies them instead of sharing them).
        """
        copy_fn = _copier(deep_copy)
        self.state = other.state
        self.intention = other.intention
        if self.failure != other.failure:
            self.failure = _copy_failure(other.failure, deep_copy)
        if self.revert_failure != other.revert_failure:
            self.revert_failure = _copy_failure(other.revert_failure, deep_copy)
        if self.meta != other.meta:
            self.meta = copy_fn(other.meta)
        if self.version != other.version:
            self.version = copy_fn(other.version)
        return self

    @abc.abstractmethod
    def put(self, state: str, result: Any) -> bool:
        """Record ``result`` obtained in ``state``; returns whether anything changed."""

    @abc.abstractmethod
    def reset(self, state: str) -> None:
        """Forget results and failures, set ``state`` and the ``EXECUTE`` intention."""

    @abc.abstractmethod
    def copy(self) -> AtomDetail:
        """A shallow copy (results are shared, meta is copied)."""

    def _copy_common(self) -> Self:
        clone = copy.copy(self)
        if self.meta:
            clone.meta = dict(self.meta)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """This atom detail as a dict; failures become their dict form, the version a string."""
        return {
            "failure": _failure_to_dict(self.failure),
            "revert_failure": _failure_to_dict(self.revert_failure),
            "meta": self.meta,
            "name": self.name,
            "results": self.results,
            "revert_results": self.revert_results,
            "state": self.state,
            "version": _version_string(self.version),
            "intention": self.intention,
            "uuid": self.uuid,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build an atom detail from a :meth:`to_dict` form; failures come back as Failure objects."""
        ad = cls(data["name"], data["uuid"])
        ad.state = data.get("state")
        ad.intention = data.get("intention") or states.EXECUTE
        ad.results = data.get("results")
        ad.revert_results = data.get("revert_results")
        ad.version = _version_string(data.get("version"))
        ad.meta = _meta_from(data)
        ad.failure = _failure_from(data.get("failure"))
        ad.revert_failure = _failure_from(data.get("revert_failure"))
        return ad

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """A human-readable multi-line description of this atom detail."""
        pad = " " * (indent + 1)
        lines = _format_header(self, indent)
        lines.append(f"{pad}- version = {_version_string(self.version)}")
        lines.append(f"{pad}- results = {self.results}")
        lines.append(f"{pad}- failure = {bool(self.failure)}")
        lines.extend(_format_meta(self.meta, indent + 1))
        return linesep.join(lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} uuid={self.uuid} state={self.state}>"


class TaskDetail(AtomDetail):
    """The atom detail of a :class:`~ferroflow.task.Task`."""

    __slots__ = ()

    def reset(self, state: str) -> None:
        """Clear results and failures, set ``state`` and the ``EXECUTE`` intention."""
        self.results = None
        self.failure = None
        self.revert_results = None
        self.revert_failure = None
        self.state = state
        self.intention = states.EXECUTE

    def put(self, state: str, result: Any) -> bool:
        """Record ``result`` (a value or a Failure) obtained in ``state``; returns whether it changed.

        ``FAILURE``/``REVERT_FAILURE`` store the failure and clear what it supersedes; ``SUCCESS``
        stores the result and clears failures; ``REVERTED`` stores the revert result.
        """
        altered = state != self.state
        self.state = state
        if state == states.REVERT_FAILURE:
            if self.revert_failure != result:
                self.revert_failure = result
                altered = True
            if not _all_none(self.results, self.revert_results):
                self.results = self.revert_results = None
                altered = True
        elif state == states.FAILURE:
            if self.failure != result:
                self.failure = result
                altered = True
            if not _all_none(self.results, self.revert_results, self.revert_failure):
                self.results = self.revert_results = self.revert_failure = None
                altered = True
        elif state == states.SUCCESS:
            if not _all_none(self.revert_results, self.revert_failure, self.failure):
                self.revert_results = self.revert_failure = self.failure = None
                altered = True
            # User results have no reliable equality, so anything but the same object is a change.
            if result is not self.results:
                self.results = result
                altered = True
        elif state == states.REVERTED:
            if self.revert_failure is not None:
                self.revert_failure = None
                altered = True
            if result is not self.revert_results:
                self.revert_results = result
                altered = True
        return altered

    def merge(self, other: AtomDetail, deep_copy: bool = False) -> TaskDetail:
        """Take ``other``'s state (see :meth:`AtomDetail.merge`) and its results by reference."""
        if not isinstance(other, TaskDetail):
            raise exc.NotImplementedError("Can only merge with other task details")
        if other is self:
            return self
        super().merge(other, deep_copy=deep_copy)
        # Results are shared, never copied: user objects may not be copyable.
        self.results = other.results
        self.revert_results = other.revert_results
        return self

    def copy(self) -> TaskDetail:
        """A shallow copy: results are shared, meta is copied."""
        return self._copy_common()


class RetryDetail(AtomDetail):
    """The atom detail of a :class:`~ferroflow.retry.Retry`.

    ``results`` is the retry's history: a list of ``(value, {atom_name: Failure})``, one entry per
    attempt, the failures being those of the atoms it controlled in that attempt.
    """

    __slots__ = ()

    def __init__(self, name: str, uuid: str | None = None) -> None:
        super().__init__(name, uuid)
        self.results: list[tuple[Any, dict[str, Failure]]] = []

    @property
    def last_results(self) -> Any:
        """The value of the latest attempt; :class:`~ferroflow.exceptions.NotFound` if none."""
        try:
            return self.results[-1][0]
        except IndexError:
            raise exc.NotFound("Last results not found") from None

    @property
    def last_failures(self) -> dict[str, Failure]:
        """The atom failures of the latest attempt; :class:`~ferroflow.exceptions.NotFound` if none."""
        try:
            return self.results[-1][1]
        except IndexError:
            raise exc.NotFound("Last failures not found") from None

    def reset(self, state: str) -> None:
        """Clear the history and failures, set ``state`` and the ``EXECUTE`` intention."""
        self.results = []
        self.revert_results = None
        self.failure = None
        self.revert_failure = None
        self.state = state
        self.intention = states.EXECUTE

    def put(self, state: str, result: Any) -> bool:
        """Record ``result`` obtained in ``state``; ``SUCCESS`` appends to the history (never cleared)."""
        altered = state != self.state
        self.state = state
        if state == states.REVERT_FAILURE:
            if result != self.revert_failure:
                self.revert_failure = result
                altered = True
            if self.revert_results is not None:
                self.revert_results = None
                altered = True
        elif state == states.FAILURE:
            if result != self.failure:
                self.failure = result
                altered = True
            if not _all_none(self.revert_results, self.revert_failure):
                self.revert_results = self.revert_failure = None
                altered = True
        elif state == states.SUCCESS:
            self.failure = self.revert_failure = self.revert_results = None
            self.results.append((result, {}))
            altered = True
        elif state == states.REVERTED:
            if result is not self.revert_results:
                self.revert_results = result
                altered = True
            if self.revert_failure is not None:
                self.revert_failure = None
                altered = True
        return altered

    @staticmethod
    def _copy_history(
        history: list[tuple[Any, dict[str, Failure]]], deep_copy: bool
    ) -> list[tuple[Any, dict[str, Failure]]]:
        # Values are shared; each attempt's failure dict is new (failures copied on deep_copy).
        return [
            (value, {name: f.copy() if deep_copy else f for name, f in failures.items()}) for value, failures in history
        ]

    def merge(self, other: AtomDetail, deep_copy: bool = False) -> RetryDetail:
        """Take ``other``'s state (see :meth:`AtomDetail.merge`) and a copy of its history."""
        if not isinstance(other, RetryDetail):
            raise exc.NotImplementedError("Can only merge with other retry details")
        if other is self:
            return self
        super().merge(other, deep_copy=deep_copy)
        self.results = self._copy_history(other.results, deep_copy)
        return self

    def copy(self) -> RetryDetail:
        """A shallow copy with its own history list (values shared)."""
        clone = self._copy_common()
        clone.results = self._copy_history(self.results, False)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`AtomDetail.to_dict`, with every failure in the history in dict form."""
        data = super().to_dict()
        data["results"] = [
            (value, {name: _failure_to_dict(f) for name, f in failures.items()})
            for value, failures in self.results or ()
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """As :meth:`AtomDetail.from_dict`; history entries become ``(value, {name: Failure})``."""
        ad = super().from_dict(data)
        ad.results = [
            (value, {name: _as_failure(f) for name, f in (failures or {}).items()})
            for value, failures in ad.results or ()
        ]
        return ad


_TYPE_NAMES: dict[type[AtomDetail], str] = {RetryDetail: "RETRY_DETAIL", TaskDetail: "TASK_DETAIL"}
_CLASSES: dict[str, type[AtomDetail]] = {name: cls for cls, name in _TYPE_NAMES.items()}
#: The type tags stored next to atom details.
ATOM_TYPES: list[str] = list(_CLASSES)


def atom_detail_class(atom_type: str) -> type[AtomDetail]:
    """``'TASK_DETAIL'`` -> :class:`TaskDetail`, ``'RETRY_DETAIL'`` -> :class:`RetryDetail`."""
    try:
        return _CLASSES[atom_type]
    except KeyError:
        raise TypeError(f"Unknown atom type '{atom_type}'") from None


def atom_detail_type(atom_detail: AtomDetail) -> str:
    """The type tag (``'TASK_DETAIL'`` / ``'RETRY_DETAIL'``) of an atom detail."""
    try:
        return _TYPE_NAMES[type(atom_detail)]
    except KeyError:
        raise TypeError(f"Unknown atom '{atom_detail}' ({type(atom_detail)})") from None
