"""iii stream module: stream items pushed live to browsers and workers over WebSocket."""

from iii_stream.module import StreamModule

__all__ = ["StreamModule"]
