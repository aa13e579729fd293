"""An HTTP server on 127.0.0.1 that records each request exactly as the module sent it and
answers what the test set: for checking the shape of the module's requests to pinc (no
secret in a URL, the header or body it belongs in, Range passed on). Behaviour checks run
against a real pinc (tests/web/harness.py) instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import trio


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.answers: dict[str, Answer] = {}  # path -> answer; others get 404
        self.port = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(10):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(body) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    body += chunk
                seen = Seen(method, target, headers, body)
                self.seen.append(seen)
                answer = self.answers.get(seen.path, Answer(404, b"Not Found\n"))
                out = [f"HTTP/1.0 {answer.status} X", f"Content-Length: {len(answer.body)}"]
                out += [f"{k}: {v}" for k, v in answer.headers.items()]
                await stream.send_all(("\r\n".join(out) + "\r\n\r\n").encode() + answer.body)
