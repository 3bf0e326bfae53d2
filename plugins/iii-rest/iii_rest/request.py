"""HTTP request → the function input (the reference's ``HttpRequest``), and log redaction."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from iii_rest.routes import Route

REDACTED_HEADERS: Final = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-secret",
        "x-csrf-token",
        "proxy-authorization",
    }
)

_decoder = msgspec.json.Decoder()


def _visible(value: bytes) -> str:
    """The header value as text, or "" when it holds a byte that is not visible ASCII (the
    reference's ``HeaderValue::to_str`` rule: tab and 0x20-0x7E only)."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return ""
    if text.isprintable() or all(c == "\t" or " " <= c <= "~" for c in text):
        return text
    return ""


def headers_of(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lowercase names; the last of repeated headers wins."""
    return {name.decode("latin-1").lower(): _visible(value) for name, value in raw}


def query_of(query_string: bytes) -> dict[str, str]:
    """Percent-decoded; with repeated keys the last wins."""
    if not query_string:
        return {}
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


def path_params_of(route: Route, parts: list[str]) -> dict[str, str]:
    """Raw URL segments (not percent-decoded), as the reference gives them."""
    return {name: parts[index] for index, name in route.params} if parts else {}


def is_json(headers: dict[str, str]) -> bool:
    """The reference's rule: a case-sensitive substring test on Content-Type."""
    return "application/json" in headers.get("content-type", "")


def parse_json_body(body: bytes) -> Any:
    """Parsed JSON, or None when empty or invalid (as in the reference, where an unparsable body
    reaches the function as ``null``); nesting too deep to decode counts as invalid."""
    if not body:
        return None
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        return None


def build_input(
    route: Route,
    method: str,
    headers: dict[str, str],
    query: dict[str, str],
    path_params: dict[str, str],
    body: Any,
) -> dict[str, Any]:
    """The ``HttpRequest`` without the channel refs (what a condition function receives)."""
    return {
        "query_params": query,
        "path_params": path_params,
        "headers": headers,
        "path": route.api_path_as_given,
        "method": method,
        "body": body,
        "trigger": {"type": "http", "path": route.api_path_as_given, "method": method},
    }


def redact(headers: dict[str, str]) -> dict[str, str]:
    """Headers for a log line, secrets replaced."""
    return {k: ("[REDACTED]" if k in REDACTED_HEADERS else v) for k, v in headers.items()}
