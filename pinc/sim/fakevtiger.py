"""A tiny stand-in for vtiger's PBXManager, for `pinc demo`.

It accepts the callbacks pinc delivers (``/modules/PBXManager/callbacks/PBXManager.php``),
checks ``vtigersignature``, keeps call records the way vtiger's PBXManager would
(keyed by ``callUUID``; per user for SalesPlatform's DialBegin), answers StartApp with
vtiger's XML, and shows both the records and the raw callbacks on a page of its own.
It is a plain ASGI app on hypercorn (no Quart: nothing here needs it). Memory is bounded.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger(__name__)

CALLBACK_PATH = "/modules/PBXManager/callbacks/PBXManager.php"
MAX_BODY = 65_536
MAX_RECORDS = 200
MAX_CALLBACKS = 500

# The demo office's vtiger users and their "CRM Phone Extension" (phone_crm_extension).
USERS: dict[str, str] = {
    "101": "manager1",
    "102": "manager2",
    "103": "director",
    "104": "manager4",
    "105": "manager5",
}
# A few customers, as vtiger would find them by number.
CUSTOMERS: dict[str, str] = {
    "79161234567": "Contact: Anna Customer",
    "79035550102": "Lead: Boris Prospect",
    "79035550011": "Contact: Vera Client",
}

AUTH_FAILURE = (
    '<?xml version="1.0" encoding="utf-8"?><Response><Authentication>Failure'
    "</Authentication></Response>"
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _peer(channel: str) -> str:
    """vtiger's reading of ``SIP/101-0000a``: the part between '/' and '-'."""
    return channel.split("-")[0].split("/")[-1]


def _customer(number: str) -> str:
    digits = _digits(number)
    for known, name in CUSTOMERS.items():
        if digits and (known.endswith(digits[-10:]) or digits.endswith(known[-10:])):
            return name
    return ""


@dataclass
class Record:
    """One row of vtiger_pbxmanager, as vtiger would store it."""

    uuid: str
    direction: str
    customernumber: str
    customer: str
    user: str = ""
    callstatus: str = "ringing"
    starttime: str = ""
    endtime: str = ""
    totalduration: str = ""
    billduration: str = ""
    recordingurl: str = ""
    updated: float = field(default_factory=time.time)


