"""One AMI connection on trio: the socket, its sans-IO parser, the login.

:class:`Link` only moves bytes (the parsing is :mod:`pinc.ami.protocol`'s). The client
(:mod:`pinc.ami.client`) keeps one up forever; ``pinc check --connect`` opens one once
(:func:`check_connection`). The secret never reaches a log line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping

import trio

from pinc.ami.protocol import (
    NEED_DATA,
    AMIConnection,
    Banner,
    Kind,
    Message,
    RemoteProtocolError,
    encode_action,
)
from pinc.config import AmiConfig, Config

RECV_SIZE = 65536
CONNECTION_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class AmiNotConnected(Exception):
    """The client is not logged in to AMI (or the link dropped while waiting)."""


class AmiAuthError(Exception):
    """Asterisk refused the username or secret."""


class LinkLost(Exception):
    """The current connection is unusable; the reason says why."""


class Link:
    """One TCP connection: the stream, its parser, and a write lock."""

    def __init__(self, stream: trio.abc.Stream, config: AmiConfig) -> None:
        self.stream = stream
        self.config = config
        self.parser = AMIConnection()
        self.write_lock = trio.StrictFIFOLock()
        self.banner: Banner | None = None
        self.early: list[Message] = []  # events that arrived during the login

    async def send(self, data: bytes) -> None:
        async with self.write_lock:
            with trio.fail_after(self.config.action_timeout):
                await self.stream.send_all(data)

    async def receive(self, timeout: float) -> bool:
        """Read one chunk into the parser; False at EOF."""
        with trio.fail_after(timeout):
            data = await self.stream.receive_some(RECV_SIZE)
        if not data:
            return False
        self.parser.feed(data)
        return True

    async def next_message(self, timeout: float) -> Banner | Message:
        """The next whole message, reading as needed (used only during login)."""
        with trio.fail_after(timeout):
            while True:
                msg = self.parser.next_message()
                if msg is not NEED_DATA:
                    assert isinstance(msg, Banner | Message)
                    return msg
                if not await self.receive(timeout):
                    self.parser.end_of_stream()  # a cut-off message is a protocol error
                    raise LinkLost("Asterisk closed the connection during login")

    async def request(
        self, name: str, fields: Mapping[str, str | int | Iterable[str]], action_id: str
    ) -> Message:
        """Send one action and wait for its response, keeping any event seen meanwhile."""
        await self.send(encode_action(name, fields, action_id=action_id))
        timeout = self.config.action_timeout
        while True:
            msg = await self.next_message(timeout)
            if isinstance(msg, Banner):
                self.banner = msg
            elif msg.kind is Kind.RESPONSE and msg.action_id == action_id:
                return msg
            elif msg.kind is Kind.EVENT:
                self.early.append(msg)

    async def open(self, username: str, secret: str, auth: str, events: str) -> None:
        """Read the banner and log in; raises AmiAuthError when refused."""
        first = await self.next_message(self.config.connect_timeout)
        if not isinstance(first, Banner):
            raise RemoteProtocolError("no AMI banner", 0)
        self.banner = first
        fields: dict[str, str] = {"Username": username}
        if auth == "md5":
            reply = await self.request("Challenge", {"AuthType": "MD5"}, "pinc-challenge")
            challenge = reply.get("Challenge")
            if reply.name != "Success" or not challenge:
                raise AmiAuthError(f"MD5 challenge refused: {reply.get('Message') or reply.name}")
            fields["AuthType"] = "MD5"
            fields["Key"] = hashlib.md5((challenge + secret).encode()).hexdigest()
        else:
            fields["Secret"] = secret
        if events:
            fields["Events"] = events
        reply = await self.request("Login", fields, "pinc-login")
        if reply.name != "Success":
            raise AmiAuthError(reply.get("Message") or reply.name)

    async def aclose(self) -> None:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await self.stream.aclose()


OpenStream = Callable[[AmiConfig], Awaitable[trio.abc.Stream]]


async def open_tcp(config: AmiConfig) -> trio.abc.Stream:
    return await trio.open_tcp_stream(config.host, config.port)


async def connect(config: AmiConfig, open_stream: OpenStream = open_tcp) -> Link:
    with trio.fail_after(config.connect_timeout):
        stream = await open_stream(config)
    return Link(stream, config)


def describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_connection(config: Config) -> tuple[bool, str]:
    """Log in once (for ``pinc check --connect``): (ok, a one-line report)."""
    cfg = config.ami

    async def attempt() -> tuple[bool, str]:
        try:
            link = await connect(cfg)
        except (trio.TooSlowError, OSError) as exc:
            return False, f"AMI {cfg.host}:{cfg.port}: cannot connect: {describe(exc)}"
        try:
            await link.open(cfg.username, cfg.secret, cfg.auth.lower(), "off")
            reply = await link.request("CoreSettings", {}, "pinc-version")
            version = reply.get("AsteriskVersion") or "unknown"
            ami = link.banner.version if link.banner else "?"
            with trio.move_on_after(1):
                await link.send(encode_action("Logoff", (), action_id="pinc-logoff"))
            return True, (
                f"AMI {cfg.host}:{cfg.port}: logged in as {cfg.username!r} "
                f"({cfg.auth.lower()}); Asterisk {version}, AMI {ami}"
            )
        except AmiAuthError as exc:
            return False, f"AMI {cfg.host}:{cfg.port}: login refused for {cfg.username!r}: {exc}"
        except (RemoteProtocolError, LinkLost, trio.TooSlowError, *CONNECTION_ERRORS) as exc:
            return False, f"AMI {cfg.host}:{cfg.port}: {describe(exc)}"
        finally:
            await link.aclose()

    return trio.run(attempt)
