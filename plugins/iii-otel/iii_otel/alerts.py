"""Threshold alerts on engine metrics: the ``alerts`` config key (reference §6.1).

Each alert compares a metric's *value over the window* with ``threshold`` using ``operator``:

* counters (``iii.invocations.total|success|error|deferred``, ``iii.workers.spawns|deaths``):
  the increase over the last ``window_seconds``, i.e. the current count minus a baseline sample.
  The evaluator keeps ``(time, count)`` samples per alert in a bounded ring (at most one every
  half interval, older ones dropped); the baseline is the newest sample taken at or before
  ``now - window_seconds``, or the oldest one kept while the evaluator is younger than the window.
  The first sample is taken when the module starts.
* gauge ``iii.workers.active``: the current number of active workers.
* any other name: a metric of the module's metric store (workers' ``MTRC`` frames, e.g.
  ``iii.worker.memory.rss``): the value of the most recent data point of that name received in
  the last ``window_seconds`` (none: no value, the condition is false).

An alert *fires* when its condition becomes true (state ``ok`` → ``firing``) and again at most
once per ``cooldown_seconds`` while it stays true; it *resolves* (→ ``ok``) when the condition is
false.  Firing and resolving run the action with ``{alert, metric, value, threshold, operator,
state: "firing"|"resolved", timestamp (unix ms)}``: ``log`` writes a warning (an info line when
resolved), ``webhook`` POSTs that JSON (5 s timeout, in a background task; failures are logged),
``function`` calls ``path`` fire-and-forget.  Evaluation runs every ``alerts_interval_ms`` and on
``engine::alerts::evaluate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import operator
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard

import aiohttp
import attrs

from iii_core.errors import ConfigError
from iii_otel.accumulators import COUNTERS, GAUGES, READABLE, RESERVED_PREFIXES, read_accumulator

if TYPE_CHECKING:
    from iii_otel.module import OtelModule

log = logging.getLogger("iii.otel")

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
ACTIONS = ("log", "webhook", "function")
WEBHOOK_TIMEOUT_S = 5.0
MAX_WEBHOOKS_IN_FLIGHT = 64
_MAX_SAMPLES = 4096
_KEYS = (
    "name",
    "metric",
    "threshold",
    "operator",
    "window_seconds",
    "action",
    "enabled",
    "cooldown_seconds",
)


@attrs.define(frozen=True)
class AlertRule:
    """One validated ``alerts`` entry.  ``target`` is the webhook URL or the function path."""

    name: str
    metric: str
    threshold: float
    operator: str = ">"
    window_seconds: float = 60.0
    action: str = "log"
    target: str | None = None
    enabled: bool = True
    cooldown_seconds: float = 60.0

    @property
    def kind(self) -> str:
        """``counter``, ``gauge`` (engine accumulators) or ``store`` (metric store lookup)."""
        if self.metric in COUNTERS:
            return "counter"
        return "gauge" if self.metric in GAUGES else "store"


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_alerts(raw: Any, where: str, metrics_enabled: bool) -> tuple[AlertRule, ...]:
    """Validate the ``alerts`` key; raise :class:`ConfigError` naming the key and bad value."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: alerts must be a list, got {raw!r}")
    rules: list[AlertRule] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        key = f"alerts[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {item!r}")
        unknown = sorted(str(k) for k in item if k not in _KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: {key}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(_KEYS)})"
            )
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: {key}.name must be a non-empty string, got {name!r}")
        if name in names:
            raise ConfigError(f"{where}: {key}.name {name!r} is used by another alert")
        names.add(name)
        key = f"alerts[{i}] ({name})"
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"{where}: {key}.metric must be a non-empty string, got {metric!r}")
        if metric.startswith(RESERVED_PREFIXES) and metric not in READABLE:
            raise ConfigError(
                f"{where}: {key}.metric {metric!r} is not an engine accumulator "
                f"(one of {', '.join(READABLE)})"
            )
        if metric not in READABLE and not metrics_enabled:
            raise ConfigError(
                f"{where}: {key}.metric {metric!r} is not an engine accumulator and the metric "
                f"store is off (metrics_enabled: false); use one of {', '.join(READABLE)}"
            )
        threshold = item.get("threshold")
        if not _number(threshold):
            raise ConfigError(f"{where}: {key}.threshold must be a number, got {threshold!r}")
        op = item.get("operator", ">")
        if op not in OPERATORS:
            raise ConfigError(
                f"{where}: {key}.operator must be one of {' '.join(OPERATORS)}, got {op!r}"
            )
        seconds: dict[str, float] = {}
        for field in ("window_seconds", "cooldown_seconds"):
            value = item.get(field, 60)
            positive = field == "window_seconds"
            if not _number(value) or (value <= 0 if positive else value < 0):
                bound = "> 0" if positive else ">= 0"
                raise ConfigError(f"{where}: {key}.{field} must be a number {bound}, got {value!r}")
            seconds[field] = float(value)
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: {key}.enabled must be true or false, got {enabled!r}")
        action, target = _parse_action(item.get("action"), f"{key}.action", where)
        rules.append(
            AlertRule(
                name=name,
                metric=metric,
                threshold=float(threshold),
                operator=op,
                window_seconds=seconds["window_seconds"],
                action=action,
                target=target,
                enabled=enabled,
                cooldown_seconds=seconds["cooldown_seconds"],
            )
        )
    return tuple(rules)


