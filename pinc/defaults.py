"""Defaults pinc derives when it starts, from keys left empty.

With a CRM, ``web.public_url`` is what the CRM's recording links point at: when it is
empty it is derived from a ``web.listen`` on one address; when pinc listens on every
address it cannot tell, and refuses to start saying what to set (before 0.2 it started and
silently sent no recording links).
"""

from __future__ import annotations

from pinc.config import Config, ConfigError, parse_listen, replace

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})


def public_url_of(config: Config) -> str:
    """``web.public_url``, else one derived from a ``web.listen`` on one address ("" when
    pinc listens on every address, or on a port the system picks)."""
    if config.web.public_url:
        return config.web.public_url.rstrip("/")
    host, port = parse_listen(config.web.listen)
    if host in _WILDCARD_HOSTS or port == 0:
        return ""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def with_public_url(config: Config) -> Config:
    """The configuration pinc runs with: with a CRM, ``web.public_url`` is what the CRM's
    recording links point at, so it is derived from ``web.listen`` when empty, and a
    listen on every address refuses to start with what to set."""
    if config.web.public_url or not config.crm.url:
        return config
    derived = public_url_of(config)
    if derived:
        return replace(config, web={"public_url": derived})
    if parse_listen(config.web.listen)[1] == 0:
        return config  # a port picked at bind time (tests): no recording links
    raise ConfigError(
        f"{config.source}: web.public_url is empty and web.listen ({config.web.listen}) "
        "listens on every address, so pinc cannot tell the CRM where its recordings are: "
        "set web.public_url to the address the CRM's users reach pinc at (e.g. "
        'public_url = "http://pbx.example.com:8099"), or listen on that one address'
    )
