"""``pinc check --connect``: both ends checked, as a checklist an administrator can act on.

AMI: the login, Asterisk's version, whether the AMI user may read the event classes pinc
asks for, the extensions the PBX has, and whether the dialplan reads the variable pinc's
AGI sets (the last three need the AMI ``command`` privilege; without it they are advice).
CRM: the callback URL reachable and the secret accepted, tried harmlessly (a
``callstatus`` vtiger does nothing with), the webservice login, the CRM's users with
extensions against the PBX's extensions, recording links, and the time zone.
Nothing here changes anything in Asterisk or the CRM.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from pinc.ami.protocol import NEED_DATA, AMIConnection, Banner, Kind, Message, encode_action
from pinc.config import Config, ConfigError
from pinc.crm.directory import user_of_record
from pinc.crm.numbers import is_extension
from pinc.crm.replies import classify
from pinc.crm.vtiger import CALLBACK_PATH
from pinc.crm.webservice import CrmLookupError, VtigerWebservice
from pinc.defaults import public_url_of, with_public_url

MARKS = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]", "info": "[info]"}
CHECK_STATUS = "PincCheck"  # a callstatus vtiger's PBXManager ignores: nothing is written


@dataclass
class Item:
    level: str  # ok, warn, fail, info
    title: str
    details: list[str] = field(default_factory=list)


@dataclass
class Facts:
    """What the AMI side found that the CRM side compares with."""

    extensions: set[str] = field(default_factory=set)


# --- AMI ---------------------------------------------------------------------------------


class _Ami:
    """A short AMI session of its own (sans-IO parser, trio stream)."""

    def __init__(self, stream: trio.SocketStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.parser = AMIConnection()
        self.banner: Banner | None = None
        self._n = 0

    async def _next(self) -> Banner | Message:
        with trio.fail_after(self.timeout):
            while True:
                msg = self.parser.next_message()
                if msg is not NEED_DATA:
                    assert isinstance(msg, Banner | Message)
                    return msg
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError("Asterisk closed the connection")
                self.parser.feed(data)

    async def action(self, name: str, fields: dict[str, str]) -> tuple[Message, list[Message]]:
        """An action's response and, for a list action, its events."""
        self._n += 1
        action_id = f"pinc-check-{self._n}"
        await self.stream.send_all(encode_action(name, fields, action_id=action_id))
        response: Message | None = None
        events: list[Message] = []
        while True:
            msg = await self._next()
            if isinstance(msg, Banner):
                self.banner = msg
                continue
            if msg.action_id != action_id:
                continue
            if msg.kind is Kind.RESPONSE:
                response = msg
                if msg.get("EventList").lower() != "start":
                    return response, events
            elif msg.kind is Kind.EVENT:
                if msg.get("EventList").lower() == "complete":
                    assert response is not None
                    return response, events
                events.append(msg)

    async def login(self, config: Config) -> None:
        first = await self._next()
        if not isinstance(first, Banner):
            raise EOFError("no AMI banner")
        self.banner = first
        cfg = config.ami
        fields = {"Username": cfg.username, "Events": "off"}
        if cfg.auth.lower() == "md5":
            reply, _ = await self.action("Challenge", {"AuthType": "MD5"})
            fields |= {"AuthType": "MD5", "Key": hashlib.md5(
                (reply.get("Challenge") + cfg.secret).encode()).hexdigest()}
        else:
            fields["Secret"] = cfg.secret
        reply, _ = await self.action("Login", fields)
        if reply.name != "Success":
            raise PermissionError(reply.get("Message") or reply.name)

    async def command(self, text: str) -> list[str] | None:
        """CLI output, or None without the ``command`` privilege."""
        reply, _ = await self.action("Command", {"Command": text})
        if reply.name != "Success":
            return None
        lines = reply.get_all("Output")
        return lines or reply.get("Output").splitlines()


async def _ami_checks(config: Config, facts: Facts) -> list[Item]:
    cfg = config.ami
    where = f"AMI {cfg.host}:{cfg.port}"
    try:
        with trio.fail_after(cfg.connect_timeout):
            stream = await trio.open_tcp_stream(cfg.host, cfg.port)
    except (OSError, trio.TooSlowError) as exc:
        return [Item("fail", f"{where}: cannot connect ({exc or 'timed out'})",
                     ["is Asterisk running, and ami.host / ami.port right (manager.conf)?"])]
    items: list[Item] = []
    ami = _Ami(stream, cfg.action_timeout)
    try:
        try:
            await ami.login(config)
        except PermissionError as exc:
            return [Item("fail", f"{where}: login refused for {cfg.username!r}: {exc}",
                         ["ami.username / ami.secret must match manager.conf"])]
        reply, _ = await ami.action("CoreSettings", {})
        version = reply.get("AsteriskVersion") or "unknown"
        banner = ami.banner.version if ami.banner else "?"
        items.append(Item("ok", f"{where}: logged in as {cfg.username!r}; Asterisk {version}, "
                                f"AMI {banner}"))
        items.append(await _event_classes(ami, config))
        await _pbx_extensions(ami, config, facts)
        items.append(await _dialplan(ami, config))
        await ami.action("Logoff", {})
    except (EOFError, OSError, trio.TooSlowError, ValueError) as exc:
        items.append(Item("fail", f"{where}: {exc or 'timed out'}"))
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await stream.aclose()
    return items


