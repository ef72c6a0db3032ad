"""Exceptions raised by ferroflow: TaskFlow's hierarchy, names and meanings (``taskflow.exceptions``).

Every :class:`TaskFlowException` carries an optional ``cause`` (shown by :meth:`~TaskFlowException.pformat`
and by ``str()``) and pickles with its attributes intact, whatever its constructor's signature, so it can
cross process boundaries inside a :class:`~ferroflow.types.failure.Failure`.
"""

from __future__ import annotations

import builtins
import os
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ferroflow.types.failure import Failure


def raise_with_cause(exc_cls: type[TaskFlowException], message: str, *args: Any, **kwargs: Any) -> NoReturn:
    """Raises ``exc_cls(message, *args, **kwargs)`` chained to a cause.

    The cause is ``kwargs['cause']`` when given, otherwise the exception being handled (if any); it is
    both passed as the ``cause`` argument and used as ``__cause__``.
    """
    if not issubclass(exc_cls, TaskFlowException):
        raise ValueError("Subclass of taskflow exception is required")
    if "cause" not in kwargs:
        active = sys.exc_info()[1]
        if active is not None:
            kwargs["cause"] = active
    raise exc_cls(message, *args, **kwargs) from kwargs.get("cause")


def _restore(cls: type[BaseException], args: tuple, state: dict) -> BaseException:
    """Unpickles an exception without calling its ``__init__`` (whose signature may differ)."""
    obj = cls.__new__(cls, *args)
    obj.args = args
    obj.__dict__.update(state)
    return obj


def _reduce(self: BaseException) -> tuple:
    """``__reduce__`` as (class, args, instance dict), so custom constructors need no special care."""
    return (_restore, (type(self), self.args, dict(self.__dict__)))


