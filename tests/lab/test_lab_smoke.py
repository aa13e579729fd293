"""The lab tier's first check: pinc run logs in to the real Asterisk and says so on /ping."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from tests.lab.lab import Office, office_config, pinc_run


def test_pinc_run_connects_to_the_pjsip_office(pjsip_office: Office, tmp_path: Path) -> None:
    token = "lab-smoke-token-0123456789abcdef"
    config = office_config(pjsip_office, tmp_path, web={"token": token})
    with pinc_run(config, tmp_path) as run:
        deadline = time.monotonic() + 20
        ami: dict[str, object] = {}
        while time.monotonic() < deadline:  # wait for the login, however long it takes
            req = urllib.request.Request(
                f"{run.url}/ping", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                body = json.loads(r.read())
            ami = body.get("ami") or {}
            if ami.get("connected"):
                break
            time.sleep(0.2)
        assert ami.get("connected"), body
