"""Which URLs an HTTP-invoked function may point at (the reference's ``security`` settings).

Defaults are strict: https only and no private addresses, so that a worker cannot make the
engine call into its own network.  DNS names are resolved to check the addresses they give.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from urllib.parse import urlsplit

import attrs


@attrs.define(frozen=True)
class SecurityConfig:
    url_allowlist: list[str] = attrs.field(factory=list)
    """Host glob patterns (``*.example.com``); empty allows any host."""
    block_private_ips: bool = True
    require_https: bool = True


class UrlRefused(Exception):
    """The URL is not allowed; the message says which rule refused it."""


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    broadcast = isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address(
        "255.255.255.255"
    )
    documentation = any(
        ip in ipaddress.ip_network(net)
        for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
        if ipaddress.ip_network(net).version == ip.version
    )
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or broadcast
        or documentation
    )


async def check_url(url: str, security: SecurityConfig) -> None:
    """Raise :class:`UrlRefused` unless ``url`` passes every configured rule."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UrlRefused(f"invalid URL {url!r}: expected http(s)://host/...")
    if security.require_https and parts.scheme != "https":
        raise UrlRefused(f"URL {url!r} is not https (security.require_https is on)")
    patterns = security.url_allowlist or ["*"]
    if not any(fnmatch.fnmatchcase(host.lower(), p.lower()) for p in patterns):
        raise UrlRefused(f"host {host!r} is not in security.url_allowlist {patterns}")
    if not security.block_private_ips:
        return
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UrlRefused(f"cannot resolve host {host!r}: {exc}") from None
        addresses = sorted({str(info[4][0]) for info in infos})
    for address in addresses:
        if _private(address):
            raise UrlRefused(
                f"host {host!r} resolves to private address {address} "
                "(security.block_private_ips is on)"
            )
