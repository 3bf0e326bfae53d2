"""Rule-based trace sampling: the ``sampling`` config key (reference §6.1).

``{default?, parent_based?, rules?: [{operation?, service?, rate}], rate_limit?:
{max_traces_per_second}}``.  A span's rate is the ``rate`` of the first rule whose globs
(``*``, ``?``, whole-string, case-sensitive) match its name (``operation``) and service name
(``service``), else ``default``.  As in ``TraceIdRatioBased``, a span is sampled when the low 64
bits of its trace id are below ``rate * 2**64``, so the decision is the same for every span of a
trace.  With ``parent_based`` a span with a parent follows the parent's sampled flag.  The rate
limit (a token bucket of ``max_traces_per_second`` tokens, refilled continuously) caps the
*root* spans sampled per second; a root over the limit is not sampled.

:class:`RuleSampler` is the OTel SDK ``Sampler`` of the module's ``TracerProvider``;
:class:`RuleSpanFactory` makes the same decisions for the engine's own invocation spans.  Both
are used only when ``sampling`` has rules, a rate limit or ``parent_based: false``; otherwise the
module keeps ``ParentBased(TraceIdRatioBased(default))`` and the plain
:class:`~iii_otel.engine_spans.EngineSpanFactory` (no extra cost per span).
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import attrs
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from iii_core.errors import ConfigError
from iii_otel.engine_spans import EngineSpanFactory

_TRACE_ID_LIMIT = (1 << 64) - 1
_CACHE_MAX = 4096
_SAMPLING_KEYS = ("default", "parent_based", "rules", "rate_limit")
_RULE_KEYS = ("operation", "service", "rate")
_RATE_LIMIT_KEYS = ("max_traces_per_second",)


@attrs.define(frozen=True)
class SamplingRule:
    """One ``sampling.rules`` entry; ``None`` globs match anything."""

    rate: float
    operation: str | None = None
    service: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "service": self.service, "rate": self.rate}


@attrs.define(frozen=True)
class SamplingSettings:
    """The effective sampling configuration (``engine::sampling::rules`` returns it)."""

    default: float
    parent_based: bool = True
    rules: tuple[SamplingRule, ...] = ()
    max_traces_per_second: float | None = None

    @property
    def needs_rule_sampler(self) -> bool:
        """False when ``ParentBased(TraceIdRatioBased(default))`` decides exactly the same."""
        return bool(self.rules) or self.max_traces_per_second is not None or not self.parent_based

    def as_dict(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "parent_based": self.parent_based,
            "rules": [rule.as_dict() for rule in self.rules],
            "rate_limit": (
                None
                if self.max_traces_per_second is None
                else {"max_traces_per_second": self.max_traces_per_second}
            ),
        }


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rate(value: Any, key: str, where: str) -> float:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: {key} must be a number within 0..1, got {value!r}")
    return float(value)


def _mapping(value: Any, key: str, allowed: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: {key}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})"
        )
    return value


def parse_sampling(raw: Any, sampling_ratio: float, where: str) -> SamplingSettings:
    """Validate the ``sampling`` key (None: not configured); ``default`` falls back to
    ``sampling_ratio``.  Raises :class:`ConfigError` naming the key and the bad value."""
    if raw is None:
        return SamplingSettings(default=sampling_ratio)
    cfg = _mapping(raw, "sampling", _SAMPLING_KEYS, where)
    default = sampling_ratio
    if cfg.get("default") is not None:
        default = _rate(cfg["default"], "sampling.default", where)
    parent_based = cfg.get("parent_based", True)
    if not isinstance(parent_based, bool):
        raise ConfigError(
            f"{where}: sampling.parent_based must be true or false, got {parent_based!r}"
        )
    raw_rules = cfg.get("rules") or []
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{where}: sampling.rules must be a list, got {raw_rules!r}")
    rules = []
    for i, item in enumerate(raw_rules):
        key = f"sampling.rules[{i}]"
        entry = _mapping(item, key, _RULE_KEYS, where)
        if "rate" not in entry:
            raise ConfigError(f"{where}: {key}.rate is required (a number within 0..1)")
        globs: dict[str, str | None] = {}
        for name in ("operation", "service"):
            glob = entry.get(name)
            if glob is not None and (not isinstance(glob, str) or not glob):
                raise ConfigError(f"{where}: {key}.{name} must be a non-empty glob, got {glob!r}")
            globs[name] = glob
        rules.append(
            SamplingRule(
                rate=_rate(entry["rate"], f"{key}.rate", where),
                operation=globs["operation"],
                service=globs["service"],
            )
        )
    limit: float | None = None
    if cfg.get("rate_limit") is not None:
        rate_limit = _mapping(cfg["rate_limit"], "sampling.rate_limit", _RATE_LIMIT_KEYS, where)
        value = rate_limit.get("max_traces_per_second")
        if not _is_number(value) or value <= 0:
            raise ConfigError(
                f"{where}: sampling.rate_limit.max_traces_per_second must be a number > 0, "
                f"got {value!r}"
            )
        limit = float(value)
    return SamplingSettings(default, parent_based, tuple(rules), limit)


def _bound(rate: float) -> int:
    return round(rate * (_TRACE_ID_LIMIT + 1))


class TokenBucket:
    """``rate`` tokens per second, at most ``max(rate, 1)`` saved up; one token per root."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RuleSampler(Sampler):
    """The ``sampling`` rules as an OTel ``Sampler`` (and the decision for engine spans)."""

    def __init__(
        self,
        settings: SamplingSettings,
        service_name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.service_name = service_name
        self.parent_based = settings.parent_based
        self.default_bound = _bound(settings.default)
        self._rules = [
            (
                re.compile(fnmatch.translate(r.operation)).match if r.operation else None,
                re.compile(fnmatch.translate(r.service)).match if r.service else None,
                _bound(r.rate),
            )
            for r in settings.rules
        ]
        self.bucket = (
            TokenBucket(settings.max_traces_per_second, clock)
            if settings.max_traces_per_second is not None
            else None
        )
        self._cache: dict[tuple[str, str], int] = {}
        self.rate_limited_total = 0

    def _bound_for(self, name: str, service: str) -> int:
        """The sampling bound of the first rule matching ``(name, service)`` (cached)."""
        key = (name, service)
        bound = self._cache.get(key)
        if bound is None:
            bound = self.default_bound
            for operation, service_glob, rule_bound in self._rules:
                if (operation is None or operation(name)) and (
                    service_glob is None or service_glob(service)
                ):
                    bound = rule_bound
                    break
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = bound
        return bound

    def decide(self, trace_id: int, name: str, service: str, parent_sampled: bool | None) -> bool:
        """Sample a span?  ``parent_sampled`` is None for a root span."""
        if parent_sampled is not None and self.parent_based:
            return parent_sampled
        if (trace_id & _TRACE_ID_LIMIT) >= self._bound_for(name, service):
            return False
        if parent_sampled is None and self.bucket is not None and not self.bucket.take():
            self.rate_limited_total += 1
            return False
        return True

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        valid = parent is not None and parent.is_valid
        sampled = self.decide(
            trace_id, name, self.service_name, parent.trace_flags.sampled if valid else None
        )
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP,
            attributes if sampled else None,
            parent.trace_state if valid else None,
        )

    def get_description(self) -> str:
        return f"IiiRuleSampler{{default={self.settings.default}, rules={len(self._rules)}}}"


class RuleSpanFactory(EngineSpanFactory):
    """Engine invocation spans (``call <function_id>``) sampled by a :class:`RuleSampler`.

    The span's service is the engine's ``service_name`` (what its span record carries: the
    engine, not the called worker, makes the span)."""

    def __init__(self, sampler: RuleSampler) -> None:
        super().__init__(sampler.settings.default)
        self.sampler = sampler

    def sampled(self, trace_id: int, function_id: str, parent_sampled: bool | None) -> bool:
        return self.sampler.decide(
            trace_id, f"call {function_id}", self.sampler.service_name, parent_sampled
        )
