"""Who may present the CRM secret: the CRM's own servers, and nobody else.

vtiger (and SalesPlatform, and pinc's vtiger module) call pinc server to server with
``crm.secret``: click-to-call, transfers, ListenRecord, the connector status. A browser
never has a reason to hold that secret, so a request carrying it is accepted only

- from an address in ``crm.allow_from`` (default: loopback plus the addresses of
  ``crm.url``'s host, resolved at start and every few minutes);
- not through a reverse proxy (a ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP``
  header: the peer is then the proxy, and whoever stands behind it is unknown);
- not from a browser (an ``Origin`` or ``Sec-Fetch-*`` header: vtiger's PHP client sends
  neither, every current browser sends ``Sec-Fetch-*``, so ``<img src=…/makecall?…>`` on
  any page is refused even when the victim's browser runs on the CRM's host).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import trio

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
BROWSER_HEADERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")
RESOLVE_TIMEOUT = 5.0
REFRESH_SECONDS = 300.0


def address(raw: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A peer address as an ip_address (IPv4-mapped IPv6 as IPv4), None if it is not one."""
    if not raw:
        return None
    try:
        ip = ipaddress.ip_address(raw.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_entry(entry: str) -> Network | None:
    """An IP or CIDR entry of crm.allow_from as a network; None for a host name."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


def crm_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


@dataclass(frozen=True)
class CrmPeers:
    """The networks the CRM secret is accepted from."""

    networks: tuple[Network, ...]
    described: str  # for the log: what the list was built from

    def allows(self, remote: str | None) -> bool:
        ip = address(remote)
        return ip is not None and any(ip in net for net in self.networks)


class _Names(Protocol):
    def __contains__(self, key: str, /) -> bool: ...


def proxied(headers: _Names) -> bool:
    return any(name in headers for name in FORWARDED_HEADERS)


def from_browser(headers: _Names) -> bool:
    return any(name in headers for name in BROWSER_HEADERS)


async def _resolve(host: str) -> list[Network]:
    with trio.move_on_after(RESOLVE_TIMEOUT):
        try:
            infos = await trio.socket.getaddrinfo(host, None)
        except OSError as exc:
            log.warning("crm.allow_from: cannot resolve %s: %s", host, exc)
            return []
        found = {address(str(info[4][0])) for info in infos}
        return [ipaddress.ip_network(ip) for ip in found if ip is not None]
    log.warning("crm.allow_from: resolving %s took over %.0f s", host, RESOLVE_TIMEOUT)
    return []


def literal_peers(allow_from: Iterable[str], crm_url: str) -> CrmPeers:
    """What can be known of the list without DNS (until ``resolve_peers`` has run)."""
    entries = [e.strip() for e in allow_from if e.strip()]
    if entries:
        nets = [n for n in map(parse_entry, entries) if n is not None]
        return CrmPeers(tuple(nets), ", ".join(entries))
    host = parse_entry(crm_host(crm_url) or "")
    return CrmPeers((*LOOPBACK, *([host] if host else [])), "loopback + crm.url host")


def needs_dns(allow_from: Iterable[str], crm_url: str) -> bool:
    entries = [e.strip() for e in allow_from if e.strip()]
    if not entries:
        host = crm_host(crm_url)
        entries = [host] if host else []
    return any(parse_entry(e) is None for e in entries)


async def resolve_peers(allow_from: Iterable[str], crm_url: str) -> CrmPeers:
    """``crm.allow_from`` as networks (host names resolved); its default when empty."""
    entries = [e.strip() for e in allow_from if e.strip()]
    networks: list[Network] = []
    if not entries:
        networks.extend(LOOPBACK)
        host = crm_host(crm_url)
        entries = [host] if host else []
        described = f"loopback + crm.url host {host}" if host else "loopback"
    else:
        described = ", ".join(entries)
    for entry in entries:
        net = parse_entry(entry)
        networks.extend([net] if net is not None else await _resolve(entry))
    unique = list(dict.fromkeys(networks))
    # 127.0.0.1/32 of a CRM on the same host is inside the loopback network already
    kept = [n for n in unique if not any(
        o is not n and o.version == n.version and n.subnet_of(o) for o in unique)]  # type: ignore[arg-type]
    return CrmPeers(tuple(kept), described)