async def _event_classes(ami: _Ami, config: Config) -> Item:
    wanted = [c.strip() for c in config.ami.events.split(",") if c.strip()]
    out = await ami.command(f"manager show user {config.ami.username}")
    if out is None:
        return Item("info", f"AMI event classes asked: {', '.join(wanted)}", [
            "(pinc's AMI user may not run CLI commands, so this is not checked) manager.conf "
            f"[{config.ami.username}] read = must include {','.join(wanted)}"])
    perms = next((line.split(":", 1)[1] for line in out if "read perm" in line), None)
    if perms is None:
        return Item("info", f"AMI event classes asked: {', '.join(wanted)}", [
            f"(not checked: no 'read perm' in 'manager show user {config.ami.username}') "
            f"manager.conf [{config.ami.username}] read = must include {','.join(wanted)}"])
    have = {p.strip() for p in perms.split(",")}
    missing = [c for c in wanted if c not in have and "all" not in have]
    if missing:
        return Item("fail", f"AMI user {config.ami.username!r} may not read "
                            f"{', '.join(missing)} events", [
            f"add them to read = in manager.conf [{config.ami.username}], then "
            "'manager reload'; without them pinc sees no calls"])
    return Item("ok", f"AMI event classes {', '.join(wanted)} readable by "
                      f"{config.ami.username!r}")


async def _pbx_extensions(ami: _Ami, config: Config, facts: Facts) -> None:
    for action, event, key in (("PJSIPShowEndpoints", "EndpointList", "ObjectName"),
                               ("SIPpeers", "PeerEntry", "ObjectName")):
        reply, events = await ami.action(action, {})
        if reply.name != "Success":
            continue
        for e in events:
            name = e.get(key)
            if e.name == event and is_extension(name, config.pbx.extension_pattern):
                facts.extensions.add(name)


async def _dialplan(ami: _Ami, config: Config) -> Item:
    var = config.agi.var_responsible
    port = config.agi.listen.rpartition(":")[2]
    title = f"dialplan: pinc's AGI sets ${{{var}}} (agi.var_responsible)"
    advice = [f"exten => ...,n,AGI(agi://127.0.0.1:{port}/responsible) then "
              f"Dial(PJSIP/${{{var}}},...) when it is not empty "
              "(packaging/asterisk/extensions-pinc.conf)"]
    out = await ami.command("dialplan show")
    if out is None:
        return Item("info", title, ["(not checked: the AMI user may not run CLI commands)",
                                    *advice])
    text = "\n".join(out)
    agi = re.findall(r"\bAGI\(([^,)]*)", text)
    reads = "${" + var + "}" in text
    if reads and agi:
        return Item("ok", title, [f"the dialplan calls {', '.join(sorted(set(agi))[:3])} "
                                  f"and reads ${{{var}}}"])
    if agi and not reads:
        return Item("warn", title, [f"the dialplan calls {', '.join(sorted(set(agi))[:3])} "
                                    f"but never reads ${{{var}}}: set agi.var_responsible "
                                    "to the variable it reads", *advice])
    return Item("warn", title, ["no AGI() in the dialplan: calls are not routed "
                                "to the responsible manager", *advice])


# --- CRM ---------------------------------------------------------------------------------


async def _crm_checks(config: Config, facts: Facts) -> list[Item]:
    crm = config.crm
    if not crm.url:
        return [Item("info", "CRM: crm.url is empty, pinc runs without a CRM")]
    items = [await _callback(config)]
    items += _recording_links(config)
    ws = VtigerWebservice(config)
    try:
        items += await _webservice(config, ws, facts)
    finally:
        await ws.aclose()
    items.append(_timezone(config, ws.login_info))
    return items


async def _callback(config: Config) -> Item:
    url = config.crm.url.rstrip("/") + CALLBACK_PATH
    data = {"vtigersignature": config.crm.secret, "callstatus": CHECK_STATUS,
            "callUUID": "pinc-check"}
    try:
        async with httpx.AsyncClient(timeout=config.crm.timeout,
                                     headers={"User-Agent": "pinc"}) as client:
            response = await client.post(url, data=data)
    except httpx.HTTPError as exc:
        return Item("fail", f"CRM callback {url}: cannot reach it ({exc or type(exc).__name__})",
                    ["crm.url must be the vtiger root this host can reach"])
    outcome = classify(response.status_code, response.text, url)
    if outcome.result == "ok":
        return Item("ok", f"CRM callback {url}: reachable, the secret is accepted")
    if outcome.result == "auth":
        return Item("fail", f"CRM callback {url}: the CRM refuses the secret", [
            "crm.secret must equal PBXManager's Vtiger Secret Key (Settings -> Integration "
            "-> PBXManager)"])
    return Item("fail", f"CRM callback {url}: {outcome.error}")


