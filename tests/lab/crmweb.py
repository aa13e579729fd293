"""vtiger's web interface driven over HTTP like a browser: sign in, then Module Manager.

Used by the lab tests of pinc's vtiger module (tests/lab/test_module_*.py) on the real
vtiger 8.2 and SalesPlatform 7.2: the import goes through the same requests an administrator's
browser sends (Settings -> Module Management -> Import module from zip), CSRF token included.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import httpx

_TOKEN = re.compile(r'var csrfMagicToken\s*=\s*"([^"]+)"')
_HIDDEN = re.compile(r'<input[^>]*type=["\']hidden["\'][^>]*>', re.I)
_ATTR = re.compile(r'(\w+)=["\']([^"\']*)["\']')


class CrmWebError(AssertionError):
    pass


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


def _text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
