"""Which pages may drive pinc from a browser: the Host and Origin rules. Pure: no I/O.

A browser sends cookies (the dashboard's session) to pinc from any page of the same
*site*, and every port of 127.0.0.1 is the same site; a page can also post a
``text/plain`` body to another origin without a CORS preflight. So:

- **Host** must name pinc: an IP literal, ``localhost``, the host of ``web.public_url``
  or of ``web.listen``. Anything else (a DNS-rebinding attacker's name) gets 421.
- **Origin**, on every state-changing request (POST, PUT, PATCH, DELETE) and on the
  websocket: absent (server to server: vtiger, curl, pinc's vtiger module), or pinc's own
  origin (``web.public_url``'s, or the origin the request itself addressed), or, for a
  ``/ws`` connection that carries a ticket of pinc's vtiger module, the CRM's origin
  (``crm.url``'s: the popup card runs on the CRM's pages). Anything else gets 403. A
  browser's ``Sec-Fetch-Site`` backs this up: ``Origin: null`` passes only when it says
  ``same-origin``, and no Origin at all only when it does not say another site.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower case, without a default port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def host_name(host_header: str) -> str:
    """The name part of a Host header (no port, no IPv6 brackets), lower case."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Origins:
    names: frozenset[str]  # host names pinc answers to (IP literals always pass)
    own: frozenset[str]  # pinc's configured origin(s)
    crm: frozenset[str]  # the origins of the CRM's pages (crm.origins, else crm.url's)

    @classmethod
    def from_config(
        cls,
        public_url: str,
        listen_host: str,
        crm_url: str,
        *,
        hosts: tuple[str, ...] = (),
        crm_origins: tuple[str, ...] = (),
    ) -> Origins:
        names = {"localhost", *(h.strip().lower() for h in hosts if h.strip())}
        own: set[str] = set()
        if public_url:
            found = origin_of(public_url)
            if found:
                own.add(found)
                names.add(host_name(urlsplit(public_url).netloc.rpartition("@")[2]))
        if listen_host.lower() not in _WILDCARDS:
            names.add(listen_host.lower().strip("[]"))
        crm = [origin_of(o) for o in crm_origins] if crm_origins else [origin_of(crm_url or "")]
        return cls(frozenset(names), frozenset(own), frozenset(o for o in crm if o))

    def host_ok(self, host_header: str | None) -> bool:
        if host_header is None:
            return True  # HTTP/1.0 without Host: nothing to check, nothing to rebind
        name = host_name(host_header)
        return _is_ip(name) or name in self.names

    def origin_ok(
        self,
        origin: str | None,
        *,
        scheme: str,
        host_header: str | None,
        fetch_site: str | None = None,
        ticket: bool = False,
    ) -> bool:
        """``fetch_site``: the browser's own ``Sec-Fetch-Site``, which no script can set.
        pinc's pages send ``Referrer-Policy: no-referrer``, and with it Chromium sends
        ``Origin: null`` on their form posts (sign-in, sign-out): ``null`` passes only
        when the browser says the request came from the same origin."""
        if origin is None:
            return fetch_site not in ("same-site", "cross-site")
        if origin.strip() == "null":
            return fetch_site == "same-origin"
        given = origin_of(origin)
        if given is None:  # garbage
            return False
        if given in self.own:
            return True
        if host_header and given == origin_of(f"{_http(scheme)}://{host_header}"):
            return True
        return ticket and given in self.crm


def _http(scheme: str) -> str:
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)
