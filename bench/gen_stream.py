"""Write a realistic Asterisk 22 AMI event stream for the benchmarks.

Calls follow the order a real Asterisk 22 emits for a PJSIP office (reference/ami-agi.md,
"Typical order for an inbound call answered via Dial()"): Newchannel, VarSet/Newexten
noise, MixMonitor, DialBegin, Newstate, DialState, DialEnd, the bridge events, the
hangups and a Cdr; 22 events per call, full channel snapshot blocks, CRLF framing.
Calls overlap (several live at once), inbound and outbound mixed, deterministic (seeded).

    python bench/gen_stream.py 100000 -o /tmp/ami-100k.bin

``generate(n_events) -> bytes`` is what the other benchmarks import. The stream starts
with the banner ``Asterisk Call Manager/11.0.0`` and holds exactly ``n_events`` events.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EPOCH = 1795480000
EVENTS_PER_CALL = 22
CONCURRENT = 12  # calls live at the same time


def _msg(headers: list[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("utf-8")


class _Chan:
    def __init__(
        self, name: str, uid: str, linked: str, cid: str, cname: str, ctx: str, exten: str
    ) -> None:
        self.name, self.uid, self.linked = name, uid, linked
        self.cid, self.cname, self.ctx, self.exten = cid, cname, ctx, exten
        self.state, self.desc = "0", "Down"
        self.conn, self.conn_name = "<unknown>", "<unknown>"
        self.prio = "1"

    def block(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [
            (p + "Channel", self.name),
            (p + "ChannelState", self.state),
            (p + "ChannelStateDesc", self.desc),
            (p + "CallerIDNum", self.cid),
            (p + "CallerIDName", self.cname),
            (p + "ConnectedLineNum", self.conn),
            (p + "ConnectedLineName", self.conn_name),
            (p + "Language", "ru"),
            (p + "AccountCode", ""),
            (p + "Context", self.ctx),
            (p + "Exten", self.exten),
            (p + "Priority", self.prio),
            (p + "Uniqueid", self.uid),
            (p + "Linkedid", self.linked),
        ]


NAMES = ["Иван Петров", "ООО Ромашка", "Anna Smith", "", "Мария", "ACME Corp"]


def _call(n: int, rng: random.Random) -> list[bytes]:
    """The 22 events of one answered call (inbound or outbound)."""
    start = EPOCH + n * 3
    seq = n * 2
    chan_no = n * 2
    ext = str(101 + rng.randrange(8))
    inbound = rng.random() < 0.6
    number = "7916" + f"{rng.randrange(10**7):07d}"
    did = "74951230000"
    a_uid, b_uid = f"{start}.{seq}", f"{start}.{seq + 1}"
    if inbound:
        a = _Chan(
            f"PJSIP/trunk-{chan_no:08x}",
            a_uid,
            a_uid,
            number,
            rng.choice(NAMES) or "<unknown>",
            "from-trunk",
            did,
        )
        b = _Chan(
            f"PJSIP/{ext}-{chan_no + 1:08x}",
            b_uid,
            a_uid,
            ext,
            f"Employee {ext}",
            "from-internal",
            did,
        )
        dest = ext
    else:
        a = _Chan(
            f"PJSIP/{ext}-{chan_no:08x}",
            a_uid,
            a_uid,
            ext,
            f"Employee {ext}",
            "from-internal",
            number,
        )
        b = _Chan(
            f"PJSIP/trunk-{chan_no + 1:08x}",
            b_uid,
            a_uid,
            number,
            "<unknown>",
            "from-trunk",
            number,
        )
        dest = number
    bridge = (
        f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
        f"a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}"
    )
    rec = (
        f"{'in' if inbound else 'out'}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(start))}"
        f"-{a.cid}-{a.exten}-{a_uid}.wav"
    )
    call_p, dial_p = "call,all", "dialplan,all"
    ev: list[bytes] = []

    def event(name: str, priv: str, body: list[tuple[str, str]]) -> None:
        ev.append(_msg([("Event", name), ("Privilege", priv), *body]))

    if inbound:
        a.state, a.desc = "4", "Ring"
    event("Newchannel", call_p, a.block())
    event("VarSet", dial_p, [*a.block(), ("Variable", "__FROM_DID"), ("Value", did)])
    event(
        "Newexten",
        dial_p,
        [
            *a.block(),
            ("Extension", a.exten),
            ("Application", "Set"),
            ("AppData", f"__FROM_DID={did}"),
        ],
    )
    a.prio = "2"
    event(
        "Newexten",
        dial_p,
        [
            *a.block(),
            ("Extension", a.exten),
            ("Application", "MixMonitor"),
            ("AppData", f"{rec},b"),
        ],
    )
    event(
        "VarSet",
        dial_p,
        [
            *a.block(),
            ("Variable", "MIXMONITOR_FILENAME"),
            ("Value", f"/var/spool/asterisk/monitor/{rec}"),
        ],
    )
    event("MixMonitorStart", call_p, a.block())
    a.prio = "3"
    event(
        "Newexten",
        dial_p,
        [
            *a.block(),
            ("Extension", a.exten),
            ("Application", "Dial"),
            ("AppData", f"PJSIP/{dest},30,tT"),
        ],
    )
    event("Newchannel", call_p, b.block())
    event("DialBegin", call_p, [*a.block(), *b.block("Dest"), ("DialString", dest)])
    b.state, b.desc = "5", "Ringing"
    event("Newstate", call_p, b.block())
    event("DialState", call_p, [*a.block(), *b.block("Dest"), ("DialStatus", "RINGING")])
    b.state, b.desc = "6", "Up"
    b.conn, b.conn_name = a.cid, a.cname
    event("Newstate", call_p, b.block())
    a.state, a.desc = "6", "Up"
    a.conn, a.conn_name = b.cid, b.cname
    event("Newstate", call_p, a.block())
    event("DialEnd", call_p, [*a.block(), *b.block("Dest"), ("DialStatus", "ANSWER")])
    bridge_block = [
        ("BridgeUniqueid", bridge),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", "0"),
        ("BridgeVideoSourceMode", "none"),
    ]
    event("BridgeCreate", call_p, bridge_block)
    bridge_block[5] = ("BridgeNumChannels", "1")
    event("BridgeEnter", call_p, [*bridge_block, *b.block()])
    bridge_block[5] = ("BridgeNumChannels", "2")
    event("BridgeEnter", call_p, [*bridge_block, *a.block()])
    event("HangupRequest", call_p, [*a.block(), ("Cause", "16")])
    bridge_block[5] = ("BridgeNumChannels", "1")
    event("BridgeLeave", call_p, [*bridge_block, *a.block()])
    event("Hangup", call_p, [*b.block(), ("Cause", "16"), ("Cause-txt", "Normal Clearing")])
    event("Hangup", call_p, [*a.block(), ("Cause", "16"), ("Cause-txt", "Normal Clearing")])
    talk = 5 + rng.randrange(120)
    fmt = "%Y-%m-%d %H:%M:%S"
    event(
        "Cdr",
        "cdr,all",
        [
            ("AccountCode", ""),
            ("Source", a.cid),
            ("Destination", a.exten),
            ("DestinationContext", a.ctx),
            ("CallerID", f'"{a.cname}" <{a.cid}>'),
            ("Channel", a.name),
            ("DestinationChannel", b.name),
            ("LastApplication", "Dial"),
            ("LastData", f"PJSIP/{dest},30,tT"),
            ("StartTime", time.strftime(fmt, time.gmtime(start))),
            ("AnswerTime", time.strftime(fmt, time.gmtime(start + 3))),
            ("EndTime", time.strftime(fmt, time.gmtime(start + 3 + talk))),
            ("Duration", str(3 + talk)),
            ("BillableSeconds", str(talk)),
            ("Disposition", "ANSWERED"),
            ("AMAFlags", "DOCUMENTATION"),
            ("UniqueID", a_uid),
            ("UserField", ""),
            ("RecordingFile", rec),
        ],
    )
    assert len(ev) == EVENTS_PER_CALL
    return ev


def _events(rng: random.Random) -> Iterator[bytes]:
    """Calls interleaved: each step emits the next event of one of the live calls."""
    live: list[Iterator[bytes]] = []
    n = 0
    while True:
        while len(live) < CONCURRENT:
            live.append(iter(_call(n, rng)))
            n += 1
        i = rng.randrange(len(live))
        item = next(live[i], None)
        if item is None:
            live.pop(i)
            continue
        yield item


def generate(n_events: int, *, seed: int = 22) -> bytes:
    """The banner then ``n_events`` events of overlapping calls, as Asterisk 22 writes them."""
    rng = random.Random(seed)
    out = [BANNER]
    it = _events(rng)
    out.extend(next(it) for _ in range(n_events))
    return b"".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n_events", type=int, nargs="?", default=100_000)
    parser.add_argument("-o", "--output", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    data = generate(args.n_events)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"{args.n_events} events, {len(data)} bytes -> {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
