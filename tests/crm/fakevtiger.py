"""A fake vtiger for tests and the benchmark: a real HTTP/1.1 server (trio + h11) on
127.0.0.1 that behaves as vtiger 8.2's PHP was seen to behave for pinc's requests
(reference/vtiger.md; SalesPlatform's fork is ``tests/crm/fakesalesplatform.py``).

- ``/modules/PBXManager/callbacks/PBXManager.php``: checks ``vtigersignature`` (XML
  ``Authentication Failure`` otherwise, nothing written), creates a row on StartApp with
  vtiger's direction and customer logic, owned by admin; DialAnswer gives the row its
  user and owner (inbound: NULL when callerid2 is no user's number); drops updates for an
  unknown callUUID, maps ``causetxt`` as handleHangupCall does, honours PHP truthiness
  (``Duration=0`` is ignored), purifies values (``<…>`` stripped, JSON-looking values
  become ``Array``) and truncates to the column widths. Numbers match the lookup table
  by prefix or suffix (``89161234567`` does not find ``+79161234567``).
- ``/webservice.php``: getchallenge, login (md5(token + access key)), query (a small
  VTQL: ``=``, ``!=`` and ``LIKE`` joined by OR/AND, ``LIMIT [offset,] count``; Users
  only for admins), retrieve; sessions can be expired.

Outage modes: ``mode`` = ``ok`` | ``503`` | ``hang`` | ``slow`` (does the callback, answers
after ``hang_seconds``) | ``html`` (a login page in a 200) |
``404`` | ``500`` (a database down: an empty 500) | ``fatal`` (PHP's fatal error text in a
200, after nothing was written), and
``refuse()`` / ``accept()`` to close and re-open the listening socket on the same port.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

CALLBACKS = "/modules/PBXManager/callbacks/PBXManager.php"
SPAGI = "/modules/PBXManager/callbacks/SPAgi.php"
WEBSERVICE = "/webservice.php"
AUTH_FAILURE = (
    '<?xml version="1.0" encoding="utf-8"?><Response><Authentication>Failure'
    "</Authentication></Response>"
)
# vtiger_pbxmanager column widths
WIDTHS = {
    "direction": 10,
    "callstatus": 20,
    "recordingurl": 200,
    "sourceuuid": 100,
    "customernumber": 100,
    "customertype": 100,
}
PHONE_FIELDS = {
    "Contacts": ("phone", "mobile", "homephone", "otherphone", "assistantphone", "fax"),
    "Leads": ("phone", "mobile", "fax"),
    "Accounts": ("phone", "otherphone", "fax"),
}
WS_PREFIX = {"Contacts": "12", "Leads": "10", "Accounts": "11", "Users": "19", "Groups": "20"}
USER_PHONE_FIELDS = ("phone_work", "phone_mobile", "phone_other", "phone_fax", "phone_home",
                     "phone_crm_extension")
DATETIME = re.compile(r"^\d{4}[-/]\d{2}[-/]\d{2} \d{2}:\d{2}:\d{2}$")


def php_truthy(value: Any) -> bool:
    return value not in (None, "", "0", 0, [], False)


def purify(value: str) -> Any:
    """What Vtiger_Request::get() returns for a raw value (vtlib_purify + JSON decode)."""
    if value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            pass
    value = re.sub(r"<[^>]*>?", "", value)
    return value.replace("&amp;", "&")


def as_column(value: Any) -> str:
    """A PHP value written to a varchar column: arrays become the string ``Array``."""
    if isinstance(value, (list, dict)):
        return "Array"
    return "" if value is None else str(value)


def fnumber(value: str) -> str:
    return re.sub(r"[-()\s+]", "", value)


@dataclass
class User:
    id: int
    user_name: str
    phone_crm_extension: str
    first_name: str = ""
    last_name: str = ""
    is_admin: bool = False
    access_key: str = ""
    phones: dict[str, str] = field(default_factory=dict)
    status: str = "Active"


@dataclass
class Entity:
    id: int
    module: str  # Contacts, Leads, Accounts
    fields: dict[str, str]
    owner: int  # a user id, or a group id when group is True
    group: bool = False


def lab_users() -> list[User]:
    """admin, manager1 = 101, manager2 = 102, manager3 = 103 (every lab phone a user)."""
    return [*real_lab_users(), User(7, "manager3", "103", "Olga", "Manager3", False, "m3key")]


def real_lab_users() -> list[User]:
    """As the real lab CRMs are seeded: admin, manager1 = 101, manager2 = 102; phone 103
    has no CRM user (the misfiled and ownerless calls of issue #15 are its calls)."""
    return [
        User(1, "admin", "", "Lab", "Administrator", True, "adminkey123"),
        User(5, "manager1", "101", "Ivan", "Manager1", False, "m1key"),
        User(6, "manager2", "102", "Petr", "Manager2", False, "m2key"),
    ]


def lab_entities() -> list[Entity]:
    return [
        Entity(2, "Contacts", {"firstname": "Anna", "lastname": "Customer",
                               "phone": "+79161234567", "mobile": ""}, owner=5),
        Entity(3, "Leads", {"firstname": "Boris", "lastname": "Prospect",
                            "phone": "+79035550102", "mobile": ""}, owner=6),
        Entity(4, "Contacts", {"firstname": "Vera", "lastname": "Caller",
                               "phone": "+7 (903) 555-00-11", "mobile": ""}, owner=6),
        Entity(8, "Accounts", {"accountname": "Roga i Kopyta", "phone": "8 (495) 765-43-21",
                               "otherphone": ""}, owner=7),
        Entity(9, "Contacts", {"firstname": "Group", "lastname": "Owned",
                               "phone": "+79990001122", "mobile": ""}, owner=20, group=True),
    ]


class FakeVtiger:
    has_spagi = False  # SalesPlatform's SPAgi.php (fakesalesplatform.py)

    def __init__(
        self,
        *,
        secret: str = "pinc-lab-secret-42",
        users: list[User] | None = None,
        entities: list[Entity] | None = None,
        outbound_trunk: str = "pinc-trunk",
    ) -> None:
        self.secret = secret
        self.users = users if users is not None else lab_users()
        self.entities = entities if entities is not None else lab_entities()
        self.outbound_trunk = outbound_trunk
        self.rows: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []  # purified params of every signed callback
        self.requests = 0
        self.mode = "ok"
        self.hang_seconds = 3600.0
        self.hanging = 0  # requests held open by mode "hang" right now
        self.port = 0
        self.clock = "2026-11-24 00:00:00"  # what PHP's date() gives (SP Hangup w/o EndTime)
        self.tokens: dict[str, str] = {}
        self.sessions: dict[str, int] = {}
        self.ws_log: list[tuple[str, dict[str, str]]] = []
        self._ids = itertools.count(21)
        self._accepting = trio.Event()
        self._accepting.set()
        self._serving: trio.CancelScope | None = None

    # --- control -------------------------------------------------------------------

    def refuse(self) -> None:
        """Close the listening socket and every connection: clients get ECONNREFUSED."""
        self._accepting = trio.Event()
        if self._serving is not None:
            self._serving.cancel()

    def accept(self) -> None:
        self._accepting.set()

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def row(self, uuid: str, user: int | None = None) -> dict[str, Any] | None:
        for r in self.rows:
            if r["sourceuuid"] == uuid and (user is None or r["user"] == user):
                return r
        return None

    def rows_of(self, uuid: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["sourceuuid"] == uuid]

    # --- serving -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            await self._accepting.wait()
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            with trio.CancelScope() as scope:
                self._serving = scope
                async with trio.open_nursery() as nursery:
                    if not started:
                        started = True
                        task_status.started(self.port)
                    await nursery.start(trio.serve_listeners, self._handle, listeners)
            self._serving = None
            for listener in listeners:
                await listener.aclose()

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read(conn, stream)
                if request is None:
                    return
                self.requests += 1
                status, ctype, out = await self._respond(request, body)
                headers = [("content-type", ctype), ("content-length", str(len(out)))]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=out)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError, OSError):
            return
        finally:
            await stream.aclose()

    async def _read(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = b""
        with trio.fail_after(60):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return request, body
                elif isinstance(event, h11.ConnectionClosed):
                    return None, b""

    async def _respond(self, request: h11.Request, body: bytes) -> tuple[int, str, bytes]:
        if self.mode == "503":
            return 503, "text/html", b"<html><body>Service Unavailable</body></html>"
        if self.mode == "hang":
            self.hanging += 1
            try:
                await trio.sleep(self.hang_seconds)
            finally:
                self.hanging -= 1
        if self.mode == "html":
            return 200, "text/html", b"<!DOCTYPE html><html><body>Login page</body></html>"
        if self.mode == "500":
            return 500, "text/html; charset=UTF-8", b""
        if self.mode == "fatal":
            return 200, "text/html; charset=UTF-8", (
                b"<br />\n<b>Fatal error</b>:  Uncaught Error: Call to undefined method in "
                b"/var/www/modules/PBXManager/models/Record.php:42<br />")
        target = request.target.decode("latin-1")
        parts = urlsplit(target)
        get = dict(parse_qsl(parts.query, keep_blank_values=True))
        post = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        path = re.sub("/+", "/", parts.path)
        known = (CALLBACKS, SPAGI, WEBSERVICE) if self.has_spagi else (CALLBACKS, WEBSERVICE)
        if self.mode == "404" or not path.endswith(known):
            return 404, "text/html", b"<html><body>Not Found</body></html>"
        if path.endswith(WEBSERVICE):
            method = request.method.decode()
            answer = self._webservice(method, get, post)
            if answer is None:
                return 500, "text/html; charset=UTF-8", b""
            return 200, "application/json", json.dumps(answer).encode()
        params = {**get, **post}  # $_REQUEST with request_order "GP"
        if params.get("vtigersignature") != self.secret:
            if path.endswith(SPAGI):
                err = _ws_error(400, "Invalid request params")
                return 200, "application/json", json.dumps(err).encode()
            return 200, "text/xml; charset=utf-8", AUTH_FAILURE.encode()
        values = {k: purify(v) for k, v in params.items()}
        if path.endswith(SPAGI):
            return 200, "application/json", json.dumps(self.spagi(values)).encode()
        self.accepted.append(values)
        answer = self._answer_callback(values)
        if self.mode == "slow":  # done, but answered after the client gave up (a loaded PHP)
            await trio.sleep(self.hang_seconds)
        return answer

    def _answer_callback(self, values: dict[str, Any]) -> tuple[int, str, bytes]:
        xml = self._callback(values)
        if xml is not None:
            return 200, "text/xml; charset=utf-8", xml.encode()
        return 200, "text/html; charset=UTF-8", b""

    # --- vtiger's lookups ----------------------------------------------------------

    def user_by_number(self, number: Any) -> User | None:
        """getUserInfoWithNumber: exact match on every uitype-11 Users field."""
        if not php_truthy(number) or isinstance(number, (list, dict)):
            return None
        for user in self.users:
            values = {**user.phones, "phone_crm_extension": user.phone_crm_extension}
            if any(v and v == str(number) for v in values.values()):
                return user
        return None

    def customer_by_number(self, number: Any) -> Entity | None:
        """lookUpRelatedWithNumber over vtiger_pbxmanager_phonelookup (prefix or suffix)."""
        n = fnumber(as_column(number))
        if not n:
            return None
        for entity in self.entities:
            for name in PHONE_FIELDS[entity.module]:
                stored = fnumber(entity.fields.get(name, ""))
                if stored and (stored.startswith(n) or stored[::-1].startswith(n[::-1])):
                    return entity
        return None

    # --- stock vtiger PBXManager ---------------------------------------------------

    def _new_row(self, **values: Any) -> dict[str, Any]:
        row = {
            "pbxmanagerid": next(self._ids),
            "direction": None,
            "callstatus": None,
            "starttime": None,
            "endtime": None,
            "totalduration": 0,
            "billduration": 0,
            "recordingurl": None,
            "sourceuuid": None,
            "gateway": "PBXManager",
            "customer": None,
            "user": None,
            "customernumber": None,
            "customertype": None,
            "smownerid": 1,
        }
        self._update(row, values)
        self.rows.append(row)
        return row

    def _update(self, row: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key in ("starttime", "endtime"):
                text = as_column(value)
                row[key] = text.replace("/", "-") if DATETIME.match(text) else (
                    None if not text else "0000-00-00 00:00:00")
            elif key in ("totalduration", "billduration"):
                m = re.match(r"^\s*-?\d+", as_column(value))
                row[key] = int(m.group(0)) if m else 0
            elif key in ("user", "customer", "smownerid"):
                row[key] = value
            elif value is None:
                row[key] = None
            else:
                text = as_column(value)
                width = WIDTHS.get(key)
                row[key] = text[:width] if width else text

    def _callback(self, p: dict[str, Any]) -> str | None:
        status = p.get("callstatus")
        if status == "StartApp":
            return self._start_app(p)
        row = self.row(as_column(p.get("callUUID")))
        if status == "Hangup" and p.get("causetxt") == "null":
            return None
        if row is None:
            return None  # UPDATE … WHERE sourceuuid = NULL: silently nothing
        if status == "DialAnswer":
            if row["direction"] == "inbound":
                user = self.user_by_number(p.get("callerid2"))
                row["user"] = user.id if user else None
                row["smownerid"] = user.id if user else None
            else:
                user = self.user_by_number(p.get("callerid1"))
                if user:
                    row["user"] = row["smownerid"] = user.id
            row["callstatus"] = "in-progress"
        elif status == "Hangup":
            values = {"callstatus": self._cause_status(p)}
            if php_truthy(p.get("EndTime")) and php_truthy(p.get("Duration")):
                values |= {"endtime": p.get("EndTime"), "totalduration": p.get("Duration")}
            self._update(row, values)
        elif status == "EndCall":
            self._update(row, {"starttime": p.get("starttime"), "endtime": p.get("endtime"),
                               "totalduration": p.get("duration"),
                               "billduration": p.get("billableseconds")})
        elif status == "Record":
            self._update(row, {"recordingurl": p.get("recordinglink")})
        return None

    @staticmethod
    def _cause_status(p: dict[str, Any]) -> Any:
        cause = p.get("causetxt")
        if cause == "Normal Clearing":
            return "no-answer" if p.get("HangupCause") == "NO ANSWER" else "completed"
        if cause in ("User busy", "Call Rejected"):
            return "busy"
        return cause

    def _start_app(self, p: dict[str, Any]) -> str:
        channel = as_column(p.get("channel"))
        parts = channel.split("-")[0].split("/")
        peer = parts[1] if len(parts) > 1 else None
        caller = p.get("callerIdNumber")
        user = self.user_by_number(caller)
        if user is None and peer is not None and re.fullmatch(r"\d+(\.\d+)?", peer):
            user = self.user_by_number(peer)
        head = '<?xml version="1.0" encoding="utf-8"?><Response><Dial><Authentication>Success'
        head += "</Authentication>"
        if user is not None:
            if caller == peer:
                to = p.get("callerIdName")
            elif php_truthy(caller):
                to = caller
            else:
                to = p.get("callerId")
            customer = self.customer_by_number(to)
            self._new_row(direction="outbound", sourceuuid=p.get("callUUID"),
                          customer=customer.id if customer else None,
                          customertype=customer.module if customer else None,
                          user=user.id, customernumber=to, starttime=p.get("StartTime"),
                          callstatus="ringing")
            number = as_column(to)
            if len(number) > 5:
                number += "@" + self.outbound_trunk
            return head + f"<Number>SIP/{number}</Number></Dial></Response>"
        customer = self.customer_by_number(caller)
        self._new_row(direction="inbound", sourceuuid=p.get("callUUID"),
                      customer=customer.id if customer else None,
                      customertype=customer.module if customer else None,
                      customernumber=caller, starttime=p.get("StartTime"), callstatus="ringing")
        numbers = "".join(
            f"<Number>SIP/{u.phone_crm_extension}</Number>"
            for u in self.users
            if u.phone_crm_extension and u.phone_crm_extension != caller
        )
        return head + numbers + "</Dial></Response>"

    def spagi(self, p: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError  # only SalesPlatform has SPAgi.php

    # --- webservice ----------------------------------------------------------------

    def _webservice(
        self, method: str, get: dict[str, str], post: dict[str, str]
    ) -> dict[str, Any] | None:
        op = get.get("operation") or post.get("operation", "")
        # GET operations read only $_GET, POST operations only $_POST
        kinds = {"getchallenge": "GET", "login": "POST", "query": "GET", "retrieve": "GET"}
        if op not in kinds:
            return _ws_error("UNKNOWN_OPERATION", "Unknown operation requested")
        p = get if kinds[op] == "GET" else post
        if kinds[op] != method:
            p = {}
        self.ws_log.append((op, p))
        if op == "getchallenge":
            user = self._ws_user_by_name(p.get("username", ""))
            if user is None:
                return _ws_error("INVALID_USER_CREDENTIALS", "Invalid username or password")
            token = hashlib.md5(f"{user.user_name}{len(self.tokens)}".encode()).hexdigest()[:13]
            self.tokens[user.user_name] = token
            return {"success": True, "result": {"token": token, "serverTime": 1795479834,
                                                "expireTime": 1795480134}}
        if op == "login":
            user = self._ws_user_by_name(p.get("username", ""))
            token = self.tokens.get(p.get("username", ""), "")
            want = hashlib.md5((token + (user.access_key if user else "")).encode()).hexdigest()
            if user is None or not token or p.get("accessKey") != want:
                return _ws_error("INVALID_USER_CREDENTIALS", "Invalid username or password")
            session = hashlib.md5(f"s{user.id}{len(self.sessions)}{token}".encode()).hexdigest()
            self.sessions[session[:21]] = user.id
            return {"success": True, "result": {
                "sessionName": session[:21], "userId": f"19x{user.id}", "version": "0.22",
                "vtigerVersion": "8.2.0", "username": user.user_name,
                "is_admin": "on" if user.is_admin else "off"}}
        uid = self.sessions.get(p.get("sessionName", ""))
        if uid is None:
            return _ws_error("INVALID_SESSIONID", "Session Identifier provided is Invalid")
        me = next(u for u in self.users if u.id == uid)
        if op == "retrieve":
            return self._ws_retrieve(me, p.get("id", ""))
        return self._ws_query(me, p.get("query", ""))

    def _ws_user_by_name(self, name: str) -> User | None:
        return next((u for u in self.users if u.user_name == name), None)

    def _ws_user_record(self, user: User) -> dict[str, Any]:
        return {"id": f"19x{user.id}", "user_name": user.user_name,
                "first_name": user.first_name, "last_name": user.last_name,
                "phone_crm_extension": user.phone_crm_extension, "status": user.status,
                "is_admin": "on" if user.is_admin else "off",
                "user_password": "$2y$10$hash-of-" + user.user_name,
                "accesskey": user.access_key, **user.phones}

    def _ws_entity_record(self, e: Entity) -> dict[str, Any]:
        owner = f"{WS_PREFIX['Groups' if e.group else 'Users']}x{e.owner}"
        return {"id": f"{WS_PREFIX[e.module]}x{e.id}", **e.fields, "assigned_user_id": owner}

    def _ws_retrieve(self, me: User, ws_id: str) -> dict[str, Any]:
        prefix, _, num = ws_id.partition("x")
        if prefix == WS_PREFIX["Users"]:
            if not me.is_admin:  # observed live: even their own record is refused
                return _ws_error("ACCESS_DENIED", "Permission to perform the operation is denied")
            user = next((u for u in self.users if str(u.id) == num), None)
            if user is None:
                return _ws_error("RECORD_NOT_FOUND", "Record you are trying to access is not found")
            return {"success": True, "result": self._ws_user_record(user)}
        for e in self.entities:
            if f"{WS_PREFIX[e.module]}x{e.id}" == ws_id:
                return {"success": True, "result": self._ws_entity_record(e)}
        return _ws_error("RECORD_NOT_FOUND", "Record you are trying to access is not found")

    def _ws_query(self, me: User, query: str) -> dict[str, Any] | None:
        m = re.fullmatch(
            r"\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<module>\w+)"
            r"(?:\s+WHERE\s+(?P<where>.+?))?"
            r"(?:\s+LIMIT\s+(?:(?P<offset>\d+)\s*,\s*)?(?P<limit>\d+))?\s*;\s*",
            query, re.I | re.S,
        )
        if not m:
            return _ws_error("QUERY_SYNTAX_ERROR", "Syntax Error on line 1")
        module = m["module"]
        if module == "Users":
            if not me.is_admin:
                return _ws_error("ACCESS_DENIED", "Permission to perform the operation is denied")
            records = [self._ws_user_record(u) for u in self.users]
        elif module in PHONE_FIELDS:
            records = [self._ws_entity_record(e) for e in self.entities if e.module == module]
        elif module == "PBXManager":  # the call rows (webservice prefix 24 in vtiger 8.2)
            records = [{**{k: "" if v is None else str(v) for k, v in r.items()},
                        "id": f"24x{r['pbxmanagerid']}"} for r in self.rows]
        else:
            return _ws_error("INVALID_MODULE", f"{module} is not a valid module")
        if m["where"]:
            records = [r for r in records if _vtql_match(r, m["where"])]
        limit = min(int(m["limit"] or 100), 100)
        offset = int(m["offset"] or 0)
        cols = [c.strip() for c in m["cols"].split(",")]
        if cols == ["*"] and not self.select_star_ok(module):
            return None  # SalesPlatform: HTTP 500, empty body
        if cols != ["*"]:
            records = [{c: r.get(c, "") for c in [*cols, "id"]} for r in records]
        return {"success": True, "result": records[offset : offset + limit]}

    def select_star_ok(self, module: str) -> bool:
        return True


def _ws_error(code: str | int, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


def _vtql_match(record: dict[str, Any], where: str) -> bool:
    """Conditions joined by OR / AND, evaluated left to right as VTQL does (no parentheses)."""
    tokens = re.split(r"\s+(OR|AND)\s+(?=(?:[^']*'[^']*')*[^']*$)", where.strip(), flags=re.I)
    result = _vtql_cond(record, tokens[0])
    for op, cond in zip(tokens[1::2], tokens[2::2], strict=True):
        value = _vtql_cond(record, cond)
        result = (result or value) if op.upper() == "OR" else (result and value)
    return result


def _vtql_cond(record: dict[str, Any], cond: str) -> bool:
    m = re.fullmatch(r"\s*(\w+)\s*(=|LIKE|!=)\s*'((?:[^'\\]|\\.)*)'\s*", cond, re.I)
    if not m:
        raise ValueError(f"bad VTQL condition {cond!r}")
    value = str(record.get(m[1], ""))
    want = m[3].replace("\\'", "'")
    op = m[2].upper()
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in want)
    return re.fullmatch(pattern, value, re.I | re.S) is not None
