"""vtiger's web interface driven over HTTP like a browser: sign in, then Module Manager.

Used by the lab tests of pinc's vtiger module (tests/lab/test_module_*.py) on the real
vtiger 8.2 and SalesPlatform 7.2: the import goes through the same requests an administrator's
browser sends (Settings -> Module Management -> Import module from zip), CSRF token included.
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

_TOKEN = re.compile(r'var csrfMagicToken\s*=\s*"([^"]+)"')
_HIDDEN = re.compile(r'<input[^>]*type=["\']hidden["\'][^>]*>', re.I)
_ATTR = re.compile(r'(\w+)=["\']([^"\']*)["\']')


class CrmWebError(AssertionError):
    pass


class _Form(HTMLParser):
    """What a browser would submit for one form (found by id or name), untouched."""

    def __init__(self, form: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form = form
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form in (a.get("id"), a.get("name")):
            self.inside = True
        if not self.inside:
            return
        kind = a.get("type", "text").lower()
        if tag == "input" and a.get("name") and kind not in ("button", "submit", "reset",
                                                              "file", "image"):
            if kind not in ("checkbox", "radio") or "checked" in a:
                self.fields.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and a.get("name"):
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected] or [
                v for v, _ in self._options[:1]]
            self.fields.extend((self._select, v) for v in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text))
            self._textarea = None


def form_fields(page: str, form: str) -> list[tuple[str, str]]:
    parser = _Form(form)
    parser.feed(page)
    return parser.fields


def hidden_inputs(page: str) -> dict[str, str]:
    """name -> value of every hidden input of a page (the last one wins)."""
    out: dict[str, str] = {}
    for tag in _HIDDEN.findall(page):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs:
            out[attrs["name"]] = html.unescape(attrs.get("value", ""))
    return out


class CrmWeb:
    """One signed-in browser session of vtiger (or SalesPlatform), over HTTP."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        self.base = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base, timeout=timeout, follow_redirects=False)
        self.token = ""

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CrmWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _page(self, url: str) -> str:
        response = self.client.get(url, headers={"Referer": self.base + "/index.php"})
        for _ in range(5):
            if response.status_code not in (301, 302, 303):
                break
            location = response.headers["Location"]
            if location.startswith("http") and not location.startswith(self.base):
                raise CrmWebError(f"redirected away to {location}")
            response = self.client.get(location.removeprefix(self.base))
        response.raise_for_status()
        match = _TOKEN.search(response.text)
        if match:
            self.token = match.group(1)
        return response.text

    def login(self, user: str, password: str) -> None:
        self._page("/index.php")
        response = self.client.post(
            "/index.php",
            data={"module": "Users", "action": "Login", "username": user, "password": password},
        )
        location = response.headers.get("Location", "")
        if response.status_code not in (301, 302, 303) or "error=" in location:
            raise CrmWebError(f"login as {user} failed: HTTP {response.status_code} {location}")
        self._page("/index.php")  # the session id changed at login: a fresh CSRF token
        if not self.token:
            raise CrmWebError("no CSRF token on the landing page")

    def post(self, data: dict[str, str], files: dict[str, Any] | None = None) -> httpx.Response:
        """A POST to index.php with the CSRF token, as the CRM's own pages send it."""
        body = {**data, "__vtrftk": self.token}
        return self.client.post(
            "/index.php", data=body, files=files, headers={"Referer": self.base + "/index.php"}
        )

    def ajax(self, data: dict[str, str]) -> dict[str, Any]:
        response = self.post(data)
        if response.status_code != 200:
            raise CrmWebError(f"{data.get('action')}: HTTP {response.status_code}")
        try:
            answer: dict[str, Any] = json.loads(response.text)
        except ValueError:
            raise CrmWebError(f"{data.get('action')}: not JSON: {response.text[:300]}") from None
        return answer

    # --- Module Manager ------------------------------------------------------------------

    def import_module(self, zip_path: Path) -> dict[str, Any]:
        """Settings -> Module Management -> Import module from zip: upload, then Import (or
        Update, when the module is already installed). Returns the final JSON answer plus
        ``updated``."""
        self._page(
            "/index.php?module=ModuleManager&parent=Settings&view=ModuleImport"
            "&mode=importUserModuleStep1"
        )
        with zip_path.open("rb") as fh:
            response = self.post(
                {
                    "module": "ModuleManager",
                    "moduleAction": "Import",
                    "parent": "Settings",
                    "view": "ModuleImport",
                    "mode": "importUserModuleStep2",
                    "acceptDisclaimer": "on",
                },
                files={"moduleZip": (zip_path.name, fh, "application/zip")},
            )
        if response.status_code != 200:
            raise CrmWebError(f"upload: HTTP {response.status_code}")
        fields = hidden_inputs(response.text)
        if "module_import_file" not in fields:
            raise CrmWebError("the CRM did not accept the zip:\n" + _text_of(response.text)[:2000])
        updating = "updateModule" in response.text
        answer = self.ajax(
            {
                "module": "ModuleManager",
                "parent": "Settings",
                "action": "Basic",
                "mode": "updateUserModuleStep3" if updating else "importUserModuleStep3",
                "module_import_file": fields["module_import_file"],
                "module_import_type": fields.get("module_import_type", ""),
                "module_import_name": fields.get("module_import_name", ""),
            }
        )
        if not answer.get("success"):
            raise CrmWebError(f"import failed: {answer}")
        answer["updated"] = updating
        return answer

    def set_module_enabled(self, name: str, enabled: bool) -> None:
        """The on/off switch of Module Management (vtlib fires module.enabled / .disabled)."""
        answer = self.ajax(
            {
                "module": "ModuleManager",
                "parent": "Settings",
                "action": "Basic",
                "mode": "updateModuleStatus",
                "forModule": name,
                "updateStatus": "true" if enabled else "false",
            }
        )
        if not answer.get("success"):
            raise CrmWebError(f"updateModuleStatus {name}: {answer}")

    def page(self, url: str) -> str:
        return self._page(url)

    # --- users ---------------------------------------------------------------------------

    def create_user(self, user: str, password: str, *, first: str, last: str, ext: str,
                    role: str = "H3") -> None:
        """Settings -> Users -> Add User, the form submitted as a browser would."""
        page = self._page("/index.php?module=Users&parent=Settings&view=Edit")
        fields = dict(form_fields(page, "EditView"))
        if not fields:
            raise CrmWebError("no Add User form")
        fields.update({
            "user_name": user, "first_name": first, "last_name": last,
            "email1": f"{user}@example.com", "user_password": password,
            "confirm_password": password, "roleid": role, "phone_crm_extension": ext,
            "status": "Active", "__vtrftk": self.token,
        })
        response = self.client.post("/index.php", data=fields,
                                    headers={"Referer": self.base + "/index.php"})
        if response.status_code not in (200, 301, 302, 303):
            raise CrmWebError(f"Add User {user}: HTTP {response.status_code}")

    def first_login(self, user: str, password: str) -> None:
        """A new user's first sign-in lands on the set-up page: submit it like a browser."""
        self._page("/index.php")
        response = self.client.post(
            "/index.php",
            data={"module": "Users", "action": "Login", "username": user, "password": password},
        )
        location = response.headers.get("Location", "")
        if "error=" in location:
            raise CrmWebError(f"login as {user} failed")
        page = self._page(location.removeprefix(self.base) or "/index.php")
        if "UserSetup" in page and 'name="record"' in page:
            record = re.search(r'name="record" value="(\d+)"', page)
            self.client.post("/index.php", data={
                "module": "Users", "action": "UserSetupSave", "__vtrftk": self.token,
                "record": record.group(1) if record else "", "lang_name": "en_us",
                "time_zone": "UTC", "date_format": "yyyy-mm-dd"},
                headers={"Referer": self.base + "/index.php"})


def _text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