class TaskFlowException(Exception):
    """Base of most exceptions raised by ferroflow.

    :param message: what went wrong.
    :param cause: the exception that caused this one, if any (kept as :attr:`cause`).
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self._cause = cause

    __reduce__ = _reduce

    @property
    def cause(self) -> BaseException | None:
        """The exception that caused this one, or ``None``."""
        return self._cause

    def __str__(self) -> str:
        return self.pformat()

    def _get_message(self) -> str:
        return self.args[0]

    def pformat(self, indent: int = 2, indent_text: str = " ", show_root_class: bool = False) -> str:
        """Formats this exception and its chain of causes, each cause indented one level deeper."""
        if indent < 0:
            raise ValueError(f"Provided 'indent' must be greater than or equal to zero instead of {indent}")
        parts = []
        if show_root_class:
            parts.append(f"{type(self).__name__}: ")
        parts.append(str(self._get_message()))
        active_indent = indent
        next_up = self.cause
        seen: list[BaseException] = []
        while next_up is not None and not any(next_up is s for s in seen):
            seen.append(next_up)
            parts.append(os.linesep)
            prefix = indent_text * active_indent
            if isinstance(next_up, TaskFlowException):
                parts.append(f"{prefix}{type(next_up).__name__}: {next_up._get_message()}")
            else:
                lines = [line.rstrip("\n") for line in traceback.format_exception_only(type(next_up), next_up)]
                parts.append(os.linesep.join(prefix + line for line in lines))
                break
            active_indent += indent
            next_up = getattr(next_up, "cause", None)
        return "".join(parts)


class StorageFailure(TaskFlowException):
    """A persistence backend could not read, save or delete."""


class LeaseLost(StorageFailure):
    """This engine no longer owns the flow detail it was running: its lease expired (the process
    was paused, the store unreachable) and another owner took it, or it was released. The engine
    stops at once and writes nothing more; the new owner continues the flow from the store."""


class UntrustedCode(TaskFlowException):
    """A store names code (a flow factory, a revert reference) outside the modules the user trusted."""


class ConductorFailure(TaskFlowException):
    """Errors related to conducting activities."""


class JobFailure(TaskFlowException):
    """Errors related to jobs or operations on jobs."""


class UnclaimableJob(JobFailure):
    """A job could not be claimed (already claimed or gone)."""


class ExecutionFailure(TaskFlowException):
    """Errors related to engine execution."""


class RequestTimeout(ExecutionFailure):
    """A worker request was not finished within its allotted time."""


class InvalidState(ExecutionFailure):
    """An invalid state transition was attempted, or methods were called in the wrong order."""


class DependencyFailure(TaskFlowException):
    """Some dependency problem occurred (for example a cycle)."""


class AmbiguousDependency(DependencyFailure):
    """Several providers were found for one required symbol."""


class MissingDependencies(DependencyFailure):
    """An entity has requirements that nothing provides.

    :param who: the entity whose requirements are missing.
    :param requirements: the unsatisfied requirements (kept as :attr:`missing_requirements`).
    :param method: the method (``execute``/``revert``) needing them, if known.
    """

    MESSAGE_TPL = "'%(who)s' requires %(requirements)s but no other entity produces said requirements"
    METHOD_TPL = "'%(method)s' method on "

    def __init__(
        self, who: Any, requirements: Any, cause: BaseException | None = None, method: str | None = None
    ) -> None:
        message = self.MESSAGE_TPL % {"who": who, "requirements": requirements}
        if method:
            message = (self.METHOD_TPL % {"method": method}) + message
        super().__init__(message, cause=cause)
        self.missing_requirements = requirements


class CompilationFailure(TaskFlowException):
    """Some compilation issue was found."""


class IncompatibleVersion(TaskFlowException):
    """Some version incompatibility was found."""


class Duplicate(TaskFlowException):
    """A duplicate entry was found (for example two atoms with the same name)."""


class NotFound(TaskFlowException):
    """An entry does not exist."""


class Empty(TaskFlowException):
    """An object is empty when it should not be."""


class MultipleChoices(TaskFlowException):
    """A decision cannot be made because there are several possible choices."""


class InvalidFormat(TaskFlowException):
    """An object or entity is not in the expected format."""


class DisallowedAccess(TaskFlowException):
    """Storage access is not possible in the current state (kept as :attr:`state`)."""

    def __init__(self, message: str, cause: BaseException | None = None, state: str | None = None) -> None:
        super().__init__(message, cause=cause)
        self.state = state


class NotImplementedError(builtins.NotImplementedError):
    """Functionality the library itself does not implement (distinct from the builtin's user meaning)."""

    __reduce__ = _reduce


class WrappedFailure(Exception):
    """Wraps one or several :class:`~ferroflow.types.failure.Failure` objects.

    Raised when an exception cannot be re-raised as itself: several failures at once, or failures that
    lost their exception object (for example after being loaded from a persistence backend). Nested
    wrapped failures are flattened.

    :param causes: the failures.
    """

    def __init__(self, causes: Any) -> None:
        super().__init__()
        self._causes: list[Failure] = []
        for cause in causes:
            if cause.check(type(self)) and cause.exception:
                self._causes.extend(cause.exception)
            else:
                self._causes.append(cause)

    __reduce__ = _reduce

    def __iter__(self) -> Iterator[Failure]:
        """Iterates over the wrapped failures."""
        return iter(self._causes)

    def __len__(self) -> int:
        """Number of wrapped failures."""
        return len(self._causes)

    def __getitem__(self, index: int) -> Failure:
        return self._causes[index]

    def check(self, *exc_classes: type | str) -> type | str | None:
        """Returns the first of ``exc_classes`` (types or type names) that caused any wrapped failure."""
        if not exc_classes:
            return None
        for cause in self._causes:
            found = cause.check(*exc_classes)
            if found is not None:
                return found
        return None

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    def __str__(self) -> str:
        return "WrappedFailure: [" + ", ".join(str(cause) for cause in self._causes) + "]"
