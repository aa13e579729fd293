"""The vtiger-compatible endpoints, with the quirks of the real vtiger 8.2 client."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from pinc import metrics
from tests.web.harness import SECRET, Env, call_dict, change

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vtiger"
CAPTURED = json.loads((FIXTURES / "makecall-captured.json").read_text())["captured_request"]


async def _wait_actions(env: Env, n: int = 1) -> None:
    with trio.fail_after(5):
        while len(env.ami.actions) < n:  # noqa: ASYNC110 (polls state another task owns)
            await trio.sleep(0.005)


async def _raw(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes (Connection: close)."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            out = b""
            while chunk := await stream.receive_some(65536):
                out += chunk
            return out


async def test_makecall_exactly_as_vtiger_82_sent_it(env: Env) -> None:
    """Replay the captured request byte for byte (POST, query string, empty body, close)."""
    headers = "".join(f"{k}: {v}\r\n" for k, v in CAPTURED["headers"].items())
    raw = f"{CAPTURED['request_line']}\r\n{headers}\r\n".encode()
    answer = await _raw(env.port, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body.strip() == b"Success"
    await _wait_actions(env)
    name, fields = env.ami.actions[0]
    assert name == "Originate"
    channel_id = dict(fields)["ChannelId"]
    assert fields == [
        ("Channel", "PJSIP/101"),
        ("Context", "from-internal"),
        ("Exten", "79161234567"),
        ("Priority", "1"),
        ("CallerID", '"CRM 79161234567" <101>'),
        ("Timeout", "30000"),
        ("Async", "true"),
        ("ChannelId", channel_id),
    ]
    assert env.ingest.notes == [
        (channel_id, {"ext": "101", "number": "79161234567", "record_id": None, "origin": "crm"})
    ]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", ["/makecall", "//makecall", "///makecall"])
async def test_makecall_get_post_and_double_slash(
    env: Env, client: httpx.AsyncClient, method: str, path: str
) -> None:
    url = env.base + path + f"?event=OutgoingCall&secret={SECRET}&from=102&to=%2B79161234567"
    r = await client.request(method, url)
    assert (r.status_code, r.text) == (200, "Success")
    await _wait_actions(env)
    fields = dict(env.ami.actions[0][1])
    assert fields["Channel"] == "PJSIP/102"
    assert fields["Exten"] == "79161234567"
    assert fields["Context"] == "from-internal"  # pbx.originate_context when none is given


async def test_makecall_unencoded_plus_arrives_as_space(env: Env) -> None:
    answer = await _raw(
        env.port,
        f"GET /makecall?secret={SECRET}&from=101&to=+79161234567 HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.endswith(b"Success")
    await _wait_actions(env)
    assert dict(env.ami.actions[0][1])["Exten"] == "79161234567"


async def test_makecall_record_and_whitelisted_variables(
    env: Env, client: httpx.AsyncClient
) -> None:
    r = await client.post(
        "/makecall",
        params={
            "event": "OutgoingCall", "secret": SECRET, "from": "101", "to": "79161234567",
            "context": "vtiger-out", "record": "2", "deal": "Q4 renewal",
            "TRANSFER_CONTEXT": "evil", "x)": "1", "note": "a,b", "bad": "x\r\nAction: Hangup",
        },
    )
    assert r.text == "Success"
    await _wait_actions(env)
    fields = env.ami.actions[0][1]
    # vtiger-out is not in pbx.originate_contexts: a hint ignored for the default
    assert ("Context", "from-internal") in fields
    assert [v for k, v in fields if k == "Variable"] == ["deal=Q4 renewal"]
    assert env.ingest.notes[0][1]["record_id"] == "2"


@pytest.mark.parametrize(
    "secret", [None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper()]
)
async def test_makecall_wrong_secret(
    env: Env, client: httpx.AsyncClient, secret: str | None
) -> None:
    before = metrics.AUTH_FAILURES.labels(route="/makecall")._value.get()
    params = {"event": "OutgoingCall", "from": "101", "to": "79161234567"}
    if secret is not None:
        params["secret"] = secret
    r = await client.post("/makecall", params=params)
    assert r.text == "Authentication Failure"
    assert r.status_code == 403
    assert metrics.AUTH_FAILURES.labels(route="/makecall")._value.get() == before + 1
    await trio.sleep(0.05)
    assert env.ami.actions == [] and env.ingest.notes == []


BAD_FROM = [
    None, "", "1", "123456", "abc", "101\n", "101\r\nAction: Hangup", "PJSIP/101", "101&102",
    "101@ctx", "101,1", "Local/101@phones", "../101", "101 ", "１０１",
]
BAD_TO = [
    None, "", "7916123456a", "79161234567\r\nChannel: PJSIP/999", "79161234567,1",
    "79161234567&102", "sip:79161234567@trunk", "PJSIP/trunk/79161234567", "7916/123",
    "79161234567@from-internal", "1" * 25, "++79161234567", "7;9",
]


@pytest.mark.parametrize("bad", BAD_FROM)
async def test_makecall_bad_from_is_400_and_nothing_reaches_ami(
    env: Env, client: httpx.AsyncClient, bad: str | None
) -> None:
    params = {"secret": SECRET, "to": "79161234567"}
    if bad is not None:
        params["from"] = bad
    r = await client.post("/makecall", params=params)
    assert (r.status_code, r.text) == (400, "Error")
    await trio.sleep(0.02)
    assert env.ami.actions == [] and env.ingest.notes == []


@pytest.mark.parametrize("bad", BAD_TO)
async def test_makecall_bad_to_is_400(env: Env, client: httpx.AsyncClient, bad: str | None) -> None:
    params = {"secret": SECRET, "from": "101"}
    if bad is not None:
        params["to"] = bad
    r = await client.post("/makecall", params=params)
    assert (r.status_code, r.text) == (400, "Error")
    await trio.sleep(0.02)
    assert env.ami.actions == []


@pytest.mark.parametrize("bad", ["from-internal\r\nX: y", "ctx,1", "ctx@x", "a/b", "c t x"])
async def test_makecall_bad_context_is_400(env: Env, client: httpx.AsyncClient, bad: str) -> None:
    r = await client.post(
        "/makecall", params={"secret": SECRET, "from": "101", "to": "79161234567", "context": bad}
    )
    assert (r.status_code, r.text) == (400, "Error")


async def test_makecall_formatted_number_is_accepted(env: Env, client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/makecall", params={"secret": SECRET, "from": "101", "to": "+7 (916) 123-45-67"}
    )
    assert r.text == "Success"
    await _wait_actions(env)
    assert dict(env.ami.actions[0][1])["Exten"] == "79161234567"


async def test_makecall_without_ami_answers_error_at_once(
    env: Env, client: httpx.AsyncClient
) -> None:
    env.ami.connected = False
    r = await client.post("/makecall", params={"secret": SECRET, "from": "101",
                                               "to": "79161234567"})
    assert (r.status_code, r.text) == (503, "Error")


async def test_responsible(env: Env, client: httpx.AsyncClient) -> None:
    r = await client.get("/responsible", params={"secret": SECRET, "number": "+79161234567"})
    assert (r.status_code, r.text) == (200, "102")
    r = await client.get(
        "/responsible", params={"secret": SECRET, "number": "79161234567", "format": "json"}
    )
    assert r.json() == {
        "number": "79161234567", "ext": "102", "user": "manager2",
        "customer_name": "ООО Ромашка", "source": "crm",
    }
    r = await client.get("/responsible", params={"secret": SECRET, "number": "79990000000"})
    assert (r.status_code, r.text) == (200, "")
    r = await client.get("/responsible", params={"secret": SECRET, "number": "7916\n"})
    assert r.status_code == 400
    r = await client.get("/responsible", params={"number": "79161234567"})
    assert (r.status_code, r.text) == (403, "Authentication Failure")
    assert env.router.asked == ["79161234567", "79161234567", "79990000000"]


LIVE_CHANNELS = [
    {"channel": "PJSIP/trunk-0000000b", "uniqueid": "1.1", "ext": "", "role": "customer",
     "bridge": "b-1", "partner": "employee"},
    {"channel": "PJSIP/101-0000000c", "uniqueid": "1.2", "ext": "101", "role": "employee",
     "bridge": "b-1", "partner": "customer"},
]
# An inbound call answered by a Local-channel member (Local/101@phones-..;1 is bridged with
# the caller; its ;2 half runs the phone and is in no bridge with the caller).
LOCAL_CHANNELS = [
    {"channel": "Local/74951230101@from-trunk-00000010;1", "uniqueid": "2.0", "ext": "",
     "role": "customer", "bridge": "", "partner": ""},
    {"channel": "Local/74951230101@from-trunk-00000010;2", "uniqueid": "2.1", "ext": "",
     "role": "customer", "bridge": "b-2", "partner": "employee"},
    {"channel": "Local/101@phones-00000011;1", "uniqueid": "2.2", "ext": "101",
     "role": "employee", "bridge": "b-2", "partner": "customer"},
    {"channel": "Local/101@phones-00000011;2", "uniqueid": "2.3", "ext": "101",
     "role": "employee", "bridge": "", "partner": ""},
]


async def test_transfer_by_call_and_by_ext(env: Env, client: httpx.AsyncClient) -> None:
    env.ingest.channels["c1"] = LIVE_CHANNELS
    env.ingest.live = [call_dict("c1", status="answered", answered_by="101")]
    r = await client.post("/transfer", data={"secret": SECRET, "call": "c1", "to": "102"})
    assert (r.status_code, r.text) == (200, "Success")
    # asked, then accepted: only then is it recorded as a "crm" transfer
    assert env.ingest.notes[-2:] == [
        ("c1", {"transfer": "102"}),
        ("c1", {"transfer": "102", "accepted": True}),
    ]
    assert env.ami.actions[-1] == (
        "BlindTransfer",
        [("Channel", "PJSIP/101-0000000c"), ("Exten", "102"), ("Context", "from-internal")],
    )
    r = await client.post(
        "/transfer", params={"secret": SECRET, "ext": "101", "to": "+79160000000"}
    )
    assert r.text == "Success"
    assert env.ami.actions[-1][1][1] == ("Exten", "79160000000")
    r = await client.post(
        "/transfer", data={"secret": SECRET, "ext": "101", "to": "103", "mode": "attended"}
    )
    assert r.text == "Success"
    assert env.ami.actions[-1][0] == "Atxfer"


async def test_transfer_acts_on_the_bridged_half_of_a_local_member(
    env: Env, client: httpx.AsyncClient
) -> None:
    env.ingest.channels["c2"] = LOCAL_CHANNELS
    for mode, action in (("blind", "BlindTransfer"), ("attended", "Atxfer")):
        r = await client.post(
            "/transfer", data={"secret": SECRET, "call": "c2", "to": "102", "mode": mode}
        )
        assert r.text == "Success"
        assert env.ami.actions[-1] == (
            action,
            [("Channel", "Local/101@phones-00000011;1"), ("Exten", "102"),
             ("Context", "from-internal")],
        )


async def test_a_refused_blind_transfer_falls_back_to_redirecting_the_caller(
    env: Env, client: httpx.AsyncClient
) -> None:
    from tests.web.harness import response

    env.ingest.channels["c2"] = LOCAL_CHANNELS
    env.ami.replies = [response("Error", Message="Transfer invalid")]
    r = await client.post("/transfer", data={"secret": SECRET, "call": "c2", "to": "102"})
    assert r.text == "Success"
    assert [name for name, _ in env.ami.actions[-2:]] == ["BlindTransfer", "Redirect"]
    assert env.ami.actions[-1][1][0] == ("Channel", "Local/74951230101@from-trunk-00000010;2")
    assert env.ingest.notes[-1] == ("c2", {"transfer": "102", "accepted": True})


async def test_transfer_before_anyone_answered_redirects_the_caller(
    env: Env, client: httpx.AsyncClient
) -> None:
    env.ingest.channels["c1"] = [{**LIVE_CHANNELS[0], "bridge": "", "partner": ""}]
    r = await client.post("/transfer", data={"secret": SECRET, "call": "c1", "to": "102"})
    assert r.text == "Success"
    assert env.ami.actions[-1] == (
        "Redirect",
        [
            ("Channel", "PJSIP/trunk-0000000b"), ("Exten", "102"),
            ("Context", "from-internal"), ("Priority", "1"),
        ],
    )
    env.ingest.channels["c2"] = [
        {**c, "bridge": "", "partner": ""} for c in LOCAL_CHANNELS if c["role"] == "customer"
    ]
    r = await client.post("/transfer", data={"secret": SECRET, "call": "c2", "to": "102"})
    assert env.ami.actions[-1][1][0] == ("Channel", "Local/74951230101@from-trunk-00000010;2")


async def test_transfer_errors(env: Env, client: httpx.AsyncClient) -> None:
    ended = call_dict("gone1", status="completed", ended_at="2026-11-24T00:43:00Z")
    await env.put([change("call.ended", ended)])
    r = await client.post("/transfer", data={"secret": SECRET, "call": "gone1", "to": "102"})
    assert r.status_code == 409
    r = await client.post("/transfer", data={"secret": SECRET, "call": "nope", "to": "102"})
    assert r.status_code == 404
    r = await client.post("/transfer", data={"secret": SECRET, "ext": "105", "to": "102"})
    assert r.status_code == 404
    r = await client.post("/transfer", data={"secret": SECRET, "call": "c1", "to": "10\r\n2"})
    assert r.status_code == 400
    r = await client.post("/transfer", data={"secret": SECRET, "call": "../x", "to": "102"})
    assert r.status_code == 400
    r = await client.post("/transfer", data={"secret": SECRET, "to": "102"})
    assert r.status_code == 400
    r = await client.post("/transfer", data={"secret": "no", "call": "c1", "to": "102"})
    assert (r.status_code, r.text) == (403, "Authentication Failure")
    env.ingest.channels["c1"] = LIVE_CHANNELS
    from tests.web.harness import response

    env.ami.reply = response("Error", Message="No such channel")
    r = await client.post("/transfer", data={"secret": SECRET, "call": "c1", "to": "102"})
    assert r.status_code == 502 and r.text.startswith("Error")
    assert "No such channel" in r.text
    assert [name for name, _ in env.ami.actions[-2:]] == ["BlindTransfer", "Redirect"]
    assert env.ingest.notes[-1] == ("c1", {"transfer": "102", "accepted": False})
    assert all(name != "Originate" for name, _ in env.ami.actions)
