"""A small builder of AMI events for the tracker's rule tests: each event as Asterisk
shapes it (the channel snapshot block with its prefix), no more fields than a rule needs."""

from __future__ import annotations

from dataclasses import dataclass

from pinc.ami.protocol import Message, parse_block


@dataclass(frozen=True)
class Ch:
    """One channel: its name, Uniqueid, Linkedid, context, exten and caller id."""

    name: str
    uid: str
    linkedid: str
    context: str = ""
    exten: str = ""
    cid: str = ""

    def block(self, prefix: str = "") -> list[tuple[str, str]]:
        return [
            (prefix + "Channel", self.name),
            (prefix + "CallerIDNum", self.cid or "<unknown>"),
            (prefix + "Context", self.context),
            (prefix + "Exten", self.exten),
            (prefix + "Uniqueid", self.uid),
            (prefix + "Linkedid", self.linkedid),
        ]

    def moved(self, **changes: str) -> Ch:
        data = {**self.__dict__, **changes}
        return Ch(**data)


def event(
    name: str, *parts: list[tuple[str, str]] | tuple[str, str], ts: float | None = None
) -> Message:
    lines = [("Event", name), ("Privilege", "call,all")]
    if ts is not None:
        lines.append(("Timestamp", f"{ts:.6f}"))
    for part in parts:
        if isinstance(part, tuple):
            lines.append(part)
        else:
            lines.extend(part)
    return parse_block("\r\n".join(f"{k}: {v}" for k, v in lines))


def newchannel(ch: Ch, ts: float | None = None) -> Message:
    return event("Newchannel", ch.block(), ts=ts)


def dial_begin(caller: Ch | None, dest: Ch, ts: float | None = None) -> Message:
    parts: list[list[tuple[str, str]] | tuple[str, str]] = []
    if caller is not None:
        parts.append(caller.block())
    parts += [dest.block("Dest"), ("DialString", dest.exten)]
    return event("DialBegin", *parts, ts=ts)


def dial_end(caller: Ch | None, dest: Ch, status: str, ts: float | None = None) -> Message:
    parts: list[list[tuple[str, str]] | tuple[str, str]] = []
    if caller is not None:
        parts.append(caller.block())
    parts += [dest.block("Dest"), ("DialStatus", status)]
    return event("DialEnd", *parts, ts=ts)


def bridge_enter(ch: Ch, bridge: str, ts: float | None = None) -> Message:
    return event("BridgeEnter", ("BridgeUniqueid", bridge), ch.block(), ts=ts)


def hangup(ch: Ch, cause: int = 16, ts: float | None = None) -> Message:
    return event("Hangup", ch.block(), ("Cause", str(cause)), ("Cause-txt", "x"), ts=ts)


def cdr(
    ch: Ch,
    start: str,
    answer: str,
    end: str,
    disposition: str,
    dest: str = "",
    ts: float | None = None,
) -> Message:
    return event(
        "Cdr",
        ("Channel", ch.name),
        ("DestinationChannel", dest),
        ("StartTime", start),
        ("AnswerTime", answer),
        ("EndTime", end),
        ("Disposition", disposition),
        ("UniqueID", ch.uid),
        ts=ts,
    )
