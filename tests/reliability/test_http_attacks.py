"""A table of attacks on every HTTP route of a real WebServer (Hypercorn on 127.0.0.1:0).

Each row is sent as raw bytes (so no client library normalises ``%2e%2e`` or CR/LF
away) and must get one of the expected statuses; nothing that a request carries may
reach an AMI action. ``PINC_ATTACK_TABLE=FILE`` writes the table of what each attack got
(Markdown) for docs/reliability.md. Slowloris: a client trickling its headers is cut
off by the server while /ping keeps answering.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import trio

from tests.reliability.conftest import add, record
from tests.web.harness import SECRET, TOKEN, Env, call_dict, change, start_env

BAD = {400, 404, 405, 413, 414, 431}


@dataclass
class Attack:
    route: str
    attack: str
    method: str
    target: str
    expect: set[int]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw_head: bytes | None = None  # replaces the whole request head when set
    timeout: float = 15.0  # how long the client waits for the answer


def q(value: str) -> str:
    return quote(value, safe="")


def form(**params: str) -> bytes:
    return "&".join(f"{q(k)}={q(v)}" for k, v in params.items()).encode()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json", **AUTH}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
S = q(SECRET)
CRLF = "\r\nAction: Hangup\r\nChannel: PJSIP/999"


def attacks(outside: Path) -> list[Attack]:
    rows = [
        # --- credentials ------------------------------------------------------------------
        Attack("/makecall", "no secret", "GET", "/makecall?from=101&to=79001234567", {403}),
        Attack("/makecall", "wrong secret", "GET",
               "/makecall?secret=wrong&from=101&to=79001234567", {403}),
        Attack("/makecall", "secret + NUL suffix", "GET",
               f"/makecall?secret={S}%00&from=101&to=79001234567", {403}),
        Attack("/makecall", "secret as a prefix", "GET",
               f"/makecall?secret={q(SECRET[:-1])}&from=101&to=79001234567", {403}),
        Attack("/makecall", "empty secret", "POST", "/makecall?secret=&from=101&to=79001", {403}),
        Attack("/recording", "no secret", "GET", "/recording?id=c-ok", {403}),
        Attack("/recording", "wrong secret", "GET", "/recording?id=c-ok&secret=x", {403}),
        Attack("/transfer", "no secret", "POST", "/transfer?call=c-ok&to=102", {403}),
        Attack("/transfer", "secret in a header only", "POST", "/transfer?call=c-ok&to=102",
               {403}, headers={"X-Secret": SECRET}),
        Attack("/responsible", "no secret", "GET", "/responsible?number=79161234567", {403}),
        Attack("/api/calls", "no token", "GET", "/api/calls", {401}),
        Attack("/api/calls", "wrong bearer token", "GET", "/api/calls", {401},
               headers={"Authorization": "Bearer nope"}),
        Attack("/api/calls", "empty bearer", "GET", "/api/calls", {401},
               headers={"Authorization": "Bearer "}),
        Attack("/api/calls", "token as Basic auth", "GET", "/api/calls", {401},
               headers={"Authorization": f"Basic {TOKEN}"}),
        Attack("/api/calls", "wrong token in query", "GET", "/api/calls?token=x", {401}),
        Attack("/api/calls", "the right token in the query", "GET",
               f"/api/calls?token={TOKEN}", {401}),
        Attack("/api/calls", "wrong cookie", "GET", "/api/calls", {401},
               headers={"Cookie": "pinc_session=x"}),
        Attack("/api/calls", "0.1.0's cookie (the token itself)", "GET", "/api/calls", {401},
               headers={"Cookie": f"pinc_token={TOKEN}"}),
        Attack("/api/calls", "the crm secret as token", "GET", "/api/calls", {401},
               headers={"Authorization": f"Bearer {SECRET}"}),
        Attack("/api/live", "no token", "GET", "/api/live", {401}),
        Attack("/api/calls/{id}", "no token", "GET", "/api/calls/c-ok", {401}),
        Attack("/api/calls/{id}/recording", "no token", "GET", "/api/calls/c-ok/recording",
               {401}),
        Attack("POST /api/calls", "no token", "POST", "/api/calls", {401},
               headers={"Content-Type": "application/json"},
               body=b'{"from":"101","to":"79001234567"}'),
        Attack("/api/calls/{id}/transfer", "no token", "POST", "/api/calls/c-ok/transfer",
               {401}, headers={"Content-Type": "application/json"}, body=b'{"to":"102"}'),
        Attack("/ws", "no token", "GET", "/ws", {401, 403}, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}),
        Attack("/ws", "wrong token", "GET", "/ws?token=x", {401, 403}, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}),
        Attack("/", "no token", "GET", "/", {401}),
        Attack("/", "wrong token in query", "GET", "/?token=x", {401}),
        Attack("/", "the right token in the query", "GET", f"/?token={TOKEN}", {401}),
        Attack("/ws", "the right token in the query", "GET", f"/ws?token={TOKEN}", {401},
               headers={"Upgrade": "websocket", "Connection": "Upgrade",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}),
        Attack("/signin/{code}", "a made-up sign-in code", "GET", "/signin/abc", {401}),
        Attack("/login", "wrong token", "POST", "/login", {401}, headers=FORM,
               body=b"token=guess"),
        Attack("/api/openapi.json", "public by design", "GET", "/api/openapi.json", {200}),
        Attack("/ping", "public, no secrets in body", "GET", "/ping", {200}),
        # --- recordings: traversal --------------------------------------------------------
        Attack("/recording", "id=../../etc/passwd", "GET",
               f"/recording?secret={S}&id=../../etc/passwd", {400}),
        Attack("/recording", "id=%2e%2e%2f%2e%2e%2fetc%2fpasswd", "GET",
               f"/recording?secret={S}&id=%2e%2e%2f%2e%2e%2fetc%2fpasswd", {400}),
        Attack("/recording", "id with NUL", "GET", f"/recording?secret={S}&id=c-ok%00", {400}),
        Attack("/recording", "absolute id", "GET", f"/recording?secret={S}&id=/etc/passwd",
               {400}),
        Attack("/recording", "journal name ../secret.wav", "GET",
               f"/recording?secret={S}&id=c-dotdot", {404}),
        Attack("/recording", "journal name %2e%2e/secret.wav", "GET",
               f"/recording?secret={S}&id=c-enc", {404}),
        Attack("/recording", "journal name absolute path", "GET",
               f"/recording?secret={S}&id=c-abs", {404}),
        Attack("/recording", "journal name with NUL", "GET",
               f"/recording?secret={S}&id=c-nul", {404}),
        Attack("/recording", "symlink inside pointing out", "GET",
               f"/recording?secret={S}&id=c-link", {404}),
        Attack("/recording", "symlinked directory pointing out", "GET",
               f"/recording?secret={S}&id=c-dirlink", {404}),
        Attack("/recording", "the recordings dir itself", "GET",
               f"/recording?secret={S}&id=c-dir", {404}),
        Attack("/recording", "control: a real recording", "GET",
               f"/recording?secret={S}&id=c-ok", {200}),
        Attack("/api/calls/{id}/recording", "id ..%2f..%2fetc", "GET",
               "/api/calls/..%2f..%2fetc/recording", {400, 404}, headers=AUTH),
        Attack("/api/calls/{id}/recording", "journal name ../secret.wav", "GET",
               "/api/calls/c-dotdot/recording", {404}, headers=AUTH),
        Attack("/static", "/static/../app.py", "GET", "/static/../app.py", {400, 404}),
        Attack("/static", "/static/%2e%2e/app.py", "GET", "/static/%2e%2e/app.py", {400, 404}),
        Attack("/static", "/static/..%2f..%2fconfig.py", "GET", "/static/..%2f..%2fconfig.py",
               {400, 404}),
        Attack("/static", "/static/%2e%2e%2f%2e%2e%2fjournal (db)", "GET",
               "/static/%2e%2e%2f%2e%2e%2fpinc.db", {400, 404}),
        Attack("/static", "absolute /static//etc/passwd (redirect stays in /static)", "GET",
               "/static//etc/passwd", {308, 400, 404}),
        Attack("/static", "outside file by absolute path", "GET",
               "/static/" + str(outside).lstrip("/"), {400, 404}),
        # --- injection into AMI -----------------------------------------------------------
        Attack("/makecall", "CRLF in from", "GET",
               f"/makecall?secret={S}&from={q('101' + CRLF)}&to=79001234567", {400}),
        Attack("/makecall", "CRLF in to", "GET",
               f"/makecall?secret={S}&from=101&to={q('79001234567' + CRLF)}", {400}),
        Attack("/makecall", "LF only in to", "GET",
               f"/makecall?secret={S}&from=101&to={q('79001234567' + chr(10) + 'X: y')}", {400}),
        Attack("/makecall", "second channel with &", "GET",
               f"/makecall?secret={S}&from=101&to={q('79001234567&PJSIP/999')}", {400}),
        Attack("/makecall", "channel in to", "GET",
               f"/makecall?secret={S}&from=101&to={q('Local/666@from-internal')}", {400}),
        Attack("/makecall", "technology in from", "GET",
               f"/makecall?secret={S}&from={q('PJSIP/101')}&to=79001234567", {400}),
        Attack("/makecall", "context in from", "GET",
               f"/makecall?secret={S}&from={q('101@evil')}&to=79001234567", {400}),
        Attack("/makecall", "dial options in to", "GET",
               f"/makecall?secret={S}&from=101&to={q('79001234567,30,gU(x)')}", {400}),
        Attack("/makecall", "CRLF in context", "GET",
               f"/makecall?secret={S}&from=101&to=79001234567&context={q('x' + CRLF)}", {400}),
        Attack("/makecall", "CRLF in body (POST form)", "POST", f"/makecall?secret={S}", {400},
               headers=FORM, body=form(**{"from": "101" + CRLF, "to": "79001234567"})),
        Attack("/makecall", "trailing LF in from ($ trap)", "GET",
               f"/makecall?secret={S}&from=101%0a&to=79001234567", {400}),
        Attack("/transfer", "CRLF in to", "POST",
               f"/transfer?secret={S}&call=c-live&to={q('102' + CRLF)}", {400}),
        Attack("/transfer", "channel in to", "POST",
               f"/transfer?secret={S}&call=c-live&to={q('Local/102@evil')}", {400}),
        Attack("/transfer", "CRLF in ext", "POST",
               f"/transfer?secret={S}&ext={q('101' + CRLF)}&to=102", {400}),
        Attack("/transfer", "traversal in call", "POST",
               f"/transfer?secret={S}&call=../../x&to=102", {400}),
        Attack("/transfer", "bad mode", "POST",
               f"/transfer?secret={S}&call=c-live&to=102&mode={q('blind' + CRLF)}", {400}),
        Attack("/responsible", "CRLF in number", "GET",
               f"/responsible?secret={S}&number={q('79161234567' + CRLF)}", {400}),
        Attack("POST /api/calls", "CRLF in from", "POST", "/api/calls", {400}, headers=JSON,
               body=json.dumps({"from": "101" + CRLF, "to": "79001234567"}).encode()),
        Attack("POST /api/calls", "CRLF in a variable value", "POST", "/api/calls", {400},
               headers=JSON, body=json.dumps({"from": "101", "to": "79001234567",
                                              "variables": {"a": "b" + CRLF}}).encode()),
        Attack("POST /api/calls", "dialplan function as variable", "POST", "/api/calls", {400},
               headers=JSON, body=json.dumps({"from": "101", "to": "79001234567",
                                              "variables": {"CALLERID(num)": "1"}}).encode()),
        Attack("POST /api/calls", "nested object as from", "POST", "/api/calls", {400},
               headers=JSON, body=b'{"from": {"x": 1}, "to": "79001234567"}'),
        Attack("POST /api/calls", "not JSON", "POST", "/api/calls", {400}, headers=JSON,
               body=b"\xff\xfe{"),
        Attack("/api/calls/{id}/transfer", "CRLF in to", "POST", "/api/calls/c-live/transfer",
               {400}, headers=JSON, body=json.dumps({"to": "102" + CRLF}).encode()),
        Attack("/api/calls", "CRLF in ext filter (response splitting)", "GET",
               "/api/calls?ext=101%0d%0aSet-Cookie:%20x=1", {400}, headers=AUTH),
        Attack("/api/calls", "SQL in number filter", "GET",
               f"/api/calls?number={q(chr(39) + ' OR 1=1 --')}", {400}, headers=AUTH),
        Attack("/api/calls", "forged cursor", "GET", "/api/calls?cursor=abc", {400},
               headers=AUTH),
        Attack("/api/calls", "limit=-1", "GET", "/api/calls?limit=-1", {400}, headers=AUTH),
        # --- size ---------------------------------------------------------------------------
        Attack("/makecall", "10 MB form body", "POST", f"/makecall?secret={S}", {413},
               headers=FORM, body=b"a=" + b"x" * 10_000_000),
        Attack("POST /api/calls", "2 MB JSON body", "POST", "/api/calls", {413}, headers=JSON,
               body=b'{"from":"' + b"1" * 2_000_000 + b'"}'),
        Attack("/login", "1 MB form body", "POST", "/login", {413}, headers=FORM,
               body=b"token=" + b"x" * 1_000_000),
        Attack("/ping", "100 KB header", "GET", "/ping", {400, 431},
               headers={"X-Big": "x" * 100_000}),
        # h11 refuses an incomplete head over 16 KiB; a head that arrives in one read is parsed
        Attack("/ping", "20 KB URL", "GET", "/ping?x=" + "y" * 20_000, {200, 400, 414, 431}),
        Attack("/ping", "5,000 headers", "GET", "/ping", {200, 400, 431},
               raw_head=b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n"),
        Attack("/ping", "bare LF request, HTTP/0.9", "GET", "/ping", {400, None},  # type: ignore[arg-type]
               raw_head=b"GET /ping\n\n"),
        Attack("/makecall", "Content-Length lies (short body): no answer in 3 s, body awaited",
               "POST", f"/makecall?secret={S}", {400, 408, 413, None},  # type: ignore[arg-type]
               headers={**FORM, "Content-Length": "100"}, body=b"from=101", timeout=3.0),
    ]
    return rows


def encode(attack: Attack) -> bytes:
    if attack.raw_head is not None:
        return attack.raw_head
    headers = {"Host": "127.0.0.1", "Connection": "close", **attack.headers}
    if attack.body or attack.method == "POST":
        headers.setdefault("Content-Length", str(len(attack.body)))
    head = f"{attack.method} {attack.target} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + attack.body


async def exchange(port: int, data: bytes, *, timeout: float = 15) -> bytes:
    """Send ``data`` and read until the server closes (what the server sent, even if it
    closed while the client was still sending)."""
    got = bytearray()
    with trio.move_on_after(timeout):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:

            async def send() -> None:
                try:
                    for i in range(0, len(data), 65536):
                        await stream.send_all(data[i : i + 65536])
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                try:
                    while chunk := await stream.receive_some(65536):
                        got += chunk
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                nursery.cancel_scope.cancel()
    return bytes(got)


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


async def seed(env: Env, tmp_path: Path) -> Path:
    rec = env.recordings
    (rec / "ok.wav").write_bytes(b"RIFF" + b"\x01" * 2000)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF" + b"\x02" * 2000)
    (rec / "link.wav").symlink_to(outside)
    (rec / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    names = {
        "c-ok": "ok.wav",
        "c-dotdot": "../secret.wav",
        "c-enc": "%2e%2e/secret.wav",
        "c-abs": str(outside),
        "c-nul": "ok.wav\x00.txt",
        "c-link": "link.wav",
        "c-dirlink": "dirlink/secret.wav",
        "c-dir": ".",
    }
    for call_id, name in names.items():
        call = call_dict(call_id, status="completed", ended_at="2026-11-24T00:43:00Z",
                         answered_by="101", recording=name)
        await env.put([change("call.ended", call)])
    live = call_dict("c-live", status="answered")
    await env.put([change("call.answered", live)])
    env.ingest.live = [live]
    env.ingest.channels["c-live"] = [
        {"channel": "PJSIP/trunk-00000001", "uniqueid": "1.1", "ext": "", "role": "customer"},
        {"channel": "PJSIP/101-00000002", "uniqueid": "1.2", "ext": "101", "role": "employee"},
    ]
    return outside


def markdown(results: list[tuple[Attack, int | None, float]]) -> str:
    lines = ["| route | attack | response | time (ms) |", "|---|---|---|---|"]
    for attack, status, ms in results:
        got = "connection closed" if status is None else str(status)
        lines.append(f"| `{attack.route}` | {attack.attack} | {got} | {ms:.0f} |")
    return "\n".join(lines) + "\n"


async def test_attack_table(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(120):
        env = await start_env(nursery, tmp_path)
        outside = await seed(env, tmp_path)
        results: list[tuple[Attack, int | None, float]] = []
        failures = []
        for attack in attacks(outside):
            t0 = time.perf_counter()
            answer = await exchange(env.port, encode(attack), timeout=attack.timeout)
            ms = (time.perf_counter() - t0) * 1000
            status = status_of(answer)
            results.append((attack, status, ms))
            if status not in attack.expect:
                failures.append(f"{attack.route} {attack.attack}: {status} {answer[:300]!r}")
            head, _, body = answer.partition(b"\r\n\r\n")
            # no secret, token or outside file ever comes back, no header was injected
            assert SECRET.encode() not in body and TOKEN.encode() not in body, attack.attack
            assert b"\x02" * 100 not in body, attack.attack
            assert b"set-cookie: x=1" not in head.lower(), attack.attack
        # the server is still fine after all of it
        answer = await exchange(env.port, encode(Attack("/ping", "", "GET", "/ping", {200})))
        assert status_of(answer) == 200
        await trio.sleep(0.2)  # let any spawned Originate run
    assert not failures, "\n".join(failures)
    # nothing an attack carried reached AMI
    assert env.ami.actions == [], env.ami.actions
    add("http.attacks_tried", len(results))
    record("http.attack_statuses", {str(s): sum(1 for _, x, _ in results if x == s)
                                    for s in {x for _, x, _ in results}})
    target = os.environ.get("PINC_ATTACK_TABLE")
    if target:
        Path(target).write_text(markdown(results), encoding="utf-8")  # noqa: ASYNC240


async def test_slowloris_cut_off_while_ping_answers(nursery: trio.Nursery,
                                                    tmp_path: Path) -> None:
    """50 clients trickle header bytes; each is cut off, /ping answers all along."""
    with trio.fail_after(60):
        env = await start_env(nursery, tmp_path)
        cut: list[float] = []
        pings: list[float] = []

        async def trickler() -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", env.port)
            start = trio.current_time()
            try:
                await stream.send_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                for i in range(100):
                    await stream.send_all(b"X-%d: y\r\n" % i)
                    with trio.move_on_after(1.0):
                        if await stream.receive_some(1024) == b"":
                            break
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            cut.append(trio.current_time() - start)
            await stream.aclose()

        async with trio.open_nursery() as inner:
            for _ in range(50):
                inner.start_soon(trickler)
            while len(cut) < 50:
                t0 = time.perf_counter()
                answer = await exchange(env.port, encode(Attack("/ping", "", "GET", "/ping",
                                                                {200})), timeout=5)
                pings.append((time.perf_counter() - t0) * 1000)
                assert status_of(answer) == 200
                await trio.sleep(0.2)
    assert len(cut) == 50 and max(cut) < 60  # every trickler was cut off (not after 100 s)
    pings.sort()
    record("http.slowloris_cut_after_s", round(max(cut), 1))
    record("http.slowloris_ping_ms_p50_max", (round(pings[len(pings) // 2], 1),
                                              round(pings[-1], 1)))
