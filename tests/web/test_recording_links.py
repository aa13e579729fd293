"""The recording link pinc stores in the CRM: it opens its own recording and nothing else.

pinc 0.1.0 stored ``/recording?id=<call>&secret=<crm.secret>`` in every vtiger row, so any
CRM user's browser history held the key that drives the PBX. Now the stored link is
signed per call (pinc.web.tickets) and carries no secret; links minted on demand expire.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio

from pinc.config import replace
from pinc.crm.vtiger import recording_link
from pinc.web import tickets
from tests.web.harness import SECRET, TOKEN, Env, call_dict, change

BODY = b"RIFF" + bytes(range(256)) * 8


async def _recorded(env: Env, call_id: str) -> None:
    name = f"{call_id}.wav"
    (env.recordings / name).write_bytes(BODY + call_id.encode())
    call = call_dict(call_id, status="completed", recording=name, talk=5, duration=9)
    await env.put([change("call.ended", call)])


def _stored_link(env: Env, call_id: str) -> str:
    config = replace(env.services.config, web={"public_url": env.base})
    link = recording_link(config, call_id)
    assert link is not None
    return link


async def test_stored_link_opens_its_own_recording_only(
    env: Env, client: httpx.AsyncClient
) -> None:
    await _recorded(env, "0abc123aaaaaaaaaaaaaa")
    await _recorded(env, "0abc123bbbbbbbbbbbbbb")
    link = _stored_link(env, "0abc123aaaaaaaaaaaaaa")
    assert SECRET not in link and TOKEN not in link and "secret" not in link
    r = await client.get(link)
    assert r.status_code == 200
    assert r.content == BODY + b"0abc123aaaaaaaaaaaaaa"
    # The same signature on another call's id: refused, exactly as for an unknown id.
    sig = parse_qs(urlsplit(link).query)["sig"][0]
    other = await client.get("/recording", params={"id": "0abc123bbbbbbbbbbbbbb", "sig": sig})
    unknown = await client.get("/recording", params={"id": "0abc123zzzzzzzzzzzzzz", "sig": sig})
    assert (other.status_code, other.content) == (unknown.status_code, unknown.content)
    assert other.status_code == 403
    # A link with an expiry made up by the holder does not verify either.
    r = await client.get("/recording", params={
        "id": "0abc123aaaaaaaaaaaaaa", "sig": sig, "exp": str(int(time.time()) + 60)})
    assert r.status_code == 403
    # The other call's own link opens the other call.
    r = await client.get(_stored_link(env, "0abc123bbbbbbbbbbbbbb"))
    assert (r.status_code, r.content) == (200, BODY + b"0abc123bbbbbbbbbbbbbb")


async def test_stored_link_cannot_drive_anything_else(env: Env, client: httpx.AsyncClient) -> None:
    """What a stored link holds (the call id and its signature), tried as every credential."""
    await _recorded(env, "0abc123aaaaaaaaaaaaaa")
    env.ingest.channels["0abc123aaaaaaaaaaaaaa"] = [
        {"channel": "PJSIP/101-00000001", "role": "employee", "ext": "101"}]
    env.ingest.live.append({"id": "0abc123aaaaaaaaaaaaaa"})
    link = _stored_link(env, "0abc123aaaaaaaaaaaaaa")
    sig = parse_qs(urlsplit(link).query)["sig"][0]
    for cred in (sig, link, "0abc123aaaaaaaaaaaaaa"):
        tries = [
            client.post("/makecall", params={"secret": cred, "sig": sig, "from": "101",
                                             "to": "79161234567"}),
            client.post("/transfer", params={"secret": cred, "sig": sig, "ext": "101",
                                             "to": "79160000000"}),
            client.get("/responsible", params={"secret": cred, "sig": sig,
                                               "number": "79161234567"}),
            client.get("/api/calls", headers={"Authorization": f"Bearer {cred}"}),
            client.post("/api/calls", headers={"Authorization": f"Bearer {cred}"},
                        json={"from": "101", "to": "79161234567"}),
        ]
        for attempt in tries:
            r = await attempt
            assert r.status_code in (401, 403), (r.request.url, r.status_code)
    r = await client.get("/", headers={"Authorization": f"Bearer {sig}"})
    assert r.status_code == 401
    assert env.ami.actions == []  # nothing reached Asterisk
    assert env.router.asked == []


async def test_on_demand_link_expires(env: Env, client: httpx.AsyncClient) -> None:
    """A link minted with ``exp`` plays until then; replayed after it, it is refused."""
    await _recorded(env, "0abc123aaaaaaaaaaaaaa")
    master = env.services.config.crm.secret
    expires = int(time.time()) + 2
    sig = tickets.signature(master, "recording", "0abc123aaaaaaaaaaaaaa", expires)
    params = {"id": "0abc123aaaaaaaaaaaaaa", "exp": str(expires), "sig": sig}
    r = await client.get("/recording", params=params)
    assert r.status_code == 200
    await trio.sleep(max(0.0, expires - time.time()) + 0.05)  # until it has expired
    r = await client.get("/recording", params=params)
    assert (r.status_code, r.text) == (403, "Forbidden")
    # Without its exp, the on-demand signature is not a permanent link either.
    r = await client.get("/recording", params={"id": params["id"], "sig": sig})
    assert r.status_code == 403


@pytest.mark.parametrize("sig", ["", "x", "A" * 22, "A" * 21 + "=", "../../etc/passwd"])
async def test_malformed_signatures(env: Env, client: httpx.AsyncClient, sig: str) -> None:
    await _recorded(env, "0abc123aaaaaaaaaaaaaa")
    r = await client.get("/recording", params={"id": "0abc123aaaaaaaaaaaaaa", "sig": sig})
    assert (r.status_code, r.text) == (403, "Forbidden")


async def test_the_api_mints_an_expiring_link(env: Env, client: httpx.AsyncClient) -> None:
    await _recorded(env, "0abc123aaaaaaaaaaaaaa")
    r = await client.get("/api/calls/0abc123aaaaaaaaaaaaaa", headers=env.auth)
    url = r.json()["recording_url"]
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("/recording?id=0abc123aaaaaaaaaaaaaa&exp=")
    assert 3590 <= int(query["exp"][0]) - time.time() <= 3600
    assert SECRET not in url and TOKEN not in url
    async with httpx.AsyncClient(base_url=env.base) as anonymous:
        r = await anonymous.get(url)
        assert (r.status_code, r.content) == (200, BODY + b"0abc123aaaaaaaaaaaaaa")
        forever = {"id": query["id"][0], "sig": query["sig"][0]}  # drop exp: not permanent
        assert (await anonymous.get("/recording", params=forever)).status_code == 403
