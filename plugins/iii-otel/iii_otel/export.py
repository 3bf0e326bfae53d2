"""OTLP/HTTP (protobuf) export of traces, logs and metrics to a collector.

Producers only append to bounded ``deque`` buffers (thread-safe, never blocking, oldest dropped
when full); one task owned by the module drains them every ``export_interval_ms`` (or sooner
when a batch is full), encodes off the event loop and POSTs to ``{endpoint}/v1/{signal}``.  A
slow or dead collector therefore costs invocations nothing: a failed batch is dropped, counted
and reported in a rate-limited warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import aiohttp

from iii_otel.otlp import resource_logs, resource_spans, to_protobuf
from iii_otel.stores import to_record

log = logging.getLogger("iii.otel")

SIGNALS = ("traces", "logs", "metrics")
_WARN_EVERY_S = 30.0


class OtlpForwarder:
    def __init__(
        self,
        endpoint: str,
        resource: dict[str, Any],
        *,
        queue_size: int,
        batch_size: int,
        interval_ms: int,
        timeout_ms: int,
    ) -> None:
        self.endpoint = endpoint
        self.resource = resource
        self.batch_size = batch_size
        self.interval = interval_ms / 1000
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self.queue_size = queue_size
        self.buffers: dict[str, deque[Any]] = {s: deque(maxlen=queue_size) for s in SIGNALS}
        self.exported_total = dict.fromkeys(SIGNALS, 0)
        self.failed_total = dict.fromkeys(SIGNALS, 0)
        self.dropped_total = 0
        self._last_warning = 0.0
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ producers (any thread)

    def add(self, signal: str, item: Any) -> None:
        """Queue one item: an engine span, a stored log record (tagged ``("record", r)``),
        or an OTLP/JSON ``resource*`` mapping received from a worker."""
        buf = self.buffers[signal]
        if len(buf) == self.queue_size:
            self.dropped_total += 1
        buf.append(item)

    def queued(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    # ------------------------------------------------------------------ the export task

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.flush()
        finally:
            await self._session.close()

    async def flush(self) -> None:
        for signal in SIGNALS:
            buf = self.buffers[signal]
            while buf:
                batch = [buf.popleft() for _ in range(min(self.batch_size, len(buf)))]
                await self._send(signal, batch)

    async def _send(self, signal: str, batch: list[Any]) -> None:
        try:
            body = await asyncio.to_thread(self._encode, signal, batch)
        except Exception as exc:
            self.failed_total[signal] += len(batch)
            self._warn(f"could not encode {len(batch)} {signal} item(s) for OTLP export: {exc}")
            return
        assert self._session is not None
        url = f"{self.endpoint}/v1/{signal}"
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/x-protobuf"}
            ) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}")
            self.exported_total[signal] += len(batch)
        except Exception as exc:
            self.failed_total[signal] += len(batch)
            self._warn(f"OTLP export of {len(batch)} {signal} item(s) to {url} failed: {exc}")

    def _encode(self, signal: str, batch: list[Any]) -> bytes:
        items: list[dict[str, Any]] = []
        if signal == "traces":
            engine = [
                to_record(s, str(self.resource["service.name"]))
                for s in batch
                if not isinstance(s, dict)
            ]
            if engine:
                items.append(resource_spans(engine, self.resource))
            items.extend(s for s in batch if isinstance(s, dict))
        elif signal == "logs":
            records = [r for tag, r in (x for x in batch if isinstance(x, tuple))]
            items.extend(resource_logs(records))
            items.extend(x for x in batch if isinstance(x, dict))
        else:
            items.extend(batch)
        return to_protobuf(signal, items)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning("%s (further export failures are reported every %d s)", message, 30)
