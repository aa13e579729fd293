"""Real pieces end to end: a recorded transcript through the real ingest, tracker and
journal to a websocket client; the Originate bytes a /makecall sends to the fake Asterisk."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.web.harness import SECRET, TOKEN, make_config, start_pipeline, transcript

AUTH = [(b"Authorization", f"Bearer {TOKEN}".encode())]


async def test_replayed_call_streams_from_ringing_to_ended(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    env, ami = await start_pipeline(nursery, tmp_path)
    with trio.fail_after(30):
        async with open_websocket_url(f"ws://127.0.0.1:{env.port}/ws", extra_headers=AUTH) as ws:
            snap = json.loads(await ws.get_message())
            assert snap == {"type": "snapshot", "calls": []}
            nursery.start_soon(ami.play, transcript("pjsip_inbound_answered"))
            kinds: list[str] = []
            while True:
                msg = json.loads(await ws.get_message())
                kinds.append(msg["type"])
                if msg["type"] == "call.ended":
                    break
            call = msg["call"]
    assert kinds[0] == "call.started"
    assert "call.ringing" in kinds and "call.answered" in kinds
    assert kinds.index("call.ringing") < kinds.index("call.answered") < len(kinds) - 1
    assert (call["direction"], call["status"], call["answered_by"]) == (
        "inbound", "completed", "101"
    )
    assert [leg["ext"] for leg in call["legs"]] == ["101", "102"]
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.get(f"/api/calls/{call['id']}", headers=env.auth)
        assert r.json()["status"] == "completed"
        assert [c["type"] for c in r.json()["changes"]] == kinds
        r = await client.get("/ping", headers=env.auth)
        assert r.json()["live_calls"] == 0


async def test_ws_ext_filter_on_a_replayed_queue_call(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    env, ami = await start_pipeline(nursery, tmp_path)
    with trio.fail_after(30):
        async with open_websocket_url(
            f"ws://127.0.0.1:{env.port}/ws?ext=103", extra_headers=AUTH
        ) as ws103, open_websocket_url(
            f"ws://127.0.0.1:{env.port}/ws?ext=102", extra_headers=AUTH
        ) as ws102:
            await ws103.get_message()
            await ws102.get_message()
            await ami.play(transcript("pjsip_inbound_answered"))
            while json.loads(await ws102.get_message())["type"] != "call.ended":
                pass
            with trio.move_on_after(0.3):
                msg = await ws103.get_message()
                pytest.fail(f"103 was not on the call, yet got {msg[:80]}")


HAS_CLIENT = importlib.util.find_spec("pinc.ami.client") is not None


@pytest.mark.skipif(not HAS_CLIENT, reason="pinc/ami/client.py (AmiClient) has not landed yet")
async def test_makecall_originate_bytes_reach_fake_asterisk(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    from pinc.ami.client import AmiClient
    from pinc.feed import FeedHub
    from pinc.ingest import Ingest
    from pinc.journal.store import Journal
    from pinc.services import Services
    from pinc.sim.amiserver import AmiSimServer
    from pinc.web.server import WebServer
    from tests.web.harness import FakeCrm, FakeRouter

    with trio.fail_after(30):
        sim = AmiSimServer()
        ami_port = await nursery.start(sim.run)
        config = make_config(
            tmp_path, ami={"port": ami_port, "username": "pinc", "secret": "pincsecret"}
        )
        client = AmiClient(config.ami)
        await nursery.start(client.run)
        feed = FeedHub()
        journal = Journal(config, feed)
        await nursery.start(journal.run)
        ingest = Ingest(config, client, journal)
        await nursery.start(ingest.run)
        services = Services(config=config, ami=client, journal=journal, feed=feed,
                            ingest=ingest, router=FakeRouter(), crm=FakeCrm())
        port = await nursery.start(WebServer(services, host="127.0.0.1", port=0).run)
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"http://127.0.0.1:{port}//makecall?event=OutgoingCall&secret={SECRET}"
                "&from=101&to=%2B79161234567&context=from-internal&record=2"
            )
        assert (r.status_code, r.text) == (200, "Success")
        while not any(m.get("Action") == "Originate" for m, _ in sim.actions):  # noqa: ASYNC110 (polls state another task owns)
            await trio.sleep(0.01)
    message, raw = next((m, b) for m, b in sim.actions if m.get("Action") == "Originate")
    action_id, channel_id = message.get("ActionID"), message.get("ChannelId")
    assert re.fullmatch(r"pinc-\d{10}\.\d+", channel_id)
    assert raw == (
        "Action: Originate\r\n"
        f"ActionID: {action_id}\r\n"
        "Channel: PJSIP/101\r\n"
        "Context: from-internal\r\n"
        "Exten: 79161234567\r\n"
        "Priority: 1\r\n"
        'CallerID: "CRM 79161234567" <101>\r\n'
        "Timeout: 30000\r\n"
        "Async: true\r\n"
        f"ChannelId: {channel_id}\r\n"
        "\r\n"
    ).encode()
