"""A real pinc web server for tests: real Journal (tmp SQLite), real FeedHub, real
Hypercorn on 127.0.0.1:0; small fakes only for AMI, ingest, router and CRM state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from pinc.ami.protocol import Kind, Message
from pinc.calls.model import CallChange
from pinc.config import Config, load_config
from pinc.feed import FeedHub
from pinc.journal import queries
from pinc.journal.store import Journal
from pinc.services import ActionResult, Responsible, Services
from pinc.web.server import WebServer

TOKEN = "test-token-0123456789"
SECRET = "pinc-lab-secret-42"


def response(name: str = "Success", **fields: str) -> Message:
    headers = (("Response", name), *fields.items())
    return Message(Kind.RESPONSE, name, headers, dict(headers))


class FakeAmi:
    def __init__(self) -> None:
        self.connected = True
        self.actions: list[tuple[str, list[tuple[str, str]]]] = []
        self.reply = response()
        self.replies: list[Message] = []  # answered first, one per action, then ``reply``
        self.acted = trio.Event()

    async def action(
        self,
        name: str,
        fields: Mapping[str, str | int | Iterable[str]] | Iterable[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
        in_stream: bool = False,
    ) -> ActionResult:
        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        self.actions.append((name, [(str(k), str(v)) for k, v in items]))
        self.acted.set()
        return ActionResult(self.replies.pop(0) if self.replies else self.reply)

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "since": "2026-11-24T00:00:00Z",
            "asterisk_version": "22.10.1",
            "reconnects": 0,
            "last_error": "secret=pincsecret",  # must never reach /ping
        }


class FakeIngest:
    def __init__(self) -> None:
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.channels: dict[str, list[dict[str, str]]] = {}
        self.live: list[dict[str, Any]] = []

    def note_originate(
        self, channel_id: str, *, ext: str, number: str, record_id: str | None, origin: str
    ) -> None:
        self.notes.append(
            (channel_id, {"ext": ext, "number": number, "record_id": record_id, "origin": origin})
        )

    def note_transfer(self, call_id: str, to: str = "") -> None:
        self.notes.append((call_id, {"transfer": to}))

    def transfer_result(self, call_id: str, to: str, accepted: bool) -> None:
        self.notes.append((call_id, {"transfer": to, "accepted": accepted}))

    def live_calls(self) -> list[dict[str, Any]]:
        return list(self.live)

    def live_count(self) -> int:
        return len(self.live)

    def call_of_extension(self, ext: str) -> str | None:
        for call in self.live:
            for ch in self.channels.get(call["id"], []):
                if ch.get("ext") == ext and ch.get("role") == "employee":
                    return str(call["id"])
        return None

    def channels_of(self, call_id: str) -> list[dict[str, str]]:
        return list(self.channels.get(call_id, []))


class FakeRouter:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def responsible(self, number: str) -> Responsible:
        self.asked.append(number)
        if number == "79161234567":
            return Responsible(
                ext="102", user="manager2", customer_name="ООО Ромашка", source="crm"
            )
        return Responsible()


class FakeCrm:
    def status(self) -> dict[str, Any]:
        return {"state": "ok", "backlog": 3, "oldest_age": 1.5, "last_error": SECRET}

    def request_retry(self) -> None:
        pass


@dataclass
class Env:
    services: Services
    server: WebServer
    port: int
    journal: Journal
    feed: FeedHub
    ami: FakeAmi
    ingest: FakeIngest
    router: FakeRouter
    recordings: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    async def put(self, changes: Sequence[CallChange]) -> None:
        """Commit changes through the real journal and wait until they are readable."""
        await self.journal.submit(changes)
        last = changes[-1]
        while True:
            row = await self.journal.read(lambda c: queries.get_call(c, last.call_id))
            if row is not None and row.get("status") == last.call.get("status"):
                return
            await trio.sleep(0.01)


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    recordings = tmp_path / "monitor"
    recordings.mkdir(exist_ok=True)
    overrides: dict[str, dict[str, Any]] = {
        "journal": {"path": str(tmp_path / "pinc.db"), "batch_ms": 1},
        # many tests send many wrong credentials on purpose: the throttle has tests of its own
        "web": {"listen": "127.0.0.1:0", "token": TOKEN, "ws_queue": 64,
                "auth_failures_per_minute": 10_000},
        "crm": {"secret": SECRET},
        "pbx": {"recordings_dir": str(recordings)},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, env={}, overrides=overrides)


async def start_env(
    nursery: trio.Nursery,
    tmp_path: Path,
    *,
    ami: Any = None,
    ingest: Any = None,
    config: Config | None = None,
    write_timeout: float | None = None,
) -> Env:
    config = config or make_config(tmp_path)
    feed = FeedHub()
    journal = Journal(config, feed)
    await nursery.start(journal.run)
    fake_ami = FakeAmi()
    fake_ingest = FakeIngest()
    router = FakeRouter()
    services = Services(
        config=config,
        ami=ami or fake_ami,
        journal=journal,
        feed=feed,
        ingest=ingest or fake_ingest,
        router=router,
        crm=FakeCrm(),
    )
    server = WebServer(services, host="127.0.0.1", port=0)
    if write_timeout is not None:
        server.write_timeout = write_timeout
    port = await nursery.start(server.run)
    return Env(
        services, server, port, journal, feed, fake_ami, fake_ingest, router,
        Path(config.pbx.recordings_dir),
    )


def call_dict(call_id: str, **over: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": call_id,
        "linkedid": "1795480926.22",
        "direction": "inbound",
        "status": "ringing",
        "from": "79035550011",
        "to": "74951230000",
        "started_at": "2026-11-24T00:42:06Z",
        "answered_at": None,
        "ended_at": None,
        "duration": 0,
        "talk": 0,
        "answered_by": None,
        "legs": [{"ext": "101", "result": None}],
        "transfers": [],
        "recording": None,
    }
    call.update(over)
    return call


def change(kind: str, call: dict[str, Any], at: str = "2026-11-24T00:42:06Z") -> CallChange:
    return CallChange(kind=kind, call_id=call["id"], at=at, call=call)


# ---- a replayed transcript through the real ingest, tracker and journal ------------------


@dataclass
class Received:
    message: Message
    at: float


class TranscriptAmi(FakeAmi):
    """AMI as the ingest sees it: an event channel this test fills from a real transcript."""

    def __init__(self) -> None:
        super().__init__()
        self.send, self.events = trio.open_memory_channel[Any](1000)

    async def action(
        self,
        name: str,
        fields: Mapping[str, str | int | Iterable[str]] | Iterable[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
        in_stream: bool = False,
    ) -> ActionResult:
        result = await super().action(name, fields, timeout=timeout)
        if name == "CoreShowChannels":
            if in_stream:  # as the real client: the (empty) list also goes into the stream
                from pinc.ami.client import ListCompleted

                await self.send.send(ListCompleted(name, (), 0.0))
            return ActionResult(response("Success", EventList="start"))
        return result

    async def play(self, events: Sequence[bytes], *, pause: float = 0.0) -> None:
        import time

        from pinc.ami.protocol import AMIConnection

        for raw in events:
            conn = AMIConnection(expect_banner=False)
            conn.feed(raw)
            msg = conn.next_message()
            assert isinstance(msg, Message)
            await self.send.send(Received(msg, time.time()))
            if pause:
                await trio.sleep(pause)


async def start_pipeline(
    nursery: trio.Nursery, tmp_path: Path, config: Config | None = None
) -> tuple[Env, TranscriptAmi]:
    from pinc.ingest import Ingest

    config = config or make_config(tmp_path)
    ami = TranscriptAmi()
    feed = FeedHub()
    journal = Journal(config, feed)
    await nursery.start(journal.run)
    ingest = Ingest(config, ami, journal)
    await nursery.start(ingest.run)
    services = Services(
        config=config, ami=ami, journal=journal, feed=feed, ingest=ingest,
        router=FakeRouter(), crm=FakeCrm(),
    )
    server = WebServer(services, host="127.0.0.1", port=0)
    port = await nursery.start(server.run)
    env = Env(services, server, port, journal, feed, ami, FakeIngest(), FakeRouter(),
              Path(config.pbx.recordings_dir))
    return env, ami


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def transcript(name: str) -> list[bytes]:
    from pinc.sim.transcripts import load_transcript

    sub = "asterisk-pjsip" if name.startswith("pjsip_") else "asterisk-local"
    return load_transcript(FIXTURES / sub / f"{name}.ami")
