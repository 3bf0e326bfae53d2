"""iii-otel: distributed tracing, logs and metrics for the iii engine."""

from iii_otel.config import OtelConfig
from iii_otel.module import OtelModule

__all__ = ["OtelConfig", "OtelModule"]
