"""The engine's exceptions.

Exception tree::

    IIIError
    ├── ConfigError                 bad config file, key or value (names file, key and value)
    ├── PluginError                 a plugin failed to load, or a class string is unknown
    ├── ProtocolError               a frame that is not a valid protocol message
    │   └── UnknownMessageType      well-formed, but a ``type`` this engine does not know
    ├── RegistrationError           a function, trigger or trigger type that cannot be registered
    └── InvocationError             a call that did not produce a result; ``code`` is the wire code
        ├── FunctionNotFound        function_not_found
        ├── InvocationTimeout       timeout
        ├── InvocationStopped       invocation_stopped
        ├── InvocationFailed        invocation_failed (the handler raised)
        ├── InvocationForbidden     forbidden
        ├── TooManyInvocations      too_many_invocations
        ├── InvalidMessage          invalid_message
        └── DeserializationError    deserialization_error

Each :class:`InvocationError` maps 1:1 to the wire ``code`` of an ``invocationresult`` error;
:func:`invocation_error` builds the right subclass back from a wire error.
"""

from __future__ import annotations

from typing import Any, ClassVar


class IIIError(Exception):
    """Base of every error raised by the engine."""


class ConfigError(IIIError):
    """A configuration problem; the message names the file, the key and the bad value."""


class PluginError(IIIError):
    """A plugin could not be loaded, or a class string names nothing installed."""


class ProtocolError(IIIError):
    """A frame that could not be decoded into a protocol message."""


class UnknownMessageType(ProtocolError):
    """A well-formed message whose ``type`` this engine does not know."""

    def __init__(self, message_type: str) -> None:
        super().__init__(f"unknown message type {message_type!r}")
        self.message_type = message_type


class RegistrationError(IIIError):
    """A registration that was refused (bad trigger config, reserved id, ...)."""


class InvocationError(IIIError):
    """A call that failed; ``code`` is the snake_case wire code."""

    code: ClassVar[str] = "invocation_error"

    def __init__(
        self, message: str, *, code: str | None = None, stacktrace: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.stacktrace = stacktrace

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.stacktrace:
            body["stacktrace"] = self.stacktrace
        return body


class FunctionNotFound(InvocationError):
    code = "function_not_found"


class InvocationTimeout(InvocationError):
    code = "timeout"


class InvocationStopped(InvocationError):
    code = "invocation_stopped"


class InvocationFailed(InvocationError):
    code = "invocation_failed"


class InvocationForbidden(InvocationError):
    code = "forbidden"


class TooManyInvocations(InvocationError):
    code = "too_many_invocations"


class InvalidMessage(InvocationError):
    code = "invalid_message"


class DeserializationError(InvocationError):
    code = "deserialization_error"


_BY_CODE: dict[str, type[InvocationError]] = {
    cls.code: cls
    for cls in (
        FunctionNotFound,
        InvocationTimeout,
        InvocationStopped,
        InvocationFailed,
        InvocationForbidden,
        TooManyInvocations,
        InvalidMessage,
        DeserializationError,
    )
}


def invocation_error(code: str, message: str, stacktrace: str | None = None) -> InvocationError:
    """Build the exception that matches a wire error code (unknown codes keep their code)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return InvocationError(message, code=code, stacktrace=stacktrace)
    return cls(message, stacktrace=stacktrace)
