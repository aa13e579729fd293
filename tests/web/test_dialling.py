"""pinc decides what may be dialled: contexts, callers, numbers, rates, and the audit line.

pinc 0.1.0 originated into whatever context a request named (``context=ext-local``), from
any extension to any number (international included), as fast as requests came: 2,000
``/makecall`` requests became 2,000 Originates in 3.9 s.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import trio

from pinc.config import Config, replace
from pinc.services import CrmUser
from pinc.web.dialpolicy import DialPolicy, PolicyRefused, RateLimiter, national_patterns
from tests.web.harness import SECRET, Env, call_dict, change, make_config, start_env


def makecall(to: str = "79161234567", ext: str = "101", **more: str) -> dict[str, str]:
    return {"event": "OutgoingCall", "secret": SECRET, "from": ext, "to": to, **more}


async def originated(env: Env, count: int) -> list[dict[str, str]]:
    """The fields of the first ``count`` Originates (they run after the HTTP answer)."""
    with trio.fail_after(5):
        while len(env.ami.actions) < count:
            env.ami.acted = trio.Event()
            if len(env.ami.actions) < count:
                await env.ami.acted.wait()
    return [dict(fields) for name, fields in env.ami.actions if name == "Originate"]


async def test_the_caller_does_not_pick_the_context(env: Env, client: httpx.AsyncClient,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pinc.audit")
    r = await client.post("/makecall", params=makecall(context="ext-local"))
    assert r.text == "Success"
    (fields,) = await originated(env, 1)
    assert fields["Context"] == "from-internal"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "pinc.audit"]
    assert line == ("originate by=crm addr=127.0.0.1 ext=101 to=79161234567 "
                    "context=from-internal asked_context=ext-local result=accepted")


async def test_allowed_contexts_are_used(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = make_config(tmp_path, pbx={"originate_contexts": ["from-internal", "vtiger-out"]})
    env = await start_env(nursery, tmp_path, config=config)
    async with httpx.AsyncClient(base_url=env.base) as client:
        await client.post("/makecall", params=makecall(context="vtiger-out"))
        (fields,) = await originated(env, 1)
        assert fields["Context"] == "vtiger-out"
        await client.post("/makecall", params=makecall(context="ext-local"))
        assert (await originated(env, 2))[1]["Context"] == "from-internal"


@pytest.mark.parametrize("to", [
    "+441234567890", "810441234567890", "0044123456789",  # international
    "112", "0911", "1234567",  # short and unknown lengths
    "7916123456789",  # too long for a national number
])
async def test_numbers_outside_the_policy_are_refused(env: Env, client: httpx.AsyncClient,
                                                      to: str) -> None:
    r = await client.post("/makecall", params=makecall(to=to))
    assert (r.status_code, r.text) == (403, "Error")
    r = await client.post("/api/calls", headers=env.auth, json={"from": "101", "to": to})
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "policy",
                                 "message": "to: not a number the dialling policy allows"}
    assert env.ami.actions == [] and env.ingest.notes == []


@pytest.mark.parametrize("to", ["+7 (916) 123-45-67", "89161234567", "9161234567"])
async def test_national_numbers_pass(env: Env, client: httpx.AsyncClient, to: str) -> None:
    r = await client.post("/makecall", params=makecall(to=to))
    assert r.text == "Success"


async def test_an_explicit_pattern_allows_international(nursery: trio.Nursery,
                                                        tmp_path: Path) -> None:
    config = make_config(tmp_path, pbx={"dial_patterns": [r"810\d{6,15}", r"7\d{10}"]})
    env = await start_env(nursery, tmp_path, config=config)
    async with httpx.AsyncClient(base_url=env.base) as client:
        assert (await client.post("/makecall", params=makecall(to="810441234567890"))
                ).text == "Success"
        assert (await client.post("/makecall", params=makecall(to="89161234567"))
                ).status_code == 403  # the explicit list replaces the national default


MANAGER1 = CrmUser(id="19x5", user_name="manager1", name="Manager One", extension="101")


class KnownDirectory:
    def known(self) -> bool:
        return True

    def user_of(self, ext: str) -> CrmUser | None:
        return MANAGER1 if ext == "101" else None

    def users(self) -> list[CrmUser]:
        return [MANAGER1]


async def test_from_must_be_a_crm_user_once_the_directory_is_known(
    env: Env, client: httpx.AsyncClient
) -> None:
    # NoDirectory (no CRM, or not read yet) says nothing: any employee extension passes
    assert (await client.post("/makecall", params=makecall(ext="103"))).text == "Success"
    env.services.directory = KnownDirectory()
    r = await client.post("/makecall", params=makecall(ext="103"))
    assert (r.status_code, r.text) == (403, "Error")
    assert (await client.post("/makecall", params=makecall(ext="101"))).text == "Success"
    r = await client.post("/makecall", params=makecall(ext="PJSIP/101"))
    assert r.status_code == 400  # not even an extension


async def test_a_flood_of_makecalls_is_cut_by_the_rate(env: Env, client: httpx.AsyncClient,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The probe's 2,000 /makecall in 3.9 s: now 10 Originates per extension per minute."""
    caplog.set_level(logging.INFO, logger="pinc.audit")
    answers = [(await client.post("/makecall", params=makecall())).status_code
               for _ in range(40)]
    assert answers == [200] * 10 + [429] * 30
    assert (await client.post("/makecall", params=makecall(ext="102"))).status_code == 200
    await originated(env, 11)
    audit = [r.getMessage() for r in caplog.records if r.name == "pinc.audit"]
    assert len(audit) == 41  # one line per request
    assert sum("result=refused (too many calls from this extension" in a for a in audit) == 30


