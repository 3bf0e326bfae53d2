"""One consumer: a claim loop for a topic (one per ``queue`` trigger) or a named queue.

A consumer leases at most ``concurrency`` jobs, runs each in its own task, keeps the leases alive
while the handler calls are pending (``engine.call`` is pending exactly while the handling worker
is connected; it raises ``InvocationStopped`` when the worker or the engine goes away), and then
acks, retries, dead-letters or gives the job back.  Several consumers on one topic compete
through the adapter's atomic claim, in this engine or in another one sharing the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace

from iii_core.conditions import condition_allows, condition_function
from iii_core.errors import FunctionNotFound, InvocationError, InvocationStopped
from iii_queue.job import Job, now_ms
from iii_queue.settings import QueueSettings

if TYPE_CHECKING:
    from iii_queue.module import QueueModule

log = logging.getLogger("iii.queue")
tracer = trace.get_tracer("iii.queue")

#: Delay before a job whose function is not registered (or that the engine's shutdown stopped)
#: is offered again; this does not count as an attempt.
REDELIVERY_DELAY_MS = 200


class Consumer:
    """Claims and handles jobs of one topic with one set of settings."""

    def __init__(
        self,
        module: QueueModule,
        topic: str,
        settings: QueueSettings,
        *,
        function_id: str | None = None,
        config: Any = None,
        label: str | None = None,
    ) -> None:
        self.module = module
        self.topic = topic
        self.settings = settings
        self.function_id = function_id
        self.config = config
        self.label = label or topic
        self.condition = condition_function(config)
        self.inflight: dict[str, Job] = {}
        self.wake = asyncio.Event()
        self._slot = asyncio.Event()
        self._stopped = False
        self._loop_task: asyncio.Future[None] | None = None
        self._heartbeat_task: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._loop_task = self.module.spawn(self._claim_loop(), f"queue consumer {self.label}")
        self._heartbeat_task = self.module.spawn(self._heartbeat(), f"queue lease {self.label}")

    def stop(self) -> None:
        """Stop claiming; jobs in flight finish (their leases are kept alive until then)."""
        self._stopped = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        self._stop_heartbeat_when_idle()
        self.wake.set()
        self._slot.set()

    # ------------------------------------------------------------------ claiming

    async def _claim_loop(self) -> None:
        adapter = self.module.adapter
        settings = self.settings
        fifo = settings.type == "fifo"
        poll = self.module.config.poll_interval_ms / 1000
        failures = 0
        while not self._stopped:
            free = settings.concurrency - len(self.inflight)
            if free <= 0:
                self._slot.clear()
                await self._slot.wait()
                continue
            self.wake.clear()
            now = now_ms()
            try:
                jobs = await adapter.claim(
                    self.topic,
                    limit=free,
                    lease_until=now + settings.visibility_timeout_ms,
                    fifo=fifo,
                    now=now,
                )
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning(
                        "queue %s: claiming failed (%d times): %s", self.label, failures, exc
                    )
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))
                continue
            if failures:
                log.info("queue %s: claiming works again", self.label)
                failures = 0
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), poll)
                continue
            for job in jobs:
                self.inflight[job.id] = job
                self.module.spawn(self._handle(job), None)

    async def _heartbeat(self) -> None:
        """Extend the leases of the jobs in flight every third of the visibility timeout."""
        period = self.settings.visibility_timeout_ms / 3000
        while True:
            await asyncio.sleep(period)
            if not self.inflight:
                continue
            leases = [(job.id, job.lease) for job in self.inflight.values()]
            try:
                await self.module.adapter.extend(
                    self.topic, leases, now_ms() + self.settings.visibility_timeout_ms
                )
            except Exception as exc:
                log.warning(
                    "queue %s: extending %d leases failed: %s", self.label, len(leases), exc
                )

    # ------------------------------------------------------------------ handling

    async def _handle(self, job: Job) -> None:
        try:
            await self._run(job)
        finally:
            self.inflight.pop(job.id, None)
            self._slot.set()
            self._stop_heartbeat_when_idle()

    def _stop_heartbeat_when_idle(self) -> None:
        if self._stopped and not self.inflight and self._heartbeat_task is not None:
            self._heartbeat_task.cancel()

    async def _run(self, job: Job) -> None:
        function_id = self.function_id or job.function_id
        module = self.module
        context = propagate.extract({"traceparent": job.traceparent}) if job.traceparent else None
        with tracer.start_as_current_span(
            f"queue {self.label}", context=context, kind=trace.SpanKind.CONSUMER
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            traceparent = carrier.get("traceparent", job.traceparent)
            try:
                if function_id is None:
                    raise FunctionNotFound("the job names no function")
                allowed = self.condition is None or await condition_allows(
                    module.engine, self.config, job.data, traceparent=traceparent
                )
                if allowed:
                    timeout = self.settings.timeout_ms
                    await module.engine.call(
                        function_id,
                        job.data,
                        timeout=timeout / 1000 if timeout else None,
                        traceparent=traceparent,
                        baggage=job.baggage,
                    )
            except InvocationStopped as exc:
                if module.engine.stopping:
                    # The engine's shutdown stopped it: not the job's fault.
                    await self._settle(job, "release", now_ms() + REDELIVERY_DELAY_MS)
                    return
                # The worker disconnected while handling it: a failed attempt, so that a job
                # that crashes its worker every time ends in the dead-letter queue instead of
                # crashing workers forever.
                await self._failed(job, exc)
                return
            except FunctionNotFound as exc:
                # Nobody could run the job: offer it again without counting an attempt.
                log.debug(
                    "queue %s: job %s not handled (%s), redelivering", self.label, job.id, exc
                )
                await self._settle(job, "release", now_ms() + REDELIVERY_DELAY_MS)
                return
            except Exception as exc:
                await self._failed(job, exc)
                return
        await self._settle(job, "ack")
        module.handled_total += 1

    async def _failed(self, job: Job, exc: BaseException) -> None:
        error = f"{exc.code}: {exc.message}" if isinstance(exc, InvocationError) else repr(exc)
        job.attempts += 1
        now = now_ms()
        if job.attempts > self.settings.max_retries:
            log.warning(
                "queue %s: job %s failed %d times, moved to the dead-letter queue: %s",
                self.label,
                job.id,
                job.attempts,
                error,
            )
            await self._settle(job, "dead", now, error)
            self.module.dead_total += 1
        else:
            delay = self.settings.backoff(job.attempts)
            log.info(
                "queue %s: job %s failed (attempt %d), retry in %d ms: %s",
                self.label,
                job.id,
                job.attempts,
                delay,
                error,
            )
            await self._settle(job, "release", now + delay)
            self.module.retried_total += 1

    async def _settle(self, job: Job, how: str, at: int = 0, error: str = "") -> None:
        """Ack, release or dead-letter; if the store is unreachable the lease lapses instead and
        the job is redelivered (at-least-once)."""
        adapter = self.module.adapter
        try:
            if how == "ack":
                done = await adapter.ack(job)
            elif how == "release":
                done = await adapter.release(job, at)
            else:
                done = await adapter.dead_letter(job, error, at)
        except Exception as exc:
            log.warning("queue %s: %s of job %s failed: %s", self.label, how, job.id, exc)
            return
        if not done:
            log.warning("queue %s: lease of job %s was lost before %s", self.label, job.id, how)
        elif how == "release":
            self.module.wake(self.topic)
