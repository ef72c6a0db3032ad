"""An immutable, serializable record of an exception (``taskflow.types.failure.Failure``).

A failure captured in this process keeps the exception object (``exc_info``) and re-raises it as itself.
Its dict form (:meth:`Failure.to_dict`, version 1) is the persistence contract shared with TaskFlow:
exception type names (fully qualified, MRO order, up to ``Exception``; builtins unqualified), message,
traceback text, constructor args and chained causes. A failure rebuilt from that form has no exception
object: :meth:`Failure.reraise` raises :class:`~ferroflow.exceptions.WrappedFailure` instead, while
:meth:`Failure.check` still matches by type name.

Difference from TaskFlow: :meth:`Failure.check` treats ``taskflow.<x>`` and ``ferroflow.<x>`` type names as
the same type, so failures saved by TaskFlow (``taskflow.exceptions.NotFound``) match ferroflow's exception
classes after migration.
"""

from __future__ import annotations

import copy as copy_mod
import os
import sys
import traceback as traceback_mod
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from ferroflow import exceptions as exc

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]

_BUILTIN_MODULES = ("builtins", "__builtin__", "__builtins__", "exceptions")
_MODULE_ALIASES = (("ferroflow.", "taskflow."), ("taskflow.", "ferroflow."))


def _class_name(cls: type) -> str:
    """``module.Name``, or just ``Name`` for builtins (TaskFlow's naming of exception types)."""
    module = getattr(cls, "__module__", None)
    if module is None or module in _BUILTIN_MODULES:
        return cls.__name__
    return f"{module}.{cls.__name__}"


def _exception_type_names(exc_type: Any) -> tuple[str, ...]:
    if not isinstance(exc_type, type):
        exc_type = type(exc_type)
    return tuple(_class_name(cls) for cls in exc_type.mro() if issubclass(cls, Exception))


def _name_variants(name: Any) -> tuple[Any, ...]:
    if not isinstance(name, str):
        return (name,)
    for prefix, alias in _MODULE_ALIASES:
        if name.startswith(prefix):
            return (name, alias + name[len(prefix) :])
    return (name,)


def _copy_exc_info(exc_info: ExcInfo | None) -> ExcInfo | None:
    if exc_info is None:
        return None
    exc_type, exc_value, tb = exc_info
    return (exc_type, copy_mod.copy(exc_value), tb)


def _are_equal_exc_info_tuples(ei1: Any, ei2: Any) -> bool:
    """Whether two ``exc_info`` tuples (or ``None``) describe the same exception: one type, the
    same ``str`` and ``repr`` of the value, and the same traceback or one formatting the same (so
    a tuple equals its `_copy_exc_info`). TaskFlow's name, which its failure tests call."""
    if ei1 == ei2:
        return True
    if ei1 is None or ei2 is None:
        return False
    if ei1[0] is not ei2[0]:
        return False
    v1, v2 = ei1[1], ei2[1]
    if type(v1) is not type(v2) or str(v1) != str(v2) or repr(v1) != repr(v2):
        return False
    if ei1[2] == ei2[2]:
        return True
    return traceback_mod.format_tb(ei1[2]) == traceback_mod.format_tb(ei2[2])


