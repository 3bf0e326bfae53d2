"""Function result → HTTP response head and body (sans-I/O).

Two paths, as in the reference: a direct return (``{status_code, body, headers}``) and a stream
written to the ``response`` channel (``set_status`` / ``set_headers`` text items, binary body
chunks).  Unlike the reference, the ``headers`` of a direct return are applied (decisions.md).
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import msgspec

_encoder = msgspec.json.Encoder()
_TOKEN: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
JSON_HEADERS: Final = [(b"content-type", b"application/json")]


def error_id() -> str:
    """At most 12 hex digits from the low 48 bits of a nanosecond timestamp (reference)."""
    return format(time.time_ns() & 0xFFFF_FFFF_FFFF, "x")


def error_body(eid: str) -> bytes:
    return _encoder.encode({"error": "internal server error", "error_id": eid})


def _header(name: Any, value: Any) -> tuple[bytes, bytes] | None:
    """A valid header pair, or None (invalid names or values are skipped)."""
    if not isinstance(name, str) or not isinstance(value, str) or not _TOKEN.match(name):
        return None
    if any(c in value for c in "\r\n\0"):
        return None
    try:
        return name.lower().encode("ascii"), value.encode("latin-1")
    except UnicodeEncodeError:
        return None


def header_list(headers: Any) -> list[tuple[bytes, bytes]]:
    """Headers from ``{name: value}`` or ``["name: value", ...]``; non-strings are skipped."""
    out: list[tuple[bytes, bytes]] = []
    if isinstance(headers, dict):
        items: Any = headers.items()
    elif isinstance(headers, list):
        items = [h.split(":", 1) for h in headers if isinstance(h, str) and ":" in h]
        items = [(k.strip(), v.strip()) for k, v in items]
    else:
        return out
    for name, value in items:
        pair = _header(name, value)
        if pair is not None:
            out.append(pair)
    return out


def merge_headers(
    base: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``extra`` replaces same-named entries of ``base``."""
    if not extra:
        return base
    names = {name for name, _ in extra}
    return [h for h in base if h[0] not in names] + extra


def direct(value: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, JSON body and headers of a directly returned value."""
    status = 200
    body: Any = {}
    headers = JSON_HEADERS
    if isinstance(value, dict):
        code = value.get("status_code")
        # The reference accepts 100-999; uvicorn can only send the registered 1xx-5xx codes,
        # so 600-999 fall back to 200 here as out-of-range codes do there.
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            status = code
        if "body" in value:
            body = value["body"]
        if "headers" in value:
            headers = merge_headers(JSON_HEADERS, header_list(value["headers"]))
    return status, _encoder.encode(body), headers


class StreamHead:
    """Status and headers chosen by the control items of a ``response`` channel."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = 200
        self.headers: list[tuple[bytes, bytes]] = []

    def control(self, text: str) -> None:
        """Apply a text item; anything that is not a known control message is ignored."""
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "set_status":
            code = msg.get("status_code")
            if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
                self.status = code
        elif kind == "set_headers":
            self.headers = merge_headers(self.headers, header_list(msg.get("headers")))
