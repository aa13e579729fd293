"""The checks a configuration value passes: its type (from TOML or the environment) and
its rules (ranges, choices, patterns, URLs, addresses). pinc.config builds the sections
with them; every error names where the value came from and the key.
"""

from __future__ import annotations

import re
from typing import Any, get_origin


class ConfigError(Exception):
    """A configuration value is missing, of the wrong type or out of range."""


_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ami", "auth"): ("md5", "plain"),
    ("crm", "profile"): ("vtiger", "salesplatform"),
    ("crm", "number_format"): ("digits", "national", "plus"),
    ("log", "level"): ("debug", "info", "warning", "error"),
    ("journal", "synchronous"): ("normal", "full"),
    ("cdr", "source"): ("", "csv", "mysql"),
}


def type_name(tp: Any) -> str:
    if get_origin(tp) is tuple:
        return "a list of strings"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, str(tp)
    )


def coerce(where: str, key: str, tp: Any, value: Any, *, from_env: bool) -> Any:
    """Convert one raw value to the declared type, or raise ConfigError naming the key."""
    expected = type_name(tp)
    if from_env and isinstance(value, str):
        try:
            if tp is bool:
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            if tp is int:
                return int(value)
            if tp is float:
                return float(value)
            if get_origin(tp) is tuple:
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return value
        except ValueError:
            raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}") from None
    if get_origin(tp) is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}")
    return value


def validate(where: str, section: str, key: str, value: Any) -> None:
    choices = _CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{where}: {section}.{key} must be one of {', '.join(choices)}, got {value!r}"
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{where}: {section}.{key} must not be negative, got {value!r}")
    if key == "port" and isinstance(value, int) and not 0 < value < 65536:
        raise ConfigError(f"{where}: {section}.{key} must be a TCP port (1-65535), got {value!r}")
    if key == "listen":
        parse_listen(value, where=f"{where}: {section}.{key}")
    if key == "extension_pattern":
        try:
            re.compile(value)
        except re.error as exc:
            raise ConfigError(f"{where}: {section}.{key} is not a valid regex: {exc}") from None
    if (section, key) == ("pbx", "dial_patterns"):
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"{where}: pbx.dial_patterns: {pattern!r} is not a valid regex: {exc}"
                ) from None
    if (section, key) == ("pbx", "originate_contexts"):
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name):
                raise ConfigError(
                    f"{where}: pbx.originate_contexts: {name!r} is not a dialplan context name"
                )
    if (section, key) == ("crm", "allow_from"):
        _check_allow_from(where, value)
    if (section, key) == ("crm", "origins"):
        for origin in value:
            if not re.fullmatch(r"https?://[^\s/?#@]+/?", origin.strip()):
                raise ConfigError(
                    f"{where}: crm.origins entries are origins such as "
                    f"https://crm.example.com, got {origin!r}"
                )
    if (section, key) == ("web", "hosts"):
        for host in value:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host.strip()):
                raise ConfigError(f"{where}: web.hosts entries are host names, got {host!r}")
    if key in ("url", "public_url") and value and not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{where}: {section}.{key} must be an http(s):// URL, got {value!r}")
    if key == "timezone" and value:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{where}: {section}.{key} must be an IANA time zone such as Europe/Moscow, "
                f"got {value!r}"
            ) from None


def _check_allow_from(where: str, entries: tuple[str, ...]) -> None:
    import ipaddress

    for entry in entries:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", entry.strip()):
                raise ConfigError(
                    f"{where}: crm.allow_from entries are IP addresses, networks "
                    f"(10.0.0.0/24) or host names, got {entry!r}"
                ) from None


def parse_listen(value: str, *, where: str = "listen") -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) into its parts."""
    m = re.fullmatch(r"\[?([^\[\]]*?)\]?:(\d{1,5})", value.strip())
    if not m or not 0 <= int(m.group(2)) < 65536:
        raise ConfigError(f"{where} must be host:port such as 127.0.0.1:4573, got {value!r}")
    return m.group(1) or "0.0.0.0", int(m.group(2))
