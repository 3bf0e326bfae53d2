"""iii bridge: ``modules::bridge_client::BridgeClientModule`` connects this engine to another iii
engine as a worker, to call its functions (``bridge.invoke``, forwards) and to publish local
functions to it (``expose``)."""

from iii_bridge.config import BridgeConfig, ExposeEntry, ForwardEntry
from iii_bridge.module import BridgeClientModule, BridgeError

__all__ = ["BridgeClientModule", "BridgeConfig", "BridgeError", "ExposeEntry", "ForwardEntry"]
