"""A StartApp whose answer is lost leaves one row in the real vtiger (docs/crm.md).

Between pinc and the lab's vtiger 8.2 sits a small proxy that passes every request on,
but holds the answer to each call's first ``StartApp`` past ``crm.timeout``, as a loaded
PHP does: vtiger has inserted the call's row, pinc sees no answer and tries again. Before
the resend pinc must ask vtiger's webservice, find the row, and not insert a second one.
The calls are real ones, placed on the kit's Local office.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from tests.lab.lab import Crm, Office, PincRun, office_config
from tests.lab.test_crm_rows import ANNA, Ami, crm_rows, crm_section, free_port, settled

TIMEOUT = 1.0  # crm.timeout for this pinc
HOLD = 2.5  # how long the proxy holds a first StartApp's answer


class LateProxy:
    """Forwards to ``target``; the first StartApp of each call is answered after HOLD s."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.held: list[str] = []  # callUUIDs whose StartApp answer came late
        self.startapps: list[str] = []  # callUUIDs of every StartApp passed on
        self.queries: list[str] = []  # webservice queries passed on
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes | None) -> None:
                fields = parse_qs((body or b"").decode()) | parse_qs(
                    self.path.partition("?")[2])
                if "query" in fields:
                    proxy.queries.append(fields["query"][0])
                late = False
                if fields.get("callstatus") == ["StartApp"]:
                    uuid = fields.get("callUUID", [""])[0]
                    proxy.startapps.append(uuid)
                    late = uuid not in proxy.held
                    if late:
                        proxy.held.append(uuid)
                request = urllib.request.Request(
                    proxy.target + self.path, data=body, method=self.command,
                    headers={k: v for k, v in self.headers.items()
                             if k.lower() in ("content-type", "cookie")})
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, data = answer.status, answer.read()
                        kind = answer.headers.get("Content-Type", "text/html")
                except urllib.error.HTTPError as exc:
                    status, data, kind = exc.code, exc.read(), "text/html"
                if late:
                    time.sleep(HOLD)  # vtiger did it; pinc has given up waiting
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # pinc closed the connection at its timeout

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LateProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_late_startapp_answer_leaves_one_row(local_office: Office, vtiger: Crm,
                                               tmp_path: Path) -> None:
    with LateProxy(vtiger.url) as proxy:
        port = free_port()
        crm = {**crm_section(vtiger), "url": proxy.url, "timeout": TIMEOUT}
        config = office_config(local_office, tmp_path, crm=crm,
                               web={"listen": f"127.0.0.1:{port}",
                                    "public_url": f"http://127.0.0.1:{port}"})
        run = PincRun(config, tmp_path).start()
        try:
            ami = Ami(local_office)
            try:  # 101 calls Anna; Anna calls the direct number of 101
                ami.originate(f"Local/{ANNA}@from-internal", "hold", "101", 30000,
                              __PSTN_TALK=3)
                time.sleep(8)
                ami.originate("Local/74951230101@from-trunk", "talk", ANNA, 30000,
                              SIM_CALLER=ANNA, __RINGTIME_101=1, TALK=3)
            finally:
                ami.close()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not (
                    len(proxy.held) >= 2 and settled(run.journal)):
                time.sleep(0.5)
            assert settled(run.journal), "pinc did not deliver the calls"
        finally:
            run.stop()
    assert len(proxy.held) == 2, proxy.startapps
    # each StartApp went to vtiger once: the resend was answered by the webservice
    assert sorted(proxy.startapps) == sorted(proxy.held), proxy.startapps
    assert sum("PBXManager" in q for q in proxy.queries) >= 2, proxy.queries
    for call_id in proxy.held:
        rows = crm_rows(vtiger, call_id)
        assert len(rows) == 1, (call_id, rows)
        assert rows[0]["callstatus"] == "completed", rows
