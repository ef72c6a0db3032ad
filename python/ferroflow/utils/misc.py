"""Small helpers TaskFlow programs import from ``taskflow.utils.misc``."""

from __future__ import annotations

import json
import os
import socket
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "UNKNOWN_HOSTNAME",
    "LRUCache",
    "as_int",
    "binary_decode",
    "binary_encode",
    "clamp",
    "countdown_iter",
    "decode_json",
    "fix_newlines",
    "get_hostname",
    "is_iterable",
    "pick_first_not_none",
    "reverse_enumerate",
    "sequence_minus",
]

UNKNOWN_HOSTNAME = "<unknown>"


def get_hostname(unknown_hostname: str = UNKNOWN_HOSTNAME) -> str:
    """This machine's host name, or ``unknown_hostname`` when it cannot be found."""
    try:
        return socket.gethostname() or unknown_hostname
    except OSError:
        return unknown_hostname


def countdown_iter(start_at: int, decr: int = 1) -> Iterator[int]:
    """``start_at``, ``start_at - decr``, ... while positive."""
    if decr <= 0:
        raise ValueError(f"Decrement value must be greater than zero, not {decr}")
    while start_at > 0:
        yield start_at
        start_at -= decr


def reverse_enumerate(items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """``(index, item)`` pairs from the last item to the first."""
    for index in range(len(items) - 1, -1, -1):
        yield index, items[index]


def pick_first_not_none(*values: Any) -> Any:
    """The first of ``values`` that is not None (None if all are)."""
    for value in values:
        if value is not None:
            return value
    return None


def clamp(value: float, minimum: float, maximum: float, on_clamped: Callable[[], Any] | None = None) -> float:
    """``value`` limited to ``[minimum, maximum]``; ``on_clamped()`` is called when it had to be."""
    if minimum > maximum:
        raise ValueError(f"Provided minimum '{minimum}' must be less than or equal to the maximum '{maximum}'")
    clamped = min(max(value, minimum), maximum)
    if clamped != value and on_clamped is not None:
        on_clamped()
    return clamped


def fix_newlines(text: str, replacement: str = os.linesep) -> str:
    """Every line ending of ``text`` replaced by ``replacement``."""
    return replacement.join(text.splitlines())


def binary_encode(text: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``text`` as bytes (bytes are returned as they are)."""
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode(encoding, errors)
    raise TypeError(f"Expected binary or string type, not {type(text).__name__}")


def binary_decode(data: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> str:
    """``data`` as text (text is returned as it is)."""
    if isinstance(data, str):
        return data
    if isinstance(data, bytes):
        return data.decode(encoding, errors)
    raise TypeError(f"Expected binary or string type, not {type(data).__name__}")


def decode_json(raw_data: str | bytes, root_types: tuple[type, ...] = (dict,)) -> Any:
    """JSON text (or UTF-8 bytes) decoded; its root must be one of ``root_types``."""
    try:
        data = json.loads(binary_decode(raw_data))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"Expected JSON decodable data: {e}") from e
    if root_types and not isinstance(data, root_types):
        names = ", ".join(t.__name__ for t in root_types)
        raise ValueError(f"Expected JSON root to be of type ({names}), not {type(data).__name__}")
    return data


def sequence_minus(seq1: Iterable[Any], seq2: Iterable[Any]) -> list[Any]:
    """The items of ``seq1`` left after removing each item of ``seq2`` once."""
    result = list(seq1)
    for item in seq2:
        try:
            result.remove(item)
        except ValueError:
            pass
    return result


def as_int(obj: Any, quiet: bool = False) -> Any:
    """``obj`` as an int (also from a float-looking string); unconvertible: ``TypeError``, or
    ``obj`` itself when ``quiet``."""
    try:
        return int(obj)
    except (ValueError, TypeError):
        pass
    try:
        return int(float(obj))
    except (ValueError, TypeError):
        pass
    if not quiet:
        raise TypeError(f"Can not translate {obj!r} ({type(obj).__name__}) to an integer")
    return obj


def is_iterable(obj: Any) -> bool:
    """Whether ``obj`` is iterable and not a string or bytes."""
    if isinstance(obj, str | bytes):
        return False
    try:
        iter(obj)
    except TypeError:
        return False
    return True


class LRUCache:
    """A mapping that keeps at most ``maxsize`` entries, dropping the least recently used one
    (``currsize`` says how many it holds; TaskFlow's directory backend exposes one as its file cache)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"Maximum cache size must be greater than or equal to one, not {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[Any, Any] = OrderedDict()

    @property
    def currsize(self) -> int:
        return len(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __getitem__(self, key: Any) -> Any:
        value = self._data[key]
        self._data.move_to_end(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def __delitem__(self, key: Any) -> None:
        del self._data[key]

    def pop(self, key: Any, default: Any = None) -> Any:
        return self._data.pop(key, default)

    def clear(self) -> None:
        self._data.clear()
