"""/recording and /api/calls/{id}/recording: the Range matrix and path safety."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.web.harness import SECRET, Env, call_dict, change

BODY = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable
SIZE = len(BODY)


async def _recorded(env: Env, call_id: str, name: str | None, content: bytes | None = BODY) -> None:
    if name is not None and content is not None:
        path = env.recordings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    call = call_dict(call_id, status="completed", recording=name, talk=5, duration=9)
    await env.put([change("call.ended", call)])


@pytest.fixture
async def rec(env: Env) -> Env:
    await _recorded(env, "r1", "2026/11/in-79035550011.wav")
    return env


def _get(client: httpx.AsyncClient, headers: dict[str, str] | None = None, *, api: bool = False
         ) -> object:
    if api:
        auth = {"Authorization": "Bearer test-token-0123456789"}
        return client.get("/api/calls/r1/recording", headers={**auth, **(headers or {})})
    return client.get("/recording", params={"id": "r1", "secret": SECRET}, headers=headers or {})


@pytest.mark.parametrize("api", [False, True])
@pytest.mark.parametrize(
    ("range_header", "status", "first", "last"),
    [
        (None, 200, 0, SIZE - 1),
        ("bytes=0-99", 206, 0, 99),
        ("bytes=100-", 206, 100, SIZE - 1),
        ("bytes=-10", 206, SIZE - 10, SIZE - 1),  # suffix range (Quart: 500)
        ("bytes=-999999", 206, 0, SIZE - 1),  # suffix longer than the file
        ("bytes=10000-99999", 206, 10000, SIZE - 1),  # past the end: clamped
        (f"bytes={SIZE - 1}-", 206, SIZE - 1, SIZE - 1),
        ("bytes=5-5", 206, 5, 5),
        ("bytes=0-0,5-9", 200, 0, SIZE - 1),  # multi-range: ignored, whole file
        ("bytes=9-5", 200, 0, SIZE - 1),  # malformed: ignored
        ("items=0-5", 200, 0, SIZE - 1),
        ("bytes=abc", 200, 0, SIZE - 1),
    ],
)
async def test_range_matrix(
    rec: Env, client: httpx.AsyncClient, api: bool, range_header: str | None,
    status: int, first: int, last: int,
) -> None:
    headers = {"Range": range_header} if range_header else {}
    r = await _get(client, headers, api=api)  # type: ignore[misc]
    assert r.status_code == status
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "audio/wav"
    assert int(r.headers["Content-Length"]) == last - first + 1 == len(r.content)
    assert r.content == BODY[first : last + 1]
    if status == 206:
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"


@pytest.mark.parametrize("range_header", [f"bytes={SIZE}-", "bytes=20000-30000", "bytes=-0"])
async def test_unsatisfiable_ranges(rec: Env, client: httpx.AsyncClient, range_header: str) -> None:
    r = await _get(client, {"Range": range_header})  # type: ignore[misc]
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{SIZE}"
    assert r.headers["Accept-Ranges"] == "bytes"


async def test_head_etag_last_modified(rec: Env, client: httpx.AsyncClient) -> None:
    r = await client.head("/recording", params={"id": "r1", "secret": SECRET})
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Length"] == str(SIZE)
    assert r.headers["Accept-Ranges"] == "bytes"
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert modified.endswith("GMT")
    r = await client.head(
        "/recording", params={"id": "r1", "secret": SECRET}, headers={"Range": "bytes=-10"}
    )
    assert (r.status_code, r.headers["Content-Length"]) == (206, "10")
    params = {"id": "r1", "secret": SECRET}
    r = await client.get("/recording", params=params, headers={"If-None-Match": etag})
    assert (r.status_code, r.content) == (304, b"")
    r = await client.get("/recording", params=params, headers={"If-Modified-Since": modified})
    assert r.status_code == 304
    r = await client.get("/recording", params=params, headers={"If-None-Match": '"other"'})
    assert r.status_code == 200
    # If-Range with a stale validator: the whole file, not the range
    r = await client.get(
        "/recording", params=params, headers={"Range": "bytes=0-9", "If-Range": '"stale"'}
    )
    assert (r.status_code, len(r.content)) == (200, SIZE)
    r = await client.get(
        "/recording", params=params, headers={"Range": "bytes=0-9", "If-Range": etag}
    )
    assert (r.status_code, len(r.content)) == (206, 10)


@pytest.mark.parametrize(
    ("name", "ctype"),
    [("a.wav", "audio/wav"), ("b.mp3", "audio/mpeg"), ("c.gsm", "audio/x-gsm"),
     ("d.ogg", "audio/ogg"), ("e.WAV", "audio/wav"), ("f.bin", "application/octet-stream")],
)
async def test_content_types(env: Env, client: httpx.AsyncClient, name: str, ctype: str) -> None:
    await _recorded(env, "ct1", name)
    r = await client.get("/recording", params={"id": "ct1", "secret": SECRET})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == ctype


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (None, None),  # the call has no recording
        ("missing.wav", None),  # named, but not on disk
        ("empty.wav", b""),
        ("header-only.wav", b"RIFF" + b"\x00" * 40),  # MixMonitor's 44-byte empty wav
        ("empty.mp3", b""),
    ],
)
async def test_no_playable_recording_is_404(
    env: Env, client: httpx.AsyncClient, name: str | None, content: bytes | None
) -> None:
    await _recorded(env, "n1", name, content)
    r = await client.get("/recording", params={"id": "n1", "secret": SECRET})
    assert r.status_code == 404
    r = await client.get("/api/calls/n1/recording", headers=env.auth)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_recording"


async def test_outside_the_recordings_dir_is_refused(
    env: Env, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    secret_file = tmp_path / "outside.wav"
    secret_file.write_bytes(BODY)
    os.symlink(secret_file, env.recordings / "link-out.wav")
    os.symlink(env.recordings / "inside.wav", env.recordings / "link-in.wav")
    (env.recordings / "inside.wav").write_bytes(BODY)
    (env.recordings / "adir.wav").mkdir()
    cases = {
        "t1": "../outside.wav",
        "t2": str(secret_file),  # absolute path
        "t3": "link-out.wav",  # symlink pointing out
        "t4": "sub/../../outside.wav",
        "t5": "x\x00.wav",
        "t6": "adir.wav",  # not a regular file
        "t7": ".",
    }
    for call_id, name in cases.items():
        await _recorded(env, call_id, name, None)
        r = await client.get("/recording", params={"id": call_id, "secret": SECRET})
        assert r.status_code == 404, name
        assert r.content != BODY
    await _recorded(env, "ok1", "link-in.wav", None)  # a symlink that stays inside is fine
    r = await client.get("/recording", params={"id": "ok1", "secret": SECRET})
    assert (r.status_code, r.content) == (200, BODY)


@pytest.mark.parametrize("bad_id", ["../r1", "%2e%2e%2fr1", "/etc/passwd", "r1\x00", "r 1", ""])
async def test_bad_ids(rec: Env, client: httpx.AsyncClient, bad_id: str) -> None:
    r = await client.get("/recording", params={"id": bad_id, "secret": SECRET})
    assert r.status_code == 400
    assert BODY not in r.content


async def test_raw_traversal_paths(rec: Env) -> None:
    for target in (
        b"/recording?id=..%2F..%2Fetc%2Fpasswd&secret=" + SECRET.encode(),
        b"/recording?id=%2e%2e&secret=" + SECRET.encode(),
        b"/api/calls/..%2F..%2Fetc%2Fpasswd/recording",
        b"/api/calls/%2e%2e/recording",
    ):
        async with httpx.AsyncClient() as c:
            r = await c.get(
                httpx.URL(rec.base).copy_with(raw_path=target), headers=rec.auth
            )
        assert r.status_code in (400, 404), target
        assert BODY not in r.content


async def test_recording_needs_the_secret_or_token(rec: Env, client: httpx.AsyncClient) -> None:
    r = await client.get("/recording", params={"id": "r1"})
    assert (r.status_code, r.text) == (403, "Forbidden")
    r = await client.get("/recording", params={"id": "r1", "secret": "nope"})
    assert r.status_code == 403
    r = await client.get("/api/calls/r1/recording")
    assert r.status_code == 401
    r = await client.get("/recording", params={"id": "zz9", "secret": SECRET})
    assert r.status_code == 404
    r = await client.get("/api/calls/r1/recording", params={"token": "test-token-0123456789"})
    assert r.status_code == 401  # no token in a URL: <audio src> uses the session cookie
