"""The commented example configuration (`pinc init`, packaging/pinc.example.toml).

One source: the text is generated from the dataclasses in :mod:`pinc.config` (names,
types and defaults) and the explanations below, so the example and the code cannot
drift apart. A key without an explanation here is a bug the packaging tests catch.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

from pinc.config import SECTIONS

HEADER = """\
# pinc configuration (TOML). Every key is shown with its default value.
# Any key can also be set in the environment as PINC_<SECTION>_<KEY>, e.g.
#   PINC_AMI_SECRET=... PINC_CRM_URL=https://crm.example/vtigercrm pinc run
# Check it with:  pinc check --config /etc/pinc/pinc.toml --connect
# The file holds secrets: keep it readable only by the pinc user (chmod 600).
"""

SECTION_HELP: dict[str, str] = {
    "ami": "Asterisk Manager Interface: how pinc logs in to Asterisk (manager.conf).",
    "pbx": "What the PBX looks like: who is an employee, where outside calls enter.",
    "journal": "pinc's own call journal (SQLite).",
    "web": "The HTTP server: vtiger's /makecall and /recording, the API, /ws, the dashboard.",
    "agi": "The FastAGI server the dialplan asks for the responsible manager.",
    "crm": 'The CRM pinc delivers calls to (vtiger PBXManager / SalesPlatform "Звонки").',
    "routing": "Responsible-manager lookups (AGI and /responsible) and number normalization.",
    "log": "Logging.",
    "runtime": "Process tuning (docs/performance.md).",
    "cdr": "Calls made while pinc was down, recovered from Asterisk's CDR at every AMI login "
    "(docs/recovery.md).",
}

KEY_HELP: dict[tuple[str, str], str] = {
    ("ami", "host"): "Asterisk's AMI address (manager.conf [general] bindaddr).",
    ("ami", "port"): "AMI TCP port (manager.conf [general] port).",
    ("ami", "username"): "The manager.conf user pinc logs in as (see packaging/asterisk/).",
    ("ami", "secret"): "That user's secret. Required.",
    ("ami", "auth"): 'Login method: "md5" (challenge, the secret never crosses the wire) '
    'or "plain".',
    ("ami", "events"): "Event classes asked for at login; pinc needs call,cdr,agent,dialplan.",
    ("ami", "filters"): "Server-side event filters (AMI Action: Filter, needs write=system), "
    'e.g. ["!Event: RTCP*"]. Prefer eventfilter= in manager.conf.',
    ("ami", "connect_timeout"): "Seconds to wait for the TCP connection and the login.",
    ("ami", "action_timeout"): "Seconds to wait for the answer to an action (Originate, ...).",
    ("ami", "ping_interval"): "Seconds between keep-alive Pings while the link is idle.",
    ("ami", "ping_timeout"): "A Ping unanswered this long drops the link and reconnects.",
    ("ami", "reconnect_min"): "First reconnect delay in seconds (doubles on each failure).",
    ("ami", "reconnect_max"): "Longest reconnect delay in seconds.",
    ("ami", "queue_size"): "Events buffered between the AMI reader and the call tracker.",
    ("pbx", "extension_pattern"): "Regex for employee extensions (phones), matched against "
    "the number in the channel name (PJSIP/101-..., Local/101@...).",
    ("pbx", "trunk_contexts"): "Dialplan contexts where outside calls enter the PBX.",
    ("pbx", "internal_contexts"): "Dialplan contexts employees' phones dial from.",
    ("pbx", "recordings_dir"): "Where MixMonitor writes recordings; /recording serves only "
    "files inside it (read-only).",
    ("pbx", "recording_cdr_field"): "CDR field carrying the recording file name "
    "(a cdr_manager.conf [mappings] entry; see packaging/asterisk/cdr_manager.conf).",
    ("pbx", "originate_channel"): "Channel that click-to-call rings first; {ext} is the "
    'employee\'s extension (e.g. "SIP/{ext}", "Local/{ext}@from-internal").',
    ("pbx", "originate_context"): "Context the originated call continues in to dial the "
    "number (vtiger's outbound context, when it sends none).",
    ("pbx", "originate_timeout"): "Seconds the employee's phone rings on click-to-call.",
    ("pbx", "stale_call_seconds"): "A call with no event for this long is closed (lost events).",
    ("pbx", "originate_contexts"): "Contexts a click-to-call request may name (vtiger sends "
    "its outbound context); any other is ignored for originate_context. Empty: "
    "originate_context alone.",
    ("pbx", "dial_patterns"): "Regexes (whole match, on the digits) of the numbers pinc "
    "may dial for click-to-call and transfer to. Empty: national numbers "
    "([routing] country_code or trunk_prefix, then national_length digits, or those digits "
    "alone). International or short numbers need a pattern, e.g. ['810\\d{6,15}', "
    "'1\\d{2}'].",
    ("pbx", "originate_per_minute_ext"): "Click-to-calls and transfers one extension may "
    "ask for per minute (more: 429).",
    ("pbx", "originate_per_minute"): "Click-to-calls and transfers per minute in all.",
    ("pbx", "resync_seconds"): "Every this many seconds pinc asks Asterisk which channels are "
    "up (CoreShowChannels) and ends, as stale, calls quiet for a minute whose channels are "
    "all gone (their Hangup events were lost). 0: only after each (re)connect.",
    ("journal", "path"): "SQLite file. Empty: /var/lib/pinc/pinc.db if writable, "
    "else ./pinc-data/pinc.db.",
    ("journal", "synchronous"): 'SQLite durability: "normal" (WAL; survives a crash of pinc) '
    'or "full" (also survives a power loss; slower).',
    ("journal", "batch_ms"): "Milliseconds changes are gathered into one transaction.",
    ("journal", "batch_max"): "Most changes per transaction.",
    ("journal", "max_pending"): "Changes held in memory while the disk refuses writes.",
    ("journal", "events_retention_days"): "Days raw call changes are kept (0: forever).",
    ("journal", "calls_retention_days"): "Days calls are kept (0: forever).",
    ("journal", "stall_seconds"): "AMI events wait and the ingest makes no progress this "
    "long: /ping says degraded, pinc_ingest_stalled is 1, one log line says what is stuck "
    "(0: no watchdog).",
    ("web", "listen"): "host:port of the HTTP server; vtiger and browsers must reach it.",
    ("web", "public_url"): "How vtiger and browsers reach pinc (recording links, the "
    "PBXManager app URL), e.g. http://pbx.example:8099. Empty: derived from listen.",
    ("web", "token"): "Bearer token for /api, /ws, /metrics and the dashboard's sign-in "
    "(at least 16 characters). Empty: generated at each start (and logged nowhere).",
    ("web", "ws_queue"): "Messages buffered per websocket client; a client this far behind "
    "is told and dropped.",
    ("web", "metrics_public"): "Serve /metrics without a token to any address "
    "(otherwise the bearer token is required, from loopback too).",
    ("web", "max_body"): "Largest request body accepted, in bytes.",
    ("web", "auth_failures_per_minute"): "Failed secrets, tokens, links or tickets one "
    "client may send in a minute; past that it gets 429 (GET /ping apart) until the minute "
    "has passed. 0: no limit.",
    ("web", "hosts"): "More host names pinc answers to, besides IP addresses, localhost and "
    "the hosts of public_url and listen (e.g. the internal name vtiger's server uses). A "
    "request naming any other host gets 421 (DNS rebinding).",
    ("web", "session_hours"): "Hours a dashboard sign-in lasts (until sign-out at most). "
    "Sessions live in pinc's memory: a restart signs everyone out.",
    ("agi", "listen"): "host:port of the FastAGI server; keep it on loopback on the PBX.",
    ("agi", "session_timeout"): "Seconds a whole AGI session may take (the dialplan waits).",
    ("agi", "read_timeout"): "Seconds to wait for each line from Asterisk.",
    ("agi", "max_sessions"): "Concurrent AGI sessions (see max_sessions_per_peer).",
    ("agi", "var_responsible"): "Channel variable set to the responsible manager's extension.",
    ("agi", "var_user"): "Channel variable set to the responsible manager's CRM user name.",
    ("agi", "var_customer"): "Channel variable set to the customer's name.",
    ("agi", "max_sessions_per_peer"): "Concurrent AGI sessions from one address. When this "
    "or max_sessions is reached, a new connection takes the place of the oldest one that "
    "has not sent its AGI environment yet (idle sockets cannot starve Asterisk); with none "
    "such, it is refused.",
    ("crm", "profile"): '"vtiger" (stock vtiger 7/8 PBXManager) or "salesplatform" '
    '(SalesPlatform "Звонки").',
    ("crm", "url"): "vtiger's base URL, e.g. https://crm.example/vtigercrm. Empty: no CRM.",
    ("crm", "secret"): 'PBXManager\'s "Vtiger Secret Key"; vtiger sends it on /makecall '
    "and pinc signs callbacks with it.",
    ("crm", "username"): "Webservice integration user (an admin) for customer lookups.",
    ("crm", "access_key"): "That user's access key (My Preferences -> User Advanced Options).",
    ("crm", "timezone"): "vtiger's $default_timezone; callback times are sent in it.",
    ("crm", "number_format"): 'Numbers sent to the CRM: "digits" (country code first: '
    '8 916… is sent as 7916…), "national" (10 digits) or "plus" (+E.164).',
    ("crm", "timeout"): "Seconds per HTTP request to the CRM.",
    ("crm", "concurrency"): "Calls delivered in parallel (each call's callbacks stay in order).",
    ("crm", "retry_min"): "First retry delay in seconds after a failed delivery.",
    ("crm", "retry_max"): "Longest retry delay in seconds.",
    ("crm", "dead_letter_hours"): "A callback still failing after this many hours is dead "
    "(see `pinc outbox list --dead`).",
    ("crm", "origins"): "Origins of the CRM's web pages as browsers reach them "
    '(e.g. "https://crm.example.com"), allowed to open /ws with a ticket of pinc\'s vtiger '
    "module (its popup card). Empty: the origin of url.",
    ("crm", "allow_from"): "Addresses that may send crm.secret (click-to-call, /transfer, "
    "/responsible, SalesPlatform's ListenRecord, the module's /ping): IPs, networks "
    '("10.0.0.0/24") or host names. Empty: loopback plus the addresses of url\'s host. '
    "The secret from anywhere else, through a proxy or from a browser is refused.",
    ("crm", "default_user"): "CRM user (user name or extension) who owns a missed call, or "
    "one answered by an extension with no CRM user, when the customer has no responsible "
    "manager. Empty: such calls stay with the CRM's admin.",
    ("crm", "fallback_user"): "CRM user (user name or extension) the calls of an extension "
    "with no CRM user are filed under. Empty: they are held back (pinc outbox list).",
    ("crm", "directory_refresh"): "Seconds between reads of the CRM's users and their "
    "extensions (needs username and access_key).",
    ("routing", "deadline"): "Seconds a responsible-manager lookup may take before the "
    "dialplan goes on without an answer.",
    ("routing", "cache_ttl"): "Seconds a found manager is cached.",
    ("routing", "negative_ttl"): "Seconds a not-found answer is cached.",
    ("routing", "journal_fallback_days"): "When the CRM has no answer, route to the employee "
    "who last talked with the number within this many days (0: never).",
    ("routing", "country_code"): "Country code used to normalize numbers.",
    ("routing", "trunk_prefix"): "National trunk prefix replaced by the country code "
    "(8 in Russia).",
    ("routing", "national_length"): "Digits of a national number without the country code.",
    ("log", "level"): '"debug", "info", "warning" or "error".',
    ("log", "file"): "Log file. Empty: standard error (the journal under systemd).",
    ("runtime", "gc_pacing"): "Keep the garbage collector's full passes short: freeze what "
    "survives them, collect everything every 5 minutes (pinc_gc_* metrics). false: Python's "
    "own collector, untouched.",
    ("cdr", "source"): 'Where to read CDR: "" (no recovery), "csv" (cdr_csv\'s Master.csv; '
    'needs loguniqueid and newcdrcolumns) or "mysql" (a cdr table, e.g. FreePBX\'s).',
    ("cdr", "csv_path"): "cdr_csv's Master.csv; pinc only reads it.",
    ("cdr", "mysql_host"): "MySQL/MariaDB server holding the cdr table.",
    ("cdr", "mysql_port"): "Its TCP port.",
    ("cdr", "mysql_user"): "A user that may SELECT from the cdr table.",
    ("cdr", "mysql_password"): "That user's password (never logged).",
    ("cdr", "mysql_database"): "The database (FreePBX: asteriskcdrdb).",
    ("cdr", "mysql_table"): "The table (FreePBX: cdr).",
    ("cdr", "timezone"): "Time zone of CDR times (an IANA name). Empty: this host's, which is "
    "right when pinc runs on the PBX and cdr_csv's usegmtime is off.",
    ("cdr", "lookback_hours"): "After a long downtime, recover at most this far back "
    "(pinc backfill --since reaches further).",
    ("cdr", "timeout"): "Seconds one recovery may take (reading the CDR included).",
}


def toml_value(value: Any) -> str:
    """One TOML value; strings with backslashes use literal quotes so regexes read as typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value)
    if "\\" in text and "'" not in text and "\n" not in text:
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False)


