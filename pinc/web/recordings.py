"""Recording files: safe lookup inside the recordings directory, and Range serving.

Quart's ``send_file`` mishandles suffix ranges (500) and ranges past the end (a
206 whose Content-Length exceeds the body) and sends Accept-Ranges only on 206
(stack-pitfalls.md), so ranges are parsed and served here.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import trio
from quart import Request, Response

CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]{0,30}", re.ASCII)
WAV_HEADER = 44  # MixMonitor's empty file for an unanswered call is the bare header

CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".wav49": "audio/wav",
    ".mp3": "audio/mpeg",
    ".gsm": "audio/x-gsm",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}


class NotFound(Exception):
    """No playable file for this call (the message says why, for the log)."""


@dataclass(frozen=True)
class Recording:
    path: Path
    size: int
    mtime: float
    etag: str
    content_type: str


def locate(recordings_dir: str, name: str | None) -> Recording:
    """The call's recording as a regular file strictly inside ``recordings_dir``.

    The path is resolved (symlinks followed) before the containment check, so
    ``..``, absolute names and symlinks pointing out are all refused.
    """
    if not name:
        raise NotFound("the call has no recording")
    if "\x00" in name:
        raise NotFound("recording name holds NUL")
    base = Path(recordings_dir).resolve()
    try:
        target = (base / name).resolve(strict=True)
        st = target.stat()
    except (OSError, RuntimeError) as exc:  # missing, loop, permission
        raise NotFound(f"recording file unavailable: {type(exc).__name__}") from None
    if not target.is_relative_to(base) or target == base:
        raise NotFound("recording path leaves the recordings directory")
    if not stat.S_ISREG(st.st_mode):
        raise NotFound("recording is not a regular file")
    suffix = target.suffix.lower()
    if st.st_size == 0 or (suffix.startswith(".wav") and st.st_size <= WAV_HEADER):
        raise NotFound("recording is empty (unanswered call)")
    etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    ctype = CONTENT_TYPES.get(suffix, "application/octet-stream")
    return Recording(target, st.st_size, st.st_mtime, etag, ctype)


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` inclusive; None to serve the whole file; "unsatisfiable" for 416.

    One range only: a multi-range or malformed header is ignored (RFC 9110 allows
    it) and the whole file is sent. Suffix ranges map to the tail; an end past the
    file is clamped to the last byte.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    first_s, last_s = first_s.strip(), last_s.strip()
    # ASCII digits only: str.isdigit() takes "²" (a Latin-1 header byte), int() does not
    if not (_DIGITS.fullmatch(first_s) and _DIGITS.fullmatch(last_s)):
        return None
    if first_s == "":
        if last_s == "":
            return None
        length = int(last_s)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    first = int(first_s)
    if first >= size:
        return "unsatisfiable"
    last = size - 1 if last_s == "" else min(int(last_s), size - 1)
    if last < first:
        return None
    return first, last


def _not_modified(req: Request, rec: Recording) -> bool:
    inm = req.headers.get("If-None-Match")
    if inm is not None:
        return any(tag.strip() in (rec.etag, "*") for tag in inm.split(","))
    ims = req.headers.get("If-Modified-Since")
    if ims:
        # A date that cannot be read, or not placed in time, is ignored (RFC 9110): 200.
        try:
            return int(rec.mtime) <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError, OverflowError, IndexError, OSError):
            return False
    return False


async def _chunks(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    async with await trio.open_file(path, "rb") as f:
        await f.seek(first)
        left = length
        while left > 0:
            data = await f.read(min(CHUNK, left))
            if not data:  # the file shrank under us: stop, the client sees a short body
                return
            left -= len(data)
            yield data


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


def respond(req: Request, rec: Recording, *, download_name: str) -> Response:
    """The 200 / 206 / 304 / 416 response for GET or HEAD of ``rec``."""
    last_modified = format_datetime(datetime.fromtimestamp(rec.mtime, UTC), usegmt=True)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": rec.etag,
        "Last-Modified": last_modified,
        "Content-Type": rec.content_type,
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": f'inline; filename="{download_name}"',
    }
    if _not_modified(req, rec):
        return Response(b"", status=304, headers=headers)
    wanted = parse_range(req.headers.get("Range"), rec.size)
    if_range = req.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range.strip() != rec.etag:
        wanted = None  # the client's copy is stale: send it all
    if wanted == "unsatisfiable":
        headers["Content-Range"] = f"bytes */{rec.size}"
        headers["Content-Type"] = "text/plain; charset=utf-8"
        return Response(b"range not satisfiable\n", status=416, headers=headers)
    if isinstance(wanted, tuple):
        first, last = wanted
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{rec.size}"
    else:
        first, last, status = 0, rec.size - 1, 200
    length = last - first + 1
    headers["Content-Length"] = str(length)
    body = _nothing() if req.method == "HEAD" else _chunks(rec.path, first, length)
    response = Response(body, status=status, headers=headers)
    response.timeout = None  # a long recording to a slow client is fine; writes have deadlines
    return response


def safe_download_name(name: str) -> str:
    base = os.path.basename(name)
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:120] or "recording"
