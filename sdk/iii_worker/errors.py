"""Typed errors raised by :meth:`Worker.call`.

The engine and the other SDKs report failures as ``{code, message}``; this module turns each code
into an exception class so that callers can ``except FunctionNotFoundError`` instead of comparing
strings.  Every class keeps the wire ``code`` in ``.code`` so that unknown codes lose nothing.
"""

from __future__ import annotations

from typing import Final

from iii_core.protocol import ErrorBody


class InvocationError(Exception):
    """A call failed.  ``code`` is the wire error code, ``message`` its text.

    Handlers may raise it too: the worker then answers with this ``code`` instead of
    ``invocation_failed``.
    """

    default_code: str = "invocation_failed"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        function_id: str = "",
        stacktrace: str | None = None,
    ) -> None:
        self.code: str = code or self.default_code
        self.message = message
        self.function_id = function_id
        self.stacktrace = stacktrace
        super().__init__(f"{self.code}: {message}" if message else self.code)

    def to_body(self) -> ErrorBody:
        """The ``ErrorBody`` sent back when a handler raises this error."""
        return ErrorBody(code=self.code, message=self.message, stacktrace=self.stacktrace)


class InvocationFailedError(InvocationError):
    """The target's handler raised (code ``invocation_failed``)."""

    default_code = "invocation_failed"


class FunctionNotFoundError(InvocationError):
    """No worker or module provides the function (code ``function_not_found``)."""

    default_code = "function_not_found"


class InvocationTimeoutError(InvocationError, TimeoutError):
    """No answer within the call's timeout, from the engine or the client (code ``timeout``)."""

    default_code = "timeout"


class InvocationStoppedError(InvocationError, ConnectionError):
    """The call cannot complete because a connection went away (code ``invocation_stopped``).

    The engine sends it when the target worker disconnects; this SDK raises it itself, at once,
    for every pending call when its own connection drops.
    """

    default_code = "invocation_stopped"


class ConnectionLostError(InvocationStoppedError):
    """This worker's connection to the engine dropped while the call was pending."""


class NotConnectedError(InvocationError, ConnectionError):
    """The worker is closed, or gave up reconnecting (code ``not_connected``)."""

    default_code = "not_connected"


_BY_CODE: Final[dict[str, type[InvocationError]]] = {
    "invocation_failed": InvocationFailedError,
    "function_not_found": FunctionNotFoundError,
    "timeout": InvocationTimeoutError,
    "invocation_stopped": InvocationStoppedError,
}


def error_from_body(body: ErrorBody, function_id: str = "") -> InvocationError:
    """The typed exception for an ``ErrorBody`` received from the engine."""
    cls = _BY_CODE.get(body.code, InvocationError)
    return cls(body.message, code=body.code, function_id=function_id, stacktrace=body.stacktrace)