def _parse_action(raw: Any, key: str, where: str) -> tuple[str, str | None]:
    if raw is None:
        return "log", None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {key} must be a mapping with a type, got {raw!r}")
    kind = raw.get("type")
    if kind not in ACTIONS:
        raise ConfigError(f"{where}: {key}.type must be one of {', '.join(ACTIONS)}, got {kind!r}")
    field = {"log": None, "webhook": "url", "function": "path"}[kind]
    allowed = {"type"} | ({field} if field else set())
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: {key}: unknown key(s) {', '.join(unknown)} for type {kind} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    if field is None:
        return kind, None
    target = raw.get(field)
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{where}: {key}.{field} is required for type {kind}, got {target!r}")
    if kind == "webhook" and not target.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: {key}.url must be an http(s) URL, got {target!r}")
    return kind, target


class AlertState:
    """An alert's evaluation state and its bounded ring of counter samples."""

    __slots__ = (
        "fire_count",
        "last_fired_at",
        "last_fired_mono",
        "rule",
        "samples",
        "state",
        "value",
    )

    def __init__(self, rule: AlertRule, interval_s: float) -> None:
        self.rule = rule
        self.state = "ok"
        self.value: float | None = None
        self.last_fired_at: int | None = None
        self.last_fired_mono = 0.0
        self.fire_count = 0
        size = min(_MAX_SAMPLES, math.ceil(rule.window_seconds / (interval_s / 2)) + 3)
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        return {
            "name": r.name,
            "metric": r.metric,
            "threshold": r.threshold,
            "operator": r.operator,
            "window_seconds": r.window_seconds,
            "enabled": r.enabled,
            "state": self.state,
            "value": self.value,
            "last_fired_at": self.last_fired_at,
            "fire_count": self.fire_count,
        }


