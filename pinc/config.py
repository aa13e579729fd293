"""Configuration: one TOML file plus ``PINC_<SECTION>_<KEY>`` environment overrides.

Every section is a frozen dataclass; every key has a default that works on a stock
Asterisk host. Errors name the file, the key and what was expected, so an
administrator can fix them without reading the source.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from pinc.config_checks import ConfigError as ConfigError  # re-exported: callers import it here
from pinc.config_checks import coerce, validate
from pinc.config_checks import parse_listen as parse_listen

DEFAULT_CONFIG_PATH = Path("/etc/pinc/pinc.toml")
SECRET_KEYS = frozenset({"secret", "token", "access_key", "mysql_password"})
URL_KEYS = frozenset({"url", "public_url"})
URL_FIELDS = (("crm", "url"), ("web", "public_url"))
# scheme://user:password@ in any text: the credentials part
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact_url(text: str) -> str:
    """``https://user:pass@host/`` -> ``https://***@host/``, in a URL or any text."""
    return _USERINFO.sub(r"\1***@", text)


def _url_password(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pinc"
    secret: str = ""
    auth: str = "md5"  # "md5" (challenge) or "plain"
    events: str = "call,cdr,agent,dialplan"  # the Events: classes asked for at login
    filters: tuple[str, ...] = ()  # server-side Filter regexes (Action: Filter)
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    queue_size: int = 10_000  # bound of the event channel to consumers


@dataclass(frozen=True)
class PbxConfig:
    extension_pattern: str = r"^\d{2,5}$"
    trunk_contexts: tuple[str, ...] = ("from-trunk",)
    internal_contexts: tuple[str, ...] = ("from-internal",)
    recordings_dir: str = "/var/spool/asterisk/monitor"
    recording_cdr_field: str = "RecordingFile"  # a cdr_manager.conf mapping, if any
    originate_channel: str = "PJSIP/{ext}"
    originate_context: str = "from-internal"
    originate_timeout: float = 30.0
    stale_call_seconds: int = 4 * 3600  # a call with no event this long is closed
    originate_contexts: tuple[str, ...] = ()  # contexts a request may name; empty: the default
    dial_patterns: tuple[str, ...] = ()  # numbers pinc may dial; empty: national numbers
    originate_per_minute_ext: int = 10  # originates and transfers per extension per minute
    originate_per_minute: int = 120  # ... and in all
    resync_seconds: float = 300.0  # CoreShowChannels this often ends calls whose Hangup was lost


@dataclass(frozen=True)
class JournalConfig:
    path: str = ""  # empty: /var/lib/pinc/pinc.db if writable, else ./pinc-data/pinc.db
    batch_ms: int = 5
    batch_max: int = 300
    max_pending: int = 100_000  # changes held in memory while the disk refuses writes
    events_retention_days: int = 90
    calls_retention_days: int = 0  # 0 keeps calls forever
    synchronous: str = "normal"  # "normal" (WAL: survives a crash) or "full" (also power loss)
    stall_seconds: float = 30.0  # events wait, nothing moves this long: /ping degraded (0: off)


@dataclass(frozen=True)
class WebConfig:
    listen: str = "0.0.0.0:8099"
    public_url: str = ""
    token: str = ""  # bearer token for /api, /ws, / ; empty: generated at first start
    ws_queue: int = 256  # per websocket client; a client that falls this far behind is dropped
    metrics_public: bool = False  # /metrics without a token from any address
    max_body: int = 65_536
    session_hours: float = 12.0  # a dashboard sign-in lasts this long (or until sign-out)
    auth_failures_per_minute: int = 20  # failed credentials a client may send; 0: no limit
    hosts: tuple[str, ...] = ()  # more host names pinc answers to (Host header)


@dataclass(frozen=True)
class AgiConfig:
    listen: str = "127.0.0.1:4573"
    session_timeout: float = 3.0
    read_timeout: float = 2.0
    max_sessions: int = 1000
    var_responsible: str = "PINC_RESPONSIBLE"
    var_user: str = "PINC_RESPONSIBLE_USER"
    var_customer: str = "PINC_CUSTOMER_NAME"
    max_sessions_per_peer: int = 500  # concurrent sessions from one address


@dataclass(frozen=True)
class CrmConfig:
    profile: str = "vtiger"  # "vtiger" or "salesplatform"
    url: str = ""  # empty: run without a CRM
    secret: str = ""  # vtiger PBXManager secret key (callbacks, /makecall, /recording)
    username: str = ""  # webservice integration user
    access_key: str = ""
    timezone: str = "UTC"
    number_format: str = "digits"  # "digits", "national" (10 digits), "plus" (+E.164)
    timeout: float = 10.0
    concurrency: int = 8
    retry_min: float = 1.0
    retry_max: float = 300.0
    dead_letter_hours: float = 72.0
    allow_from: tuple[str, ...] = ()  # who may send crm.secret; empty: loopback + url's host
    origins: tuple[str, ...] = ()  # the CRM's pages' origins, for /ws with a ticket; empty: url's
    default_user: str = ""  # CRM user (name or extension) who owns calls nobody else owns
    fallback_user: str = ""  # CRM user for calls of extensions without one; empty: hold
    directory_refresh: float = 300.0  # seconds between reads of the CRM's users


@dataclass(frozen=True)
class RoutingConfig:
    deadline: float = 1.0
    cache_ttl: float = 300.0
    negative_ttl: float = 60.0
    journal_fallback_days: int = 30  # 0: never answer from the journal
    country_code: str = "7"
    trunk_prefix: str = "8"
    national_length: int = 10


@dataclass(frozen=True)
class CdrConfig:
    source: str = ""  # "" (no recovery), "csv" (Master.csv) or "mysql" (a cdr table)
    csv_path: str = "/var/log/asterisk/cdr-csv/Master.csv"
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "asteriskcdr"
    mysql_password: str = ""
    mysql_database: str = "asteriskcdrdb"
    mysql_table: str = "cdr"
    timezone: str = ""  # the zone of CDR times; empty: this host's (pinc runs on the PBX)
    lookback_hours: float = 24.0  # the furthest back a recovery after a downtime reaches
    timeout: float = 20.0  # seconds one recovery may take


@dataclass(frozen=True)
class RuntimeConfig:
    gc_pacing: bool = True  # freeze long-lived objects out of full GC passes (short pauses)


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    file: str = ""  # empty: standard error


@dataclass(frozen=True)
class Config:
    ami: AmiConfig = field(default_factory=AmiConfig)
    pbx: PbxConfig = field(default_factory=PbxConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    web: WebConfig = field(default_factory=WebConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    crm: CrmConfig = field(default_factory=CrmConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cdr: CdrConfig = field(default_factory=CdrConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    source: str = "(defaults)"  # where the configuration came from

    def journal_path(self) -> Path:
        """The effective journal file."""
        if self.journal.path:
            return Path(self.journal.path)
        system = Path("/var/lib/pinc")
        if system.is_dir() and os.access(system, os.W_OK):
            return system / "pinc.db"
        return Path("pinc-data") / "pinc.db"

    def as_dict(self, *, masked: bool = True) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            values: dict[str, Any] = {}
            for f in fields(section):
                value = getattr(section, f.name)
                if masked and f.name in SECRET_KEYS and value:
                    value = "********"
                elif masked and f.name in URL_KEYS and isinstance(value, str):
                    value = redact_url(value)
                if isinstance(value, tuple):
                    value = list(value)
                values[f.name] = value
            out[name] = values
        return out

    def secrets(self) -> list[str]:
        """Every secret value set, for log scrubbing and tests."""
        found = [
            getattr(getattr(self, name), f.name)
            for name in SECTIONS
            for f in fields(getattr(self, name))
            if f.name in SECRET_KEYS
        ]
        # a password inside a URL (https://user:pass@crm.example/) is a secret too
        found += [_url_password(getattr(getattr(self, n), k)) for n, k in URL_FIELDS]
        return [s for s in found if s]


SECTIONS: dict[str, type[Any]] = {
    "ami": AmiConfig,
    "pbx": PbxConfig,
    "journal": JournalConfig,
    "web": WebConfig,
    "agi": AgiConfig,
    "crm": CrmConfig,
    "routing": RoutingConfig,
    "log": LogConfig,
    "cdr": CdrConfig,
    "runtime": RuntimeConfig,
}

def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Load the configuration.

    ``path`` None means the default file if it exists, else built-in defaults.
    ``overrides`` (section -> key -> value) win over the file and the environment;
    the CLI and tests use them.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    source = "(defaults)"
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such file (create one with `pinc init {p}`)") from None
        except PermissionError:
            raise ConfigError(f"{p}: permission denied (pinc needs to read it)") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None

    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(SECTIONS)})")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        known = {f.name for f in fields(cls)}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {name}.{key} (known: {', '.join(sorted(known))})"
                )
            values[key] = coerce(source, f"{name}.{key}", hints[key], value, from_env=False)
        for key in known:
            env_name = f"PINC_{name.upper()}_{key.upper()}"
            if env_name in env:
                values[key] = coerce(
                    f"environment {env_name}",
                    f"{name}.{key}",
                    hints[key],
                    env[env_name],
                    from_env=True,
                )
        for key, value in (overrides or {}).get(name, {}).items():
            if key not in known:
                raise ConfigError(f"override: unknown key {name}.{key}")
            values[key] = coerce("override", f"{name}.{key}", hints[key], value, from_env=False)
        for key, value in values.items():
            validate(source, name, key, value)
        sections[name] = cls(**values)
    return Config(**sections, source=source)


def replace(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with some keys changed (tests and the demo use it)."""
    changes = {
        name: dataclasses.replace(getattr(config, name), **values)
        for name, values in sections.items()
    }
    return dataclasses.replace(config, **changes)