class Failure:
    """An immutable record of an exception: what was raised, where, and why.

    ``Failure()`` captures the exception being handled (``sys.exc_info()``); ``Failure(exc_info=...)``
    captures the given triple; keyword arguments (``exception_str``, ``traceback_str``,
    ``exc_type_names``, ``exc_args``, ``causes``) rebuild one from its parts, as :meth:`from_dict` does.

    Failures are unhashable, compare by content, pickle (keeping the exception object when it pickles),
    and iterate over their exception type names.
    """

    DICT_VERSION = 1

    #: Roots of all exception types; the last type name of a valid failure is one of these.
    BASE_EXCEPTIONS = ("BaseException", "Exception")

    #: The JSON schema of the dict form (checked by :meth:`validate` without a jsonschema dependency).
    SCHEMA = {
        "$ref": "#/definitions/cause",
        "definitions": {
            "cause": {
                "type": "object",
                "properties": {
                    "version": {"type": "integer", "minimum": 0},
                    "exc_args": {"type": "array", "minItems": 0},
                    "exception_str": {"type": "string"},
                    "traceback_str": {"type": "string"},
                    "exc_type_names": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "causes": {"type": "array", "items": {"$ref": "#/definitions/cause"}},
                },
                "required": ["exception_str", "traceback_str", "exc_type_names"],
                "additionalProperties": True,
            },
        },
    }

    def __init__(self, exc_info: ExcInfo | None = None, **kwargs: Any) -> None:
        if not kwargs:
            if exc_info is None:
                exc_info = sys.exc_info()
            elif len(exc_info) != 3:
                raise ValueError("Provided 'exc_info' must contain three elements")
            self._exc_info: ExcInfo | None = exc_info
            self._exc_args = tuple(getattr(exc_info[1], "args", []))
            self._exc_type_names = _exception_type_names(exc_info[0])
            if not self._exc_type_names:
                raise TypeError(f"Invalid exception type '{exc_info[0]}' ({type(exc_info[0])})")
            self._exception_str = str(exc_info[1])
            self._traceback_str: str | None = "".join(traceback_mod.format_tb(exc_info[2]))
            self._causes: tuple[Failure, ...] | None = None
        else:
            self._causes = kwargs.pop("causes", None)
            self._exc_info = exc_info
            self._exc_args = tuple(kwargs.pop("exc_args", []))
            self._exception_str = kwargs.pop("exception_str")
            self._exc_type_names = tuple(kwargs.pop("exc_type_names", []))
            self._traceback_str = kwargs.pop("traceback_str", None)
            if kwargs:
                raise TypeError("Failure.__init__ got unexpected keyword argument(s): " + ", ".join(kwargs))

    @classmethod
    def from_exception(cls, exception: BaseException) -> Failure:
        """A failure for an exception instance (with its ``__traceback__``, if any)."""
        return cls(exc_info=(type(exception), exception, getattr(exception, "__traceback__", None)))

    @classmethod
    def validate(cls, data: Any) -> None:
        """Checks that ``data`` is a valid dict form (causes included).

        :raises ~ferroflow.exceptions.InvalidFormat: it is not.
        """
        pending = [(data, "")]
        while pending:
            cause, where = pending.pop()
            problem = _schema_problem(cause)
            if problem is not None:
                raise exc.InvalidFormat(f"Failure data not of the expected format: {problem}{where}")
            root_exc_type = cause["exc_type_names"][-1]
            if root_exc_type not in cls.BASE_EXCEPTIONS:
                raise exc.InvalidFormat(
                    "Failure data 'exc_type_names' must have an initial exception type that is one"
                    f" of {cls.BASE_EXCEPTIONS} types: '{root_exc_type}' is not one of those types"
                )
            for i, sub in enumerate(cause.get("causes") or ()):
                pending.append((sub, f" (in causes[{i}]{where})"))

    def _matches(self, other: Failure) -> bool:
        if self is other:
            return True
        return (
            self._exc_type_names == other._exc_type_names
            and self.exception_args == other.exception_args
            and self.exception_str == other.exception_str
            and self.traceback_str == other.traceback_str
            and self.causes == other.causes
        )

    def matches(self, other: object) -> bool:
        """True if ``other`` is an equivalent failure (compared by content when either lost its
        exception object, fully otherwise)."""
        if not isinstance(other, Failure):
            return False
        if self.exc_info is None or other.exc_info is None:
            return self._matches(other)
        return self == other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Failure):
            return NotImplemented
        return self._matches(other) and _are_equal_exc_info_tuples(self.exc_info, other.exc_info)

    def __ne__(self, other: object) -> bool:
        return not (self == other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def exception(self) -> BaseException | None:
        """The exception object, or ``None`` once lost (for example after serialization)."""
        return self._exc_info[1] if self._exc_info else None

    @property
    def exception_str(self) -> str:
        """``str()`` of the exception."""
        return self._exception_str

    @property
    def exception_args(self) -> tuple:
        """The arguments given to the exception's constructor."""
        return self._exc_args

    @property
    def exc_info(self) -> ExcInfo | None:
        """The ``(type, value, traceback)`` triple, or ``None`` once lost."""
        return self._exc_info

    @property
    def traceback_str(self) -> str | None:
        """The traceback as text."""
        return self._traceback_str

    @staticmethod
    def reraise_if_any(failures: Iterable[Failure]) -> None:
        """Re-raises one failure as itself, several as a :class:`~ferroflow.exceptions.WrappedFailure`;
        does nothing when there are none."""
        if not isinstance(failures, (list, tuple)):
            failures = list(failures)
        if len(failures) == 1:
            failures[0].reraise()
        elif len(failures) > 1:
            raise exc.WrappedFailure(failures)

    def reraise(self) -> None:
        """Raises the captured exception, or a :class:`~ferroflow.exceptions.WrappedFailure` of this
        failure when the exception object was lost."""
        if not self._exc_info:
            raise exc.WrappedFailure([self])
        tp, value, tb = self._exc_info
        if value is None:
            value = tp()  # type: ignore[misc]
        if value.__traceback__ is not tb:
            raise value.with_traceback(tb)
        raise value

    def check(self, *exc_classes: type | str) -> type | str | None:
        """Returns the first of ``exc_classes`` (types or fully qualified type names) that this failure's
        exception is an instance of, or ``None``. Works on failures loaded from their dict form too."""
        names = self._exc_type_names
        for cls in exc_classes:
            name = _class_name(cls) if isinstance(cls, type) else cls
            if any(variant in names for variant in _name_variants(name)):
                return cls
        return None

    @classmethod
    def _extract_causes_iter(cls, exc_val: BaseException | None) -> Iterator[Failure]:
        # Walks the __cause__/__context__ chain (PEP 3134/409/415), one link per exception.
        seen = [exc_val]
        stack = [exc_val]
        while stack:
            current = stack.pop()
            if current is None:
                continue
            attrs = ("__cause__",) if getattr(current, "__suppress_context__", False) else ("__cause__", "__context__")
            nested = None
            for attr in attrs:
                value = getattr(current, attr, None)
                if value is not None and not any(value is s for s in seen):
                    nested = value
                    break
            if nested is not None:
                seen.append(nested)
                stack.append(nested)
                yield cls(exc_info=(type(nested), nested, getattr(nested, "__traceback__", None)))

    @property
    def causes(self) -> tuple[Failure, ...]:
        """Failures of the exceptions this one was chained to (``__cause__``/``__context__``), not
        including itself."""
        if self._causes is None:
            self._causes = tuple(self._extract_causes_iter(self.exception))
        return self._causes

    def __str__(self) -> str:
        return self.pformat()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.pformat()!r}>"

    def pformat(self, traceback: bool = False) -> str:
        """``'Failure: <type>: <message>'``, plus the traceback when asked."""
        if self._exc_type_names:
            text = f"Failure: {self._exc_type_names[0]}: {self._exception_str}"
        else:
            text = f"Failure: {self._exception_str}"
        if traceback:
            tb_text = self._traceback_str.rstrip() if self._traceback_str is not None else None
            if tb_text:
                text += os.linesep + "Traceback (most recent call last):" + os.linesep + tb_text
            else:
                text += os.linesep + "Traceback not available."
        return text

    def __iter__(self) -> Iterator[str]:
        """Iterates over the exception type names (most derived first)."""
        return iter(self._exc_type_names)

    def __getstate__(self) -> dict[str, Any]:
        state = self.to_dict()
        if self._exc_info:
            state["exc_info"] = self._exc_info[0:2]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._exception_str = state["exception_str"]
        self._exc_args = tuple(state.get("exc_args", ()))
        self._traceback_str = state["traceback_str"]
        self._exc_type_names = tuple(state["exc_type_names"])
        if "exc_info" in state:
            partial = tuple(state["exc_info"])[:3]
            self._exc_info = partial + (None,) * (3 - len(partial))  # type: ignore[assignment]
        else:
            self._exc_info = None
        causes = state.get("causes")
        self._causes = tuple(self.from_dict(d) for d in causes) if causes is not None else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        """Rebuilds a failure (without its exception object) from :meth:`to_dict`'s form.

        :raises ValueError: the dict's ``version`` is not :attr:`DICT_VERSION`.
        """
        data = dict(data)
        version = data.pop("version", None)
        if version != cls.DICT_VERSION:
            raise ValueError(f"Invalid dict version of failure object: {version!r}")
        causes = data.get("causes")
        if causes is not None:
            data["causes"] = tuple(cls.from_dict(d) for d in causes)
        return cls(**data)

    def to_dict(self, include_args: bool = True) -> dict[str, Any]:
        """The dict form: ``exception_str``, ``traceback_str``, ``exc_type_names``, ``version``,
        ``exc_args`` (empty unless ``include_args``) and ``causes`` (their dict forms)."""
        return {
            "exception_str": self.exception_str,
            "traceback_str": self.traceback_str,
            "exc_type_names": list(self),
            "version": self.DICT_VERSION,
            "exc_args": self.exception_args if include_args else (),
            "causes": [f.to_dict() for f in self.causes],
        }

    def copy(self) -> Failure:
        """A copy (with a shallow copy of the exception object). Unlike TaskFlow, the copy keeps the
        chained causes even when they had not been looked at yet (a copied exception loses its chain)."""
        return Failure(
            exc_info=_copy_exc_info(self.exc_info),
            exception_str=self.exception_str,
            traceback_str=self.traceback_str,
            exc_args=self.exception_args,
            exc_type_names=self._exc_type_names[:],
            causes=self.causes,
        )


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schema_problem(cause: Any) -> str | None:
    """What makes ``cause`` break :attr:`Failure.SCHEMA` (its own level only), or ``None``."""
    if not isinstance(cause, dict):
        return f"{cause!r} is not of type 'object'"
    for key in ("exception_str", "traceback_str", "exc_type_names"):
        if key not in cause:
            return f"'{key}' is a required property"
    if "version" in cause:
        version = cause["version"]
        if not _is_integer(version):
            return f"{version!r} is not of type 'integer'"
        if version < 0:
            return f"{version!r} is less than the minimum of 0"
    for key in ("exception_str", "traceback_str"):
        if not isinstance(cause[key], str):
            return f"{cause[key]!r} is not of type 'string'"
    names = cause["exc_type_names"]
    if not _is_array(names):
        return f"{names!r} is not of type 'array'"
    if not names:
        return f"{names!r} should be non-empty"
    for name in names:
        if not isinstance(name, str):
            return f"{name!r} is not of type 'string'"
    if "exc_args" in cause and not _is_array(cause["exc_args"]):
        return f"{cause['exc_args']!r} is not of type 'array'"
    if "causes" in cause and not _is_array(cause["causes"]):
        return f"{cause['causes']!r} is not of type 'array'"
    return None
