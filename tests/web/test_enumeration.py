"""The enumeration walk: a caller without the right credential learns nothing from ids.

pinc 0.1.0 built call ids from the Linkedid and answered an unknown id differently from a
known one (404 against 409, 200 against 404): other calls' recordings were enumerated at
about 540 guesses a second. Ids are random now (pinc.calls.model.random_call_id); here a
walk over real ids, their neighbours and made-up ones asks every route that takes an id,
with every credential short of the right one, and each answer for a real call must be
byte for byte the answer for a call that does not exist.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import trio

from pinc.calls.model import call_id_for, random_call_id
from pinc.config import replace
from pinc.crm.vtiger import recording_link
from pinc.web import tickets
from tests.web.harness import SECRET, Env, call_dict, change, make_config, start_env

OUTSIDE = "127.0.0.2"  # outside crm.allow_from (127.0.0.1/32) in this test


async def _seed(env: Env, count: int) -> list[str]:
    ids = [random_call_id("x", time.time()) for _ in range(count)]
    for call_id in ids:
        (env.recordings / f"{call_id}.wav").write_bytes(b"RIFF" + b"\1" * 500)
        live = call_dict(call_id, status="answered", answered_by="101",
                         recording=f"{call_id}.wav")
        await env.put([change("call.answered", live)])
        env.ingest.live.append(live)
        env.ingest.channels[call_id] = [
            {"channel": "PJSIP/trunk-1", "ext": "", "role": "customer"},
            {"channel": "PJSIP/101-2", "ext": "101", "role": "employee"}]
    return ids


def _walk(known: list[str], rng: random.Random) -> list[str]:
    """Unknown ids a guesser would try: neighbours of real ones and 0.1.0-style ones."""
    b36 = "0123456789abcdefghijklmnopqrstuvwxyz"
    guesses = []
    for call_id in known:
        flip = rng.randrange(7, len(call_id))
        guesses.append(call_id[:flip] + rng.choice(b36.replace(call_id[flip], ""))
                       + call_id[flip + 1:])
        guesses.append(call_id[:7] + "".join(rng.choice(b36) for _ in range(14)))
    guesses += [call_id_for(f"1795480926.{n}") for n in range(10)]
    return [g for g in guesses if g not in known]


async def test_known_and_unknown_ids_answer_alike(nursery: trio.Nursery,
                                                  tmp_path: Path) -> None:
    config = make_config(tmp_path, crm={"allow_from": ["127.0.0.1/32"]})
    env = await start_env(nursery, tmp_path, config=config)
    mine, *known = await _seed(env, 13)  # "mine": the call whose real link the walker has
    unknown = _walk(known, random.Random(14))
    other_link = recording_link(replace(config, web={"public_url": env.base}), mine)
    assert other_link is not None
    other_sig = parse_qs(urlsplit(other_link).query)["sig"][0]  # a real link, of another call
    exp = int(time.time()) + 600
    ws_sig = tickets.mint(SECRET, tickets.WS, "101", now=time.time(), ttl=60).split(".")[-1]

    def probes(call_id: str) -> dict[str, tuple[str, str, dict[str, object]]]:
        return {
            "recording, no credential": ("GET", "/recording", {"params": {"id": call_id}}),
            "recording, another call's stored link":
                ("GET", "/recording", {"params": {"id": call_id, "sig": other_sig}}),
            "recording, another call's link with an expiry":
                ("GET", "/recording", {"params": {"id": call_id, "sig": other_sig,
                                                  "exp": str(exp)}}),
            "recording, a ws ticket's signature":
                ("GET", "/recording", {"params": {"id": call_id, "sig": ws_sig}}),
            "recording, wrong secret":
                ("GET", "/recording", {"params": {"id": call_id, "secret": "guess"}}),
            "api call, no token": ("GET", f"/api/calls/{call_id}", {}),
            "api recording, no token": ("GET", f"/api/calls/{call_id}/recording", {}),
            "api transfer, no token": ("POST", f"/api/calls/{call_id}/transfer",
                                       {"json": {"to": "102"}}),
            "api call, the link as a token":
                ("GET", f"/api/calls/{call_id}",
                 {"headers": {"Authorization": f"Bearer {other_sig}"}}),
            "transfer, wrong secret":
                ("POST", "/transfer", {"params": {"secret": "guess", "call": call_id,
                                                  "to": "102"}}),
            "transfer, not on the call (from the CRM)":
                ("POST", "/transfer", {"params": {"secret": SECRET, "call": call_id,
                                                  "ext": "103", "to": "102"}}),
        }

    answers: dict[str, dict[bool, set[tuple[int, bytes]]]] = defaultdict(
        lambda: {True: set(), False: set()})
    async with httpx.AsyncClient(base_url=env.base) as crm:
        for is_known, ids in ((True, known), (False, unknown)):
            for call_id in ids:
                for name, (method, path, kw) in probes(call_id).items():
                    r = await crm.request(method, path, **kw)  # type: ignore[arg-type]
                    answers[name][is_known].add((r.status_code, r.content))
        # the right secret from outside the CRM's addresses is no better than a guess
        outside = httpx.AsyncHTTPTransport(local_address=OUTSIDE)
        async with httpx.AsyncClient(base_url=env.base, transport=outside) as far:
            for is_known, ids in ((True, known), (False, unknown)):
                for call_id in ids:
                    r = await far.get("/recording", params={"id": call_id, "secret": SECRET})
                    answers["recording, the secret from outside"][is_known].add(
                        (r.status_code, r.content))
    for name, seen in answers.items():
        assert len(seen[True]) == 1, (name, seen[True])  # one answer for every real id...
        assert seen[True] == seen[False], (name, seen)  # ...the same as for made-up ones
        ((status, _),) = seen[True]
        assert status in (401, 403, 404), name
    assert env.ami.actions == []
    assert len(unknown) >= 30 and len(answers) == 12


async def test_a_walk_is_throttled(nursery: trio.Nursery, tmp_path: Path) -> None:
    """At web.auth_failures_per_minute = 20, a guesser gets 20 answers a minute, not 540 a
    second, and none of them is a recording."""
    config = make_config(tmp_path, web={"auth_failures_per_minute": 20})
    env = await start_env(nursery, tmp_path, config=config)
    known = await _seed(env, 3)
    rng = random.Random(7)
    guesses = known + _walk(known, rng) * 20
    statuses: list[int] = []
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=env.base) as client:
        for call_id in guesses[:200]:
            r = await client.get("/recording", params={"id": call_id, "sig": "A" * 22})
            statuses.append(r.status_code)
    elapsed = time.perf_counter() - t0
    assert statuses[:20] == [403] * 20 and set(statuses[20:]) == {429}
    assert elapsed < 60  # all 200 within the minute: 20 were looked at