class CrmSink:
    """State of the fake CRM plus its ASGI app."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.records: OrderedDict[tuple[str, str], Record] = OrderedDict()
        self.callbacks: deque[dict[str, Any]] = deque(maxlen=MAX_CALLBACKS)
        self.counts: dict[str, int] = {}
        self.unmatched = 0  # updates for a callUUID that has no record (vtiger drops them)
        self.rejected = 0  # wrong signature
        self.port = 0

    # -- the callback logic ---------------------------------------------------------

    def handle_callback(self, params: dict[str, str]) -> tuple[str, str]:
        """Apply one callback; returns (content type, body) as vtiger would answer."""
        if params.get("vtigersignature", "") != self.secret or not self.secret:
            self.rejected += 1
            log.warning("demo CRM: callback with a wrong vtigersignature")
            return "text/xml; charset=utf-8", AUTH_FAILURE
        status = params.get("callstatus", "")
        shown = {k: v for k, v in params.items() if k != "vtigersignature"}
        self.callbacks.appendleft({"at": time.time(), "callstatus": status, "params": shown})
        self.counts[status] = self.counts.get(status, 0) + 1
        uuid = params.get("callUUID", "")
        if status in ("StartApp", "DialBegin"):
            return self._start(status, uuid, params)
        record = self._find(uuid, params)
        if record is None:
            if status in ("DialAnswer", "Hangup", "EndCall", "Record"):
                self.unmatched += 1
            return "text/html; charset=utf-8", ""
        record.updated = time.time()
        if status == "DialAnswer":
            answered = params.get("callerid2", "") if record.direction == "inbound" else ""
            ext = answered or params.get("callerid1", "")
            if ext in USERS:
                record.user = ext
            record.callstatus = "in-progress"
        elif status == "Hangup":
            cause = params.get("causetxt", "")
            if cause and cause != "null":
                if cause == "Normal Clearing":
                    no_answer = params.get("HangupCause", "") == "NO ANSWER"
                    record.callstatus = "no-answer" if no_answer else "completed"
                elif cause in ("User busy", "Call Rejected"):
                    record.callstatus = "busy"
                else:
                    record.callstatus = cause[:20]
                if params.get("EndTime") and params.get("Duration"):
                    record.endtime = params["EndTime"]
                    record.totalduration = params["Duration"]
        elif status == "EndCall":
            record.starttime = params.get("starttime", record.starttime)
            record.endtime = params.get("endtime", record.endtime)
            record.totalduration = params.get("duration", record.totalduration)
            record.billduration = params.get("billableseconds", record.billduration)
        elif status == "Record":
            record.recordingurl = params.get("recordinglink", "")[:200]
        return "text/html; charset=utf-8", ""

    def _start(self, status: str, uuid: str, params: dict[str, str]) -> tuple[str, str]:
        caller = params.get("callerIdNumber", "")
        peer = _peer(params.get("channel", ""))
        if status == "DialBegin":  # SalesPlatform: one record per (call, user)
            dialled = params.get("dialString", "").split("/")[-1].split("@")[0]
            if caller in USERS:
                direction, user, number = "outbound", caller, dialled
            elif dialled in USERS:
                direction, user, number = "inbound", dialled, caller
            else:
                return "text/html; charset=utf-8", ""
        elif caller in USERS or peer in USERS:
            direction, user = "outbound", caller if caller in USERS else peer
            number = params.get("callerIdName", "") if caller == peer else caller
            number = number or params.get("callerId", "")
        else:
            direction, user, number = "inbound", "", caller
        key = (uuid, user if status == "DialBegin" else "")
        if key not in self.records:
            self.records[key] = Record(
                uuid=uuid,
                direction=direction,
                customernumber=number,
                customer=_customer(number),
                user=user,
                starttime=params.get("StartTime", ""),
            )
            while len(self.records) > MAX_RECORDS:
                self.records.popitem(last=False)
        if status == "DialBegin" or direction == "outbound":
            return "text/html; charset=utf-8", ""
        numbers = "".join(f"<Number>SIP/{ext}</Number>" for ext in USERS if ext != caller)
        return (
            "text/xml; charset=utf-8",
            '<?xml version="1.0" encoding="utf-8"?><Response><Dial><Authentication>Success'
            f"</Authentication>{numbers}</Dial></Response>",
        )

    def _find(self, uuid: str, params: dict[str, str]) -> Record | None:
        if (uuid, "") in self.records:
            return self.records[(uuid, "")]
        # SalesPlatform: the user's number names the per-user row.
        for name in ("callerIdNum", "callerNumber", "callerid1", "callerid2"):
            ext = params.get(name, "")
            if (uuid, ext) in self.records:
                return self.records[(uuid, ext)]
        return None

    def snapshot(self) -> dict[str, Any]:
        records = [
            {
                "uuid": r.uuid,
                "direction": r.direction,
                "customernumber": r.customernumber,
                "customer": r.customer,
                "user": f"{USERS[r.user]} ({r.user})" if r.user in USERS else r.user,
                "callstatus": r.callstatus,
                "starttime": r.starttime,
                "endtime": r.endtime,
                "totalduration": r.totalduration,
                "billduration": r.billduration,
                "recordingurl": r.recordingurl,
            }
            for r in sorted(self.records.values(), key=lambda r: r.updated, reverse=True)
        ]
        return {
            "records": records,
            "callbacks": list(self.callbacks)[:100],
            "counts": self.counts,
            "unmatched": self.unmatched,
            "rejected": self.rejected,
        }

    # -- HTTP -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _respond(send, 413, "text/plain", "request body too large")
                return
            if not message.get("more_body"):
                break
        path = scope["path"].replace("//", "/")
        if path == CALLBACK_PATH:
            params = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            try:
                params.update(urllib.parse.parse_qsl(body.decode("utf-8")))
            except UnicodeDecodeError:
                await _respond(send, 400, "text/plain", "body is not UTF-8")
                return
            content_type, text = self.handle_callback(params)
            await _respond(send, 200, content_type, text)
        elif path == "/records.json":
            await _respond(send, 200, "application/json", json.dumps(self.snapshot()))
        elif path == "/":
            await _respond(send, 200, "text/html; charset=utf-8", PAGE)
        else:
            await _respond(send, 404, "text/plain", "not found")

    async def run(
        self, *, host: str = "127.0.0.1", port: int = 0, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``task_status.started(port)``."""
        from hypercorn.config import Config as HyperConfig
        from hypercorn.trio import serve

        config = HyperConfig()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("pinc.sim.fakevtiger.hypercorn")
        config.graceful_timeout = 1.0
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, self, config)
            self.port = int(str(binds[0]).rsplit(":", 1)[1])
            task_status.started(self.port)