async def test_the_overall_rate(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = make_config(tmp_path, pbx={"originate_per_minute": 3})
    env = await start_env(nursery, tmp_path, config=config)
    async with httpx.AsyncClient(base_url=env.base) as client:
        codes = [(await client.post("/makecall", params=makecall(ext=ext))).status_code
                 for ext in ("101", "102", "103", "104")]
        r = await client.post("/api/calls", headers=env.auth, json={"from": "105",
                                                                   "to": "79161234567"})
    assert codes == [200, 200, 200, 429]
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert r.json()["error"]["code"] == "rate_limited"


async def test_transfers_follow_the_policy(env: Env, client: httpx.AsyncClient,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pinc.audit")
    live = call_dict("0abc123live0000000000", status="answered", answered_by="101")
    await env.put([change("call.answered", live)])
    env.ingest.live = [live]
    env.ingest.channels[live["id"]] = [
        {"channel": "PJSIP/trunk-00000001", "ext": "", "role": "customer",
         "bridge": "b-1", "partner": "employee"},
        {"channel": "PJSIP/101-00000002", "ext": "101", "role": "employee",
         "bridge": "b-1", "partner": "customer"}]
    transfer = {"secret": SECRET, "call": live["id"]}
    r = await client.post("/transfer", params={**transfer, "to": "810441234567890"})
    assert (r.status_code, r.text) == (403, "Error: to: not a number the dialling policy allows")
    r = await client.post("/api/calls/0abc123live0000000000/transfer", headers=env.auth,
                          json={"to": "+441234567890"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "policy")
    assert env.ami.actions == []
    # "Not yours" answers as "unknown": 102 is not on this call
    mine = await client.post("/transfer", params={**transfer, "ext": "102", "to": "103"})
    unknown = await client.post("/transfer", params={"secret": SECRET, "ext": "102",
                                                      "call": "0abc123nope0000000000",
                                                      "to": "103"})
    assert (mine.status_code, mine.text) == (unknown.status_code, unknown.text)
    assert (mine.status_code, mine.text) == (404, "Error: no such call")
    r = await client.post("/transfer", params={**transfer, "ext": "101", "to": "102"})
    assert r.text == "Success"
    assert [name for name, _ in env.ami.actions] == ["BlindTransfer"]
    audit = [r.getMessage() for r in caplog.records if r.name == "pinc.audit"]
    assert len(audit) == 5
    assert audit[-1] == ("transfer by=crm addr=127.0.0.1 call=0abc123live0000000000 ext=101 "
                         "to=102 mode=blind context=from-internal result=sent")
    assert "transfer by=api addr=127.0.0.1" in audit[1]


def test_policy_unit() -> None:
    assert national_patterns("7", "8", 10) == [r"(?:7|8)?\d{10}"]
    assert national_patterns("", "", 9) == [r"\d{9}"]
    policy = DialPolicy(replace(Config(), pbx={"originate_per_minute_ext": 2,
                                               "originate_per_minute": 100}))
    policy.check_rate("101", 0.0)
    policy.check_rate("101", 0.0)
    with pytest.raises(PolicyRefused) as info:
        policy.check_rate("101", 1.0)
    assert info.value.rule == "rate"
    policy.check_rate("101", 31.0)  # one token back after 30 s at 2 a minute
    limiter = RateLimiter(60)
    for _ in range(60):
        limiter.take("x", 0.0)
    assert limiter.available("x", 0.0) == 0.0 and limiter.available("x", 0.5) == 0.5
    assert limiter.available("y", 0.0) == 60.0