def missing_help() -> list[str]:
    """Config keys that have no explanation here (must be empty)."""
    return [
        f"{name}.{f.name}"
        for name, cls in SECTIONS.items()
        for f in fields(cls)
        if (name, f.name) not in KEY_HELP
    ]


def _defaults(cls: type[Any]) -> dict[str, Any]:
    instance = cls()
    return {f.name: getattr(instance, f.name) for f in fields(cls)}


def render_example() -> str:
    """The example pinc.toml: every section and key, its default, what it means."""
    out = [HEADER]
    for name, cls in SECTIONS.items():
        out.append(f"\n# {SECTION_HELP.get(name, '')}\n[{name}]\n")
        for key, value in _defaults(cls).items():
            for line in textwrap.wrap(KEY_HELP.get((name, key), ""), 88) or [""]:
                out.append(f"# {line}\n")
            out.append(f"{key} = {toml_value(value)}\n")
    return "".join(out)


def render_markdown_table() -> str:
    """The key reference of docs/configuration.md, from the same source."""
    out: list[str] = []
    for name, cls in SECTIONS.items():
        out.append(f"\n### [{name}]\n\n{SECTION_HELP.get(name, '')}\n\n")
        out.append("| key | default | meaning |\n|---|---|---|\n")
        for key, value in _defaults(cls).items():
            shown = toml_value(value).replace("|", "\\|")
            meaning = KEY_HELP.get((name, key), "").replace("|", "\\|")
            out.append(f"| `{key}` | `{shown}` | {meaning} |\n")
    return "".join(out)


def write_example_config(path: Path) -> None:
    """Write the example to ``path`` with owner-only permissions (it will hold secrets)."""
    path = Path(path)
    text = render_example()
    # Create with 0600 from the start, so the file is never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
    finally:
        if fd >= 0:
            os.close(fd)


if __name__ == "__main__":  # python -m pinc.example > packaging/pinc.example.toml
    import sys

    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(render_markdown_table())
    else:
        sys.stdout.write(render_example())
