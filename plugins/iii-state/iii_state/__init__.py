"""iii state: the ``state::*`` functions with ``state`` triggers, and the ``kv_server::*`` store."""

from iii_state.kv_server import KvServer
from iii_state.module import StateModule

__all__ = ["KvServer", "StateModule"]