async def _respond(send: Send, status: int, content_type: str, text: str) -> None:
    data = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pinc demo: what vtiger receives</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ringing{color:#b60}.in-progress{color:#07a}.completed{color:#080}
.no-answer,.busy{color:#a00}code{font-size:12px;word-break:break-all}
</style></head><body>
<h1>vtiger PBXManager (simulated)</h1>
<p>The call records vtiger's calls module would hold, built only from the callbacks pinc sent
(<code>/modules/PBXManager/callbacks/PBXManager.php</code>). <span id="counts"></span></p>
<h2>Calls module</h2>
<table><thead><tr><th>direction</th><th>customer number</th><th>customer</th><th>user</th>
<th>status</th><th>start</th><th>end</th><th>duration</th><th>billed</th><th>recording</th>
</tr></thead><tbody id="records"></tbody></table>
<h2>Last callbacks received</h2>
<table><thead><tr><th>time</th><th>callstatus</th><th>parameters</th></tr></thead>
<tbody id="callbacks"></tbody></table>
<script>
function esc(s){return String(s??"").replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",
">":"&gt;",'"':"&quot;"}[c]))}
async function tick(){
  try{
    const d=await (await fetch("records.json",{cache:"no-store"})).json();
    document.getElementById("counts").textContent="Callbacks: "+JSON.stringify(d.counts)+
      "; updates for unknown calls: "+d.unmatched+"; wrong signature: "+d.rejected;
    document.getElementById("records").innerHTML=d.records.map(r=>"<tr><td>"+esc(r.direction)+
      "</td><td>"+esc(r.customernumber)+"</td><td>"+esc(r.customer)+"</td><td>"+esc(r.user)+
      "</td><td class='"+esc(r.callstatus)+"'>"+esc(r.callstatus)+"</td><td>"+esc(r.starttime)+
      "</td><td>"+esc(r.endtime)+"</td><td>"+esc(r.totalduration)+"</td><td>"+
      esc(r.billduration)+"</td><td>"+(r.recordingurl&&r.recordingurl.startsWith("http")?
      "<a href='"+esc(r.recordingurl)+"' target='_blank'>play</a>":esc(r.recordingurl))+
      "</td></tr>").join("");
    document.getElementById("callbacks").innerHTML=d.callbacks.map(c=>"<tr><td>"+
      esc(new Date(c.at*1000).toLocaleTimeString())+"</td><td>"+esc(c.callstatus)+
      "</td><td><code>"+esc(new URLSearchParams(c.params).toString())+"</code></td></tr>")
      .join("");
  }catch(e){}
}
tick();setInterval(tick,1000);
</script></body></html>
"""
