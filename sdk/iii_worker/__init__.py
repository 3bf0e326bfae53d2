"""iii_worker: a typed Python worker SDK for the iii engine.

    import iii_worker

    async with iii_worker.connect("ws://127.0.0.1:49134", name="greeter") as worker:
        worker.register_function("greet", lambda data: {"hello": data["name"]})
        print(await worker.call("greet", {"name": "Ada"}))

The import name is ``iii_worker`` so that it installs beside the published ``iii-sdk`` (``iii``).
Messages are the engine's own :mod:`iii_core.protocol` types.
"""

from __future__ import annotations

from iii_worker._version import __version__
from iii_worker.channels import Channel, ChannelReader, ChannelWriter, is_channel_ref
from iii_worker.context import InvocationContext, current_invocation
from iii_worker.errors import (
    ConnectionLostError,
    FunctionNotFoundError,
    InvocationError,
    InvocationFailedError,
    InvocationStoppedError,
    InvocationTimeoutError,
    NotConnectedError,
)
from iii_worker.reconnect import ConnectionState, ReconnectConfig
from iii_worker.registrations import TriggerConfig, TriggerHandler
from iii_worker.worker import (
    DEFAULT_URL,
    FunctionRef,
    TriggerRef,
    TriggerTypeRef,
    Worker,
    connect,
    init,
)

__all__ = [
    "DEFAULT_URL",
    "Channel",
    "ChannelReader",
    "ChannelWriter",
    "ConnectionLostError",
    "ConnectionState",
    "FunctionNotFoundError",
    "FunctionRef",
    "InvocationContext",
    "InvocationError",
    "InvocationFailedError",
    "InvocationStoppedError",
    "InvocationTimeoutError",
    "NotConnectedError",
    "ReconnectConfig",
    "TriggerConfig",
    "TriggerHandler",
    "TriggerRef",
    "TriggerTypeRef",
    "Worker",
    "__version__",
    "connect",
    "current_invocation",
    "init",
    "is_channel_ref",
]
