"""Dashboard sign-in: a revocable server-side session in the cookie, never the token."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from pinc.web.sessions import Sessions
from tests.web.harness import TOKEN, Env, make_config, start_env


async def test_sign_in_opens_a_session_and_sign_out_revokes_it(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.get("/")
        assert r.status_code == 401 and "<form" in r.text
        r = await client.post("/login", data={"token": "nope"})
        assert r.status_code == 401 and "pinc_session" not in r.headers.get("Set-Cookie", "")
        r = await client.post("/login", data={"token": TOKEN})
        assert r.status_code == 303 and r.headers["Location"] == "/"
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("pinc_session=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here; see the https test below
        sid = client.cookies["pinc_session"]
        assert TOKEN not in cookie and sid != TOKEN and len(sid) >= 40
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/api/calls")).status_code == 200
        assert (await client.get("/ping")).json()["ami"]["connected"] is True
        r = await client.post("/logout")
        assert r.status_code == 303
        assert (await client.get("/api/calls")).status_code == 401
    # A copy of the cookie taken before the sign-out is dead on the server too.
    async with httpx.AsyncClient(base_url=env.base, cookies={"pinc_session": sid}) as thief:
        assert (await thief.get("/api/calls")).status_code == 401
        assert (await thief.get("/")).status_code == 401


async def test_the_token_in_a_url_does_not_sign_in(env: Env) -> None:
    """0.1.0 signed in with /?token=…: the token then sat in the browser's history."""
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.get("/", params={"token": TOKEN})
        assert r.status_code == 401 and "Set-Cookie" not in r.headers


async def test_secure_cookie_when_served_over_https(nursery: trio.Nursery,
                                                    tmp_path: Path) -> None:
    config = make_config(tmp_path, web={"public_url": "https://pbx.example"})
    with trio.fail_after(15):
        env = await start_env(nursery, tmp_path, config=config)
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.post("/login", data={"token": TOKEN})
    assert "Secure" in r.headers["Set-Cookie"]


async def test_one_time_sign_in_link(env: Env) -> None:
    sessions = env.services.extras["web_sessions"]
    code = sessions.signin_code()
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.get(f"/signin/{code}")
        assert r.status_code == 303 and "pinc_session=" in r.headers["Set-Cookie"]
        assert (await client.get("/api/calls")).status_code == 200
    async with httpx.AsyncClient(base_url=env.base) as other:
        assert (await other.get(f"/signin/{code}")).status_code == 401  # used up
        assert (await other.get("/signin/" + "A" * 43)).status_code == 401


def test_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    sessions = Sessions(60.0, clock=lambda: now[0])
    sid = sessions.open()
    code = sessions.signin_code(ttl=10)
    assert sessions.valid(sid) and not sessions.valid(sid + "x") and not sessions.valid(None)
    now[0] += 11
    assert not sessions.redeem(code)  # expired before its first use
    now[0] += 50
    assert not sessions.valid(sid)
    assert not sessions.close(sid)
    for _ in range(10_005):
        sessions.open()
    assert sessions.count() == 10_000
    assert sessions.close_all() == 10_000