def _recording_links(config: Config) -> list[Item]:
    try:
        derived = with_public_url(config)
    except ConfigError as exc:
        return [Item("fail", "recording links: pinc would refuse to start", [str(exc)])]
    base = public_url_of(derived)
    if not base:
        return [Item("warn", "recording links: none (web.public_url is empty)")]
    how = "" if config.web.public_url else " (derived from web.listen)"
    return [Item("ok", f"recording links point at {base}{how}", [
        "the CRM's users (stock vtiger) or its server (SalesPlatform) must reach it"])]


async def _webservice(config: Config, ws: VtigerWebservice, facts: Facts) -> list[Item]:
    crm = config.crm
    if not (crm.username and crm.access_key):
        level = "fail" if crm.profile == "salesplatform" else "warn"
        return [Item(level, "CRM webservice: crm.username / crm.access_key not set", [
            "without them pinc cannot read the CRM's users: it cannot tell which extensions "
            "are CRM users (calls of the others may be misfiled), nor find customers' names"
            + ("" if crm.profile == "salesplatform" else " or responsible managers")])]
    try:
        info = await ws.login()
    except CrmLookupError as exc:
        return [Item("fail", f"CRM webservice login as {crm.username!r}: {exc}")]
    items = [Item("ok", f"CRM webservice: logged in as {crm.username!r} "
                        f"({info.get('vtigerVersion') or 'vtiger'})")]
    try:
        users = [user_of_record(r) for r in await ws.users()]
    except CrmLookupError as exc:
        items.append(Item("fail", f"CRM users cannot be read: {exc}", [
            "the webservice user must be an admin (vtiger refuses Users to others)"]))
        return items
    mapped = {u.extension: u for u in users if u.active and u.extension}
    items.append(Item("ok" if mapped else "fail", f"CRM users with an extension: {len(mapped)}",
                      [f"{ext} = {u.user_name}" for ext, u in sorted(mapped.items())][:50]))
    seen = facts.extensions | _journal_extensions(config)
    unmapped = sorted(seen - set(mapped))
    if unmapped:
        fix = ("their calls go out under crm.fallback_user" if crm.fallback_user
               else "their outbound calls are held back (pinc outbox list)")
        items.append(Item("warn", f"PBX extensions with no CRM user: {', '.join(unmapped)}", [
            f"{fix}; calls they answer go to the responsible manager. Set each one's CRM "
            "Phone Extension in the CRM if it is a person's"]))
    elif seen:
        items.append(Item("ok", f"every PBX extension seen ({len(seen)}) has a CRM user"))
    for key in ("default_user", "fallback_user"):
        who = getattr(crm, key)
        if who and not (who in mapped or any(u.user_name == who for u in mapped.values())):
            items.append(Item("fail", f"crm.{key} = {who!r} is no CRM user with an extension"))
    if not crm.default_user and crm.profile == "salesplatform":
        items.append(Item("warn", "crm.default_user is empty: a missed call that rang no CRM "
                                  "user, of a customer no manager is responsible for, leaves "
                                  "no row in SalesPlatform (its rows belong to users)"))
    elif not crm.default_user:
        items.append(Item("info", "crm.default_user is empty: missed calls of customers no "
                                  "manager is responsible for stay with the CRM's admin"))
    return items


def _journal_extensions(config: Config) -> set[str]:
    """Extensions that rang or placed calls, as the journal saw them."""
    path = config.journal_path()
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2) as db:
            rows = db.execute("SELECT ext FROM legs UNION SELECT answered_by FROM calls "
                              "UNION SELECT from_number FROM calls WHERE direction != 'inbound'"
                              ).fetchall()
    except sqlite3.Error:
        return set()
    return {str(r[0]) for r in rows if is_extension(r[0], config.pbx.extension_pattern)}


def _timezone(config: Config, login: dict[str, Any]) -> Item:
    tz = config.crm.timezone
    details = [f"callback times are sent in crm.timezone = {tz}; it must equal $default_timezone "
               "in the CRM's config.inc.php (stock vtiger: UTC; the SalesPlatform lab: "
               "Europe/Moscow), not a user's time zone"]
    user_tz = login.get("time_zone")
    if user_tz and user_tz != tz:
        details.append(f"the webservice user's own time zone is {user_tz}: it only changes "
                       "how vtiger displays times, keep crm.timezone at $default_timezone")
    return Item("info", f"time zone: {tz}", details)


# --- the checklist ---------------------------------------------------------------------------


async def _all(config: Config) -> list[Item]:
    facts = Facts()
    items = await _ami_checks(config, facts)
    items += await _crm_checks(config, facts)
    return items


def connect_checklist(config: Config) -> tuple[bool, str]:
    """Run every check; (nothing failed, the checklist as text)."""
    items = trio.run(_all, config)
    lines = []
    for item in items:
        lines.append(f"{MARKS[item.level]} {item.title}")
        lines += [f"        {d}" for d in item.details]
    return not any(i.level == "fail" for i in items), "\n".join(lines)
