"""The live route table of ``http`` triggers (sans-I/O).

A route key is ``METHOD:path`` where ``path`` loses its leading ``/`` unless it is exactly ``/``
(so ``users/:id`` and ``/users/:id`` are one route), as in the reference.  Several triggers may
claim one key: the newest one serves it, and removing it falls back to the previous one.  That
is what keeps a route alive through a rolling restart (the new worker registers, then the old
one disconnects) and never lets one worker's disconnect remove another worker's route.

Matching prefers static segments over ``:param`` segments, segment by segment, like the
reference's router (matchit).  A path that matches a pattern whose methods do not include the
request's method is a 405, not a fall-through to a less specific pattern.
"""

from __future__ import annotations

from typing import Final

from iii_core import RegistrationError, Trigger

METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def normalize_path(path: str) -> str:
    return path if path == "/" else path.removeprefix("/")


class Route:
    """One ``http`` trigger's route."""

    __slots__ = ("api_path", "api_path_as_given", "function_id", "method", "params", "trigger")

    def __init__(self, trigger: Trigger, method: str, api_path: str) -> None:
        self.trigger = trigger
        self.function_id = trigger.function_id
        self.method = method
        self.api_path = normalize_path(api_path)
        # The input's ``path`` is the api_path as registered (the reference's quirk).
        self.api_path_as_given = api_path
        self.params = [
            (i, seg[1:]) for i, seg in enumerate(_segments(self.api_path)) if seg.startswith(":")
        ]


class _Pattern:
    """A path pattern and the routes (per method) registered on it."""

    __slots__ = ("methods", "rank", "segments")

    def __init__(self, path: str) -> None:
        self.segments = [None if s.startswith(":") else s for s in _segments(path)]
        # Static segments sort before parameters at each position.
        self.rank = tuple(0 if s is not None else 1 for s in self.segments)
        self.methods: dict[str, list[Route]] = {}

    def matches(self, parts: list[str]) -> bool:
        for want, got in zip(self.segments, parts, strict=True):
            if want is not None and want != got:
                return False
        return True


def _segments(path: str) -> list[str]:
    return [] if path == "/" else path.split("/")


def parse_trigger(trigger: Trigger) -> tuple[str, str] | None:
    """``(method, api_path)`` of an ``http`` trigger config.

    Raises :class:`RegistrationError` when ``api_path`` is missing or not a string; returns None
    for a method the HTTP API does not route (the reference stores such a trigger without route).
    """
    config = trigger.config
    if not isinstance(config, dict):
        raise RegistrationError("http trigger config must be an object with 'api_path'")
    api_path = config.get("api_path")
    if api_path is None:
        raise RegistrationError("api_path is required for http triggers")
    if not isinstance(api_path, str):
        raise RegistrationError(f"api_path must be a string, got {api_path!r}")
    method = config.get("http_method", "GET")
    if method is None:
        method = "GET"
    if not isinstance(method, str):
        raise RegistrationError(f"http_method must be a string, got {method!r}")
    method = method.upper()
    if method not in METHODS:
        return None
    return method, api_path


class RouteTable:
    """Route key → stack of routes; lookups by concrete request path."""

    def __init__(self) -> None:
        self._static: dict[str, _Pattern] = {}
        self._dynamic: dict[int, list[_Pattern]] = {}
        self._patterns: dict[str, _Pattern] = {}
        self._by_trigger: dict[str, Route] = {}

    def add(self, route: Route) -> None:
        """Serve ``route`` (it replaces an earlier route on the same key until removed)."""
        self.remove(route.trigger.id)
        pattern = self._patterns.get(route.api_path)
        if pattern is None:
            pattern = _Pattern(route.api_path)
            self._patterns[route.api_path] = pattern
            if route.params:
                bucket = self._dynamic.setdefault(len(pattern.segments), [])
                bucket.append(pattern)
                bucket.sort(key=lambda p: p.rank)
            else:
                self._static[route.api_path] = pattern
        pattern.methods.setdefault(route.method, []).append(route)
        self._by_trigger[route.trigger.id] = route

    def remove(self, trigger_id: str) -> Route | None:
        route = self._by_trigger.pop(trigger_id, None)
        if route is None:
            return None
        pattern = self._patterns[route.api_path]
        stack = pattern.methods[route.method]
        stack.remove(route)
        if not stack:
            del pattern.methods[route.method]
        if not pattern.methods:
            del self._patterns[route.api_path]
            if route.params:
                bucket = self._dynamic[len(pattern.segments)]
                bucket.remove(pattern)
                if not bucket:
                    del self._dynamic[len(pattern.segments)]
            else:
                del self._static[route.api_path]
        return route

    def match(self, path: str) -> tuple[dict[str, list[Route]], list[str]] | None:
        """The methods registered on the pattern ``path`` matches, and its segments."""
        pattern = self._static.get(path)
        if pattern is not None:
            return pattern.methods, []
        parts = _segments(path)
        for candidate in self._dynamic.get(len(parts), ()):
            if candidate.matches(parts):
                return candidate.methods, parts
        return None

    def __len__(self) -> int:
        return len(self._by_trigger)
