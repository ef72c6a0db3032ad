"""Codecs that turn atom results into bytes for durable storage.

JSON is what the durable backends store (SQLite and ``dir://``, as TaskFlow's JSON backends do):
it is readable and portable between Python versions. As with those backends, tuples come back as
lists and non-string dictionary keys come back as strings. It is the only codec a backend or an
engine accepts: `check_storage_codec` refuses ``codec='pickle'`` (or any other) there with a
clear error rather than ignore it, since unpickling a store would let whoever can write it run
code. The pickle codec stays available for direct use: it round-trips any picklable object
exactly, but ties data to the Python classes that produced it and must never be used on data
from an untrusted source.

A value a codec cannot serialize raises :class:`TypeError` naming the offending type and where
it sits inside the value (or that it nests deeper than Python can encode), never a
half-written record.
"""

from __future__ import annotations

import abc
import json
import sys
from typing import Any

__all__ = ["JSON", "PICKLE", "STORAGE_CODECS", "Codec", "JsonCodec", "PickleCodec", "check_storage_codec", "get_codec"]


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class Codec(abc.ABC):
    """Turns a result value into bytes and back."""

    #: Short name used in configuration (``codec='json'``) and stored next to encoded data.
    name: str = ""

    @abc.abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raises :class:`TypeError` if it cannot be encoded."""

    @abc.abstractmethod
    def loads(self, data: bytes | bytearray | memoryview | str) -> Any:
        """Decode bytes produced by :meth:`dumps`."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


_JSON_SCALARS = (str, int, float, bool, type(None))


def _find_unencodable(value: Any) -> tuple[str, Any] | None:
    """Locate the first part of ``value`` JSON cannot encode (only walked after a failure)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _JSON_SCALARS):
            continue
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, _JSON_SCALARS):
                    return f"{path} (a dictionary key)", key
            children = [(f"{path}[{key!r}]", child) for key, child in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
        else:
            return path, item
        # Reversed so that the first offending element (in iteration order) is reported.
        stack.extend(reversed(children))
    return None


class JsonCodec(Codec):
    """Compact UTF-8 JSON; only dicts, lists, tuples, str, int, float, bool and None."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_reject)
        except _Unencodable as exc:
            raise self._describe(value, exc.value) from None
        except TypeError:
            # Raised by json itself for unsupported dictionary keys (tuples, objects...).
            raise self._describe(value, None) from None
        except ValueError as exc:  # circular reference, or NaN / infinity (never: allowed above)
            raise TypeError(
                f"cannot serialize a value of type {_type_name(value)} with the json codec: {exc}"
            ) from None
        except RecursionError:
            raise TypeError(
                f"cannot serialize a value of type {_type_name(value)} with the json codec: it nests deeper than "
                f"Python's recursion limit ({sys.getrecursionlimit()}) allows; return flatter data"
            ) from None
        return text.encode("utf-8")

    def loads(self, data: bytes | bytearray | memoryview | str) -> Any:
        if isinstance(data, memoryview):
            data = data.tobytes()
        return json.loads(data)

    @staticmethod
    def _describe(value: Any, culprit: Any) -> TypeError:
        found = _find_unencodable(value)
        where = ""
        if found is not None:
            path, culprit = found
            where = f" at value{path}" if path else ""
        return TypeError(
            f"cannot serialize a value of type {_type_name(culprit)}{where} with the json codec: "
            "only dict, list, tuple, str, int, float, bool and None are supported "
            "(return JSON-compatible data: convert other objects to these types yourself)"
        )


class _Unencodable(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _reject(value: Any) -> Any:
    # Raised instead of TypeError so that it is distinguishable from json's own key errors.
    raise _Unencodable(value)


class PickleCodec(Codec):
    """Python pickle (highest protocol); exact round trips of any picklable object."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        import pickle  # (only this codec needs it: not loaded at every start)

        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(
                f"cannot serialize a value of type {_type_name(value)} with the pickle codec: {exc}"
            ) from None

    def loads(self, data: bytes | bytearray | memoryview | str) -> Any:
        if isinstance(data, str):
            raise TypeError("the pickle codec decodes bytes, not str")
        import pickle

        return pickle.loads(data)


#: The default codec.
JSON = JsonCodec()
#: The opt-in pickle codec.
PICKLE = PickleCodec()

_BY_NAME: dict[str, Codec] = {JSON.name: JSON, PICKLE.name: PICKLE}


def get_codec(codec: str | Codec | None = None) -> Codec:
    """Return the codec named ``codec`` (``'json'`` or ``'pickle'``); ``None`` means JSON."""
    if codec is None:
        return JSON
    if isinstance(codec, Codec):
        return codec
    try:
        return _BY_NAME[codec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown codec {codec!r}; known codecs: {sorted(_BY_NAME)}") from None


#: The codecs a persistence backend stores results with (the option ``codec``).
STORAGE_CODECS = (JSON.name,)


def check_storage_codec(codec: Any, where: str) -> None:
    """Refuses a ``codec`` option (of a backend's configuration or an engine's options: ``where``)
    other than ``'json'``: the durable backends store JSON only, so any other codec would be
    silently ignored."""
    if codec is None or codec == JSON.name or codec is JSON:
        return
    raise ValueError(
        f"{where}: codec={codec!r} is not supported; results are always stored as JSON (codec='json'), so "
        "return JSON-compatible data (dict, list, str, int, float, bool, None)"
    )
