"""vtiger's webservice and SalesPlatform's SPAgi.php: customer lookups and the users list.

``VtigerWebservice`` implements ``pinc.routing.CrmLookup`` and is the session client the
directory (``crm/directory.py``) reads users through. Stock vtiger: ``getchallenge`` ->
``login`` with md5(token + access key) -> ``query``, renewing the session when vtiger
forgets it. Numbers are stored as typed (``+7 (916) 123-45-67``), so a lookup tries
several suffix forms and checks the answers on their digits.

Every query names its columns: SalesPlatform answers ``select *`` on Contacts and Leads
with HTTP 500, and ``select *`` on Users would hand pinc password hashes and access keys.
With ``crm.profile = "salesplatform"`` routing asks ``SPAgi.php?vtigersignature=&
callerNumber=`` (the extension of the record's owner, as SalesPlatform's own connector
does), credentials or not; the webservice is then used for names only (``describe``).
Answers are cached (routing.cache_ttl; misses for routing.negative_ttl); errors are
raised as :class:`CrmLookupError`, not cached.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import httpx
import trio

from pinc.config import Config
from pinc.crm.numbers import digits, lookup_key, same_number
from pinc.crm.vtiger import SPAGI_PATH
from pinc.routing import Customer

log = logging.getLogger(__name__)

SESSION_ERRORS = frozenset({"INVALID_SESSIONID", "AUTHENTICATION_REQUIRED", "SESSION_EXPIRED"})
PHONE_FIELDS = {
    "Contacts": ("phone", "mobile", "homephone", "otherphone"),
    "Leads": ("phone", "mobile"),
    "Accounts": ("phone", "otherphone"),
}
NAME_FIELDS = {
    "Contacts": ("firstname", "lastname"),
    "Leads": ("firstname", "lastname", "company"),
    "Accounts": ("accountname",),
}
USER_COLUMNS = ("id", "user_name", "first_name", "last_name", "phone_crm_extension", "status")
PAGE = 100  # VTQL's LIMIT cap


class CrmLookupError(Exception):
    """The CRM could not be asked (unreachable, refused credentials, odd answer)."""


class VtigerWebservice:
    def __init__(
        self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.crm = config.crm
        self.routing = config.routing
        self._base = self.crm.url.rstrip("/")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._session: str | None = None
        self._user_prefix = "19"
        self.login_info: dict[str, Any] = {}  # what the last login answered (no secrets)
        self._login_lock = trio.Lock()
        self._cache: dict[str, tuple[float, Customer | None]] = {}
        self._names: dict[str, tuple[float, Customer | None]] = {}
        self._users: dict[str, tuple[float, tuple[str | None, str | None]]] = {}
        self._warned_users = False
        self.requests = 0  # HTTP requests made (tests check the cache with it)

    @property
    def has_credentials(self) -> bool:
        return bool(self.crm.url and self.crm.username and self.crm.access_key)

    @property
    def use_spagi(self) -> bool:
        """Routing through SalesPlatform's SPAgi.php (its own connector's way)."""
        return self.crm.profile == "salesplatform"

    # --- CrmLookup -----------------------------------------------------------------

    async def find_customer(self, number: str) -> Customer | None:
        """The customer and its responsible employee, as routing needs them."""
        key = lookup_key(number, self.routing)
        if not key:
            return None
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if not self.crm.url:
            raise CrmLookupError("crm.url is not set")
        customer = await (self._spagi(key) if self.use_spagi else self._webservice(key))
        self._remember(self._cache, key, customer, now)
        return customer

    async def describe(self, number: str) -> Customer | None:
        """The customer's name, module and record (for pinc's own pages and feed)."""
        key = lookup_key(number, self.routing)
        if not key:
            return None
        now = time.monotonic()
        for cache in (self._names, self._cache):
            hit = cache.get(key)
            if hit is not None and hit[0] > now and (hit[1] is None or hit[1].module):
                return hit[1]
        if not self.has_credentials:
            return None
        customer = await self._webservice(key, owners=not self.use_spagi)
        self._remember(self._names, key, customer, now)
        return customer

    def _remember(
        self, cache: dict[str, tuple[float, Customer | None]], key: str,
        customer: Customer | None, now: float,
    ) -> None:
        ttl = self.routing.cache_ttl if customer is not None else self.routing.negative_ttl
        if len(cache) > 50_000:
            for k in [k for k, v in cache.items() if v[0] <= now]:
                del cache[k]
        cache[key] = (now + ttl, customer)

    def forget(self) -> None:
        self._cache.clear()
        self._names.clear()
        self._users.clear()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- HTTP ----------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.crm.timeout),
                transport=self._transport,
                headers={"User-Agent": "pinc"},
                limits=httpx.Limits(max_connections=8, keepalive_expiry=30.0),
            )
        return self._client

    async def _call(self, method: str, path: str, params: dict[str, str]) -> Any:
        url = self._base + path
        self.requests += 1
        try:
            with trio.fail_after(self.crm.timeout + 1.0):
                if method == "GET":
                    response = await self._http().get(url, params=params)
                else:
                    response = await self._http().post(url, data=params)
                text = response.text
        except (trio.TooSlowError, httpx.TimeoutException):
            raise CrmLookupError(f"no answer from {url} within {self.crm.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise CrmLookupError(f"cannot reach {url}: {exc or type(exc).__name__}") from None
        if response.status_code != 200:
            raise CrmLookupError(f"{url} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            kind = "an HTML page" if "<html" in text[:512].lower() else "something not JSON"
            raise CrmLookupError(f"{url} answered {kind}: check crm.url") from None

    async def _ws(self, method: str, params: dict[str, str], *, session: bool = True) -> Any:
        """One webservice operation; logs in first and once more if the session expired."""
        for attempt in (1, 2):
            if session:
                params = {**params, "sessionName": await self._login()}
            answer = await self._call(method, "/webservice.php", params)
            if not isinstance(answer, dict):
                raise CrmLookupError("vtiger's webservice answered something unexpected")
            if answer.get("success"):
                return answer.get("result")
            error = answer.get("error") or {}
            code = str(error.get("code", ""))
            if session and code in SESSION_ERRORS and attempt == 1:
                self._session = None
                continue
            raise CrmLookupError(f"vtiger webservice: {code}: {error.get('message', '')}")
        raise CrmLookupError("vtiger webservice: session could not be renewed")

    async def _login(self) -> str:
        async with self._login_lock:
            if self._session is not None:
                return self._session
            if not (self.crm.username and self.crm.access_key):
                raise CrmLookupError("crm.username and crm.access_key are needed for lookups")
            challenge = await self._ws(
                "GET", {"operation": "getchallenge", "username": self.crm.username},
                session=False,
            )
            token = str((challenge or {}).get("token", ""))
            key = hashlib.md5((token + self.crm.access_key).encode()).hexdigest()
            result = await self._ws(
                "POST",
                {"operation": "login", "username": self.crm.username, "accessKey": key},
                session=False,
            )
            if not isinstance(result, dict) or not result.get("sessionName"):
                raise CrmLookupError("vtiger login gave no session")
            self._session = str(result["sessionName"])
            self._user_prefix = str(result.get("userId", "19x")).partition("x")[0]
            self.login_info = {
                k: result.get(k) for k in ("userId", "username", "is_admin", "time_zone",
                                           "vtigerVersion", "version") if k in result
            }
            return self._session

    async def login(self) -> dict[str, Any]:
        """Log in (again) and return what vtiger said about the user (``pinc check``)."""
        self._session = None
        await self._login()
        return dict(self.login_info)

    async def query(self, vtql: str) -> list[dict[str, Any]]:
        result = await self._ws("GET", {"operation": "query", "query": vtql})
        return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []

    async def users(self) -> list[dict[str, Any]]:
        """Every CRM user (named columns only), page by page."""
        out: list[dict[str, Any]] = []
        while True:
            page = await self.query(
                f"SELECT {', '.join(USER_COLUMNS)} FROM Users LIMIT {len(out)}, {PAGE};"
            )
            out += page
            if len(page) < PAGE or len(out) >= 100_000:
                return out

    # --- lookups -------------------------------------------------------------------

    def _patterns(self, key: str) -> list[str]:
        """LIKE patterns for the ways people type a number (checked on digits after)."""
        pats = [f"%{key}"]
        if len(key) == self.routing.national_length == 10:
            local = key[3:]
            a, b, c = local[:3], local[3:5], local[5:]
            pats += [f"%{a}-{b}-{c}", f"%{a} {b} {c}"]
        return pats

    async def _webservice(self, key: str, *, owners: bool = True) -> Customer | None:
        for module, fields in PHONE_FIELDS.items():
            conds = " OR ".join(f"{f} LIKE '{p}'" for f in fields for p in self._patterns(key))
            columns = ", ".join(("id", *NAME_FIELDS[module], *fields, "assigned_user_id"))
            for record in await self.query(f"SELECT {columns} FROM {module} WHERE {conds};"):
                if not any(same_number(record.get(f), key) for f in fields):
                    continue
                user_name, ext = (None, None)
                if owners:
                    user_name, ext = await self._owner(str(record.get("assigned_user_id", "")))
                return Customer(
                    name=_name(module, record),
                    module=module,
                    record_id=str(record.get("id", "")),
                    user_name=user_name,
                    user_extension=ext,
                )
        return None

    async def _owner(self, ws_id: str) -> tuple[str | None, str | None]:
        """(user_name, phone_crm_extension) of the assigned user; groups have neither."""
        if ws_id.partition("x")[0] != self._user_prefix or not digits(ws_id.partition("x")[2]):
            return None, None
        now = time.monotonic()
        hit = self._users.get(ws_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            found = await self.query(
                f"SELECT id, user_name, phone_crm_extension FROM Users WHERE id = '{ws_id}';"
            )
        except CrmLookupError as exc:
            if "ACCESS_DENIED" not in str(exc):
                raise
            if not self._warned_users:
                self._warned_users = True
                log.warning("vtiger refuses to show Users to %s: responsible-manager lookups "
                            "need an admin (integration) user's access key", self.crm.username)
            return None, None
        user = found[0] if found else {}
        answer = (
            str(user.get("user_name") or "") or None,
            digits(user.get("phone_crm_extension")) or None,
        )
        self._users[ws_id] = (now + self.routing.cache_ttl, answer)
        return answer

    async def _spagi(self, key: str) -> Customer | None:
        answer = await self._call(
            "GET", SPAGI_PATH, {"vtigersignature": self.crm.secret, "callerNumber": key}
        )
        if not isinstance(answer, dict) or not answer.get("success"):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise CrmLookupError(f"SPAgi.php refused the lookup: {error}")
        result = answer.get("result") or {}
        ext = digits(result.get("crmUserExtension")) if isinstance(result, dict) else ""
        if not ext:
            return None
        return Customer(name="", module="", record_id="", user_name=None, user_extension=ext)


def _name(module: str, record: dict[str, Any]) -> str:
    if module == "Accounts":
        return str(record.get("accountname") or "")
    parts = [record.get("firstname"), record.get("lastname")]
    name = " ".join(str(p) for p in parts if p)
    return name or str(record.get("company") or "")
