"""Malformed Range, conditional headers and dates: 416, 400 or 200, never a 500.

pinc 0.1.0 answered 500 with a traceback to ``Range: bytes=\\xb2-`` (Latin-1 "²", which
str.isdigit() takes and int() refuses) and to ``/api/calls?since=0001-01-01T00:00:00+14:00``
(before year 1 in UTC).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinc.web.recordings import Recording, _not_modified, parse_range
from tests.web.harness import SECRET, Env, call_dict, change

SIZE = 1000


@pytest.fixture
async def rec(env: Env) -> Env:
    (env.recordings / "a.wav").write_bytes(b"RIFF" + b"\1" * (SIZE - 4))
    await env.put([change("call.ended", call_dict("r1", status="completed", recording="a.wav",
                                                  talk=3))])
    return env


@pytest.mark.parametrize(("range_header", "status"), [
    (b"bytes=\xb2-", 200), (b"bytes=0-\xb9", 200), (b"bytes=-\xb2", 200),
    (b"bytes=99999999999999999999999999-", 416), (b"bytes=0-9999999999999999999999999", 206),
    (b"bytes=--1", 200), (b"bytes=0x10-", 200), (b"bytes=1_000-", 200), (b"bytes=+5-9", 200),
    (b"bytes=\xd9\xa1-\xd9\xa3", 200),
])
async def test_malformed_ranges(rec: Env, range_header: bytes, status: int) -> None:
    async with httpx.AsyncClient(base_url=rec.base) as client:
        r = await client.get("/recording", params={"id": "r1", "secret": SECRET},
                             headers={"Range": range_header})
    assert r.status_code == status


@pytest.mark.parametrize("date", [
    "Mon, 01 Jan 0001 00:00:00 GMT", "Mon, 01 Jan 0001 00:00:00 -0000",
    "Fri, 31 Dec 9999 23:59:59 -1400", "Mon, 32 Jan 2026 00:00:00 GMT", "garbage", "0",
    "Mon, 01 Jan 99999 00:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 +9999",
])
async def test_malformed_conditional_dates(rec: Env, date: str) -> None:
    async with httpx.AsyncClient(base_url=rec.base) as client:
        for header in ("If-Modified-Since", "If-Range", "If-Unmodified-Since"):
            r = await client.get("/recording", params={"id": "r1", "secret": SECRET},
                                 headers={header: date, "Range": "bytes=0-1"})
            assert r.status_code in (200, 206, 304), (header, date, r.status_code)


@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-13-01",
    "2026-01-01T00:00:00+25:00", "\uff11\uff12\uff13\uff14-01-01",
])
async def test_malformed_api_dates(env: Env, value: str) -> None:
    async with httpx.AsyncClient(base_url=env.base) as client:
        for key in ("since", "until"):
            r = await client.get("/api/calls", params={key: value}, headers=env.auth)
            assert r.status_code == 400, (key, value)
            assert r.json()["error"]["code"] == "bad_request"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=40),
       st.integers(min_value=1, max_value=10**9))
def test_parse_range_never_raises(header: str, size: int) -> None:
    got = parse_range(header, size)
    if isinstance(got, tuple):
        assert 0 <= got[0] <= got[1] < size


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=60))
def test_conditional_dates_never_raise(value: str) -> None:
    rec = Recording(path=None, size=1, mtime=1.7e9, etag='"x"',  # type: ignore[arg-type]
                    content_type="audio/wav")
    req: Any = SimpleNamespace(headers={"If-Modified-Since": value})
    assert _not_modified(req, rec) in (True, False)