class AlertEvaluator:
    """Evaluates the configured alerts periodically (:meth:`run`) or on demand."""

    def __init__(
        self,
        module: OtelModule,
        rules: tuple[AlertRule, ...],
        interval_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.module = module
        self.interval_s = interval_ms / 1000
        self.clock = clock
        self.states = [AlertState(rule, self.interval_s) for rule in rules]
        self.fired_total = 0
        self._session: aiohttp.ClientSession | None = None
        self._webhooks: set[asyncio.Task[None]] = set()
        self.webhooks_dropped_total = 0

    # ------------------------------------------------------------------ metric values

    def _current(self, rule: AlertRule) -> float | None:
        value = read_accumulator(self.module, rule.metric)
        if value is not None:
            return value
        return self._latest_point(rule.metric, rule.window_seconds)

    def _latest_point(self, metric: str, window_seconds: float) -> float | None:
        store = self.module.metrics
        if store is None:
            return None
        cutoff = time.time_ns() - int(window_seconds * 1e9)
        for point in reversed(store.records()):
            if point.get("received_unix_nano", 0) < cutoff:
                return None
            if point["name"] == metric and point.get("value") is not None:
                return float(point["value"])
        return None

    def _sample(self, state: AlertState, now: float, current: float) -> None:
        """Record a counter sample (at most one per half interval)."""
        samples = state.samples
        if not samples or now - samples[-1][0] >= self.interval_s / 2:
            samples.append((now, current))

    def _value(self, state: AlertState, now: float) -> float | None:
        rule = state.rule
        raw = self._current(rule)
        if raw is None:
            return None
        current = float(raw)
        if rule.kind != "counter":
            return current
        self._sample(state, now, current)
        samples = state.samples
        start = now - rule.window_seconds
        while len(samples) > 1 and samples[1][0] <= start:
            samples.popleft()
        return current - samples[0][1]

    # ------------------------------------------------------------------ evaluation

    def start(self) -> None:
        """Take the first counter samples (the module is starting: counters are at zero)."""
        now = self.clock()
        for state in self.states:
            current = self._current(state.rule)
            if state.rule.enabled and state.rule.kind == "counter" and current is not None:
                self._sample(state, now, float(current))

    def evaluate(self) -> list[dict[str, Any]]:
        """Evaluate every enabled alert now; return the states (``engine::alerts::list``)."""
        now = self.clock()
        for state in self.states:
            rule = state.rule
            if not rule.enabled:
                continue
            value = state.value = self._value(state, now)
            active = value is not None and OPERATORS[rule.operator](value, rule.threshold)
            if active:
                if state.state == "ok":
                    state.state = "firing"
                    self._fire(state, now)
                elif now - state.last_fired_mono >= rule.cooldown_seconds:
                    self._fire(state, now)
            elif state.state == "firing":
                state.state = "ok"
                self._act(state, "resolved")
        return self.list()

    def list(self) -> list[dict[str, Any]]:
        return [state.as_dict() for state in self.states]

    @property
    def firing(self) -> int:
        return sum(1 for state in self.states if state.state == "firing")

    # ------------------------------------------------------------------ actions

    def _fire(self, state: AlertState, now: float) -> None:
        state.fire_count += 1
        state.last_fired_mono = now
        state.last_fired_at = int(time.time() * 1000)
        self.fired_total += 1
        self._act(state, "firing")

    def _act(self, state: AlertState, what: str) -> None:
        rule = state.rule
        payload = {
            "alert": rule.name,
            "metric": rule.metric,
            "value": state.value,
            "threshold": rule.threshold,
            "operator": rule.operator,
            "state": what,
            "timestamp": int(time.time() * 1000),
        }
        if rule.action == "log":
            log.log(
                logging.WARNING if what == "firing" else logging.INFO,
                "alert %s %s: %s = %s (threshold %s %s, window %ss)",
                rule.name,
                what,
                rule.metric,
                state.value,
                rule.operator,
                rule.threshold,
                rule.window_seconds,
            )
        elif rule.action == "function":
            assert rule.target is not None
            self.module.engine.call_void(rule.target, payload)
        else:
            assert rule.target is not None
            if len(self._webhooks) >= MAX_WEBHOOKS_IN_FLIGHT:
                self.webhooks_dropped_total += 1
                log.warning("alert %s: webhook not sent, too many in flight", rule.name)
                return
            task = asyncio.get_running_loop().create_task(
                self._post(rule, rule.target, payload), name=f"alert webhook {rule.name}"
            )
            self._webhooks.add(task)
            task.add_done_callback(self._webhooks.discard)

    async def _post(self, rule: AlertRule, url: str, payload: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            )
        try:
            async with self._session.post(url, json=payload) as resp:
                if resp.status >= 300:
                    log.warning(
                        "alert %s: webhook %s answered HTTP %d", rule.name, url, resp.status
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("alert %s: webhook %s failed: %r", rule.name, url, exc)

    async def close(self) -> None:
        """Cancel webhook deliveries in flight and close the HTTP session."""
        for task in list(self._webhooks):
            task.cancel()
        for task in list(self._webhooks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
