"""sipp scenarios for the lab's phones, callers and carriers, built from a few steps.

Each sipp instance plays one SIP party: a phone that answers (UAS), a phone or an outside
caller that places a call (UAC), or a carrier. What the party does once a call is up is a
list of steps (`Pause`, `Hold`, `Resume`, `Bye`), so a scenario states exactly how each call
was driven; holds are re-INVITEs with ``a=sendonly``. The XML is generated, never edited by
hand. DTMF (the phones' feature keys, IVR digits) is sent by the driver itself as RFC 2833
packets (tests/lab/parties.py): sipp's own ``play_dtmf`` uses payload type 96 and its pcap
replay rewrites RTP timestamps, so Asterisk hears every packet as a new key.

A UAS can behave differently per call (call waiting: the second call to a phone rings and is
not answered): `Uas(profiles=[...])` picks the first profile whose ``match`` (a regular
expression on the INVITE's From header) matches, the last profile being the default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
FIXED = HERE / "sipp"


@dataclass(frozen=True)
class Pause:
    ms: int


@dataclass(frozen=True)
class Hold:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Bye:
    pass


Step = Pause | Hold | Resume | Bye


@dataclass(frozen=True)
class Answer:
    """A UAS profile: ring ``ring_ms`` (a CANCEL meanwhile ends it), answer, then ``steps``;
    without a Bye step it waits for the other side's BYE. ``mode``: answer, noanswer, busy,
    congestion (503), reject (603), early_busy (183 with audio for ``ring_ms``, then 486)."""

    mode: str = "answer"
    ring_ms: int = 2000
    steps: Sequence[Step] = ()
    match: str = ""  # regex on the INVITE's From header; "" = any call


@dataclass
class Uac:
    """A call placed by a phone or an outside caller."""

    caller: str  # the From user, e.g. "79035550011", "+79035550011", "101", "anonymous"
    to: str  # Request-URI user: a DID, a number, an extension, a feature code
    name: str = ""  # From display name ("" = none), UTF-8 allowed
    headers: Sequence[tuple[str, str]] = ()
    abandon_ms: int | None = None  # CANCEL after ringing this long
    steps: Sequence[Step] = (Pause(3000), Bye())
    from_host: str = ""  # "" = our own address; "anonymous.invalid" for an anonymous caller


SDP = """v=0
o=lab 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a={direction}
"""


def _msg(text: str, retrans: bool = False, extra: str = "") -> str:
    attr = ' retrans="500"' if retrans else ""
    return f"  <send{attr}{extra}>\n    <![CDATA[\n\n{text.strip(chr(10))}\n\n    ]]>\n  </send>\n"


def _with_sdp(head: str, direction: str = "sendrecv") -> str:
    body = SDP.format(direction=direction)
    return (
        head.rstrip("\n")
        + "\nContent-Type: application/sdp\nContent-Length: [len]\n\n"
        + body
    )


class _Dialog:
    """The in-dialog requests of one side: who we are in From/To, and the Request-URI."""

    def __init__(self, *, uac: bool, from_hdr: str, to_hdr: str) -> None:
        self.uac = uac
        self.from_hdr = from_hdr
        self.to_hdr = to_hdr
        self.cseq = 100 if uac else 9000

    def request(self, method: str, body_direction: str | None = None) -> str:
        self.cseq += 1
        uri = "[next_url]" if self.uac else "[$remote_contact]"
        head = (
            f"{method} {uri} SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
            f"From: {self.from_hdr}\n"
            f"To: {self.to_hdr}\n"
            "Call-ID: [call_id]\n"
            f"CSeq: {self.cseq} {method}\n"
            "Contact: <sip:lab@[local_ip]:[local_port]>\n"
            "Max-Forwards: 70\n"
        )
        if body_direction is None:
            return head + "Content-Length: 0\n"
        return _with_sdp(head, body_direction)

    def ack(self) -> str:
        uri = "[next_url]" if self.uac else "[$remote_contact]"
        return (
            f"ACK {uri} SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
            f"From: {self.from_hdr}\n"
            f"To: {self.to_hdr}\n"
            "Call-ID: [call_id]\n"
            f"CSeq: {self.cseq} ACK\n"
            "Max-Forwards: 70\n"
            "Content-Length: 0\n"
        )


_OK_TO_REQUEST = """SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
"""


def _talk(steps: Sequence[Step], dialog: _Dialog, audio: str, p: str) -> str:
    """Media, then the steps; a BYE from the other side at any wait ends the call."""
    out = [f'  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>\n']
    n = 0
    hung_up = False
    for step in steps:
        n += 1
        if isinstance(step, Pause):
            out.append(
                f'  <recv request="BYE" timeout="{step.ms}" ontimeout="{p}s{n}" next="{p}bye"/>\n'
                f'  <label id="{p}s{n}"/>\n'
            )
        elif isinstance(step, Hold | Resume):
            direction = "sendonly" if isinstance(step, Hold) else "sendrecv"
            out.append(_msg(dialog.request("INVITE", direction), retrans=True))
            out.append('  <recv response="100" optional="true"/>\n')
            out.append('  <recv response="200"/>\n')
            out.append(_msg(dialog.ack()))
            if isinstance(step, Resume):
                out.append(f'  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>\n')
        elif isinstance(step, Bye):
            out.append(_msg(dialog.request("BYE"), retrans=True))
            out.append('  <recv response="200"/>\n')
            out.append('  <nop next="end"/>\n')
            hung_up = True
            break
    if not hung_up:
        out.append('  <recv request="BYE"/>\n')
        out.append(_msg(_OK_TO_REQUEST))
        out.append('  <nop next="end"/>\n')
    out.append(f'  <label id="{p}bye"/>\n')
    out.append(_msg(_OK_TO_REQUEST))
    out.append('  <nop next="end"/>\n')
    return "".join(out)


_UAS_REPLY = """SIP/2.0 {code}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
"""


def _uas_profile(a: Answer, user: str, audio: str, p: str) -> str:
    reply = _UAS_REPLY.format(code="{code}", user=user)
    out: list[str] = []
    if a.mode in ("busy", "congestion", "reject"):
        code = {"busy": "486 Busy Here", "congestion": "503 Service Unavailable",
                "reject": "603 Decline"}[a.mode]
        out.append(_msg(reply.format(code=code) + "Content-Length: 0\n"))
        out.append('  <recv request="ACK"/>\n  <nop next="end"/>\n')
        return "".join(out)
    if a.mode == "early_busy":
        out.append(_msg(_with_sdp(reply.format(code="183 Session Progress"))))
        out.append(f'  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>\n')
        out.append(f'  <recv request="CANCEL" timeout="{a.ring_ms}" ontimeout="{p}busy"'
                   f' next="{p}cancel"/>\n')
        out.append(f'  <label id="{p}busy"/>\n')
        out.append('  <nop><action><exec rtp_stream="pause"/></action></nop>\n')
        out.append(_msg(reply.format(code="486 Busy Here") + "Content-Length: 0\n"))
        out.append('  <recv request="ACK"/>\n  <nop next="end"/>\n')
        out.append(_cancelled(p))
        return "".join(out)
    out.append(_msg(reply.format(code="180 Ringing") + "Content-Length: 0\n"))
    if a.mode == "noanswer":
        out.append(f'  <recv request="CANCEL" next="{p}cancel"/>\n')
    else:
        out.append(f'  <recv request="CANCEL" timeout="{a.ring_ms}" ontimeout="{p}answer"'
                   f' next="{p}cancel"/>\n')
        out.append(f'  <label id="{p}answer"/>\n')
        out.append(_msg(_with_sdp(reply.format(code="200 OK")), retrans=True))
        out.append('  <recv request="ACK" crlf="true"/>\n')
        dialog = _Dialog(uac=False, from_hdr="[$to_hdr];tag=[pid]SIPpTag01[call_number]",
                         to_hdr="[$from_hdr]")
        out.append(_talk(a.steps, dialog, audio, p))
    out.append(_cancelled(p))
    return "".join(out)


def _cancelled(p: str) -> str:
    return (
        f'  <label id="{p}cancel"/>\n'
        + _msg(_OK_TO_REQUEST)
        + _msg(
            "SIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n"
            "[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n"
            "CSeq: [$inv_cseq] INVITE\nContent-Length: 0\n"
        )
        + '  <recv request="ACK"/>\n  <nop next="end"/>\n'
    )


def uas_xml(user: str, profiles: Sequence[Answer], audio: str) -> str:
    """A phone or carrier that handles every INVITE it gets with the first matching profile."""
    out = [f'<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="lab uas {user}">\n']
    out.append(
        '  <recv request="INVITE" crlf="true">\n    <action>\n'
        '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from_hdr"/>\n'
        '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>\n'
        '      <ereg regexp="sip:[^&gt;]*" search_in="hdr" header="Contact:"'
        ' assign_to="remote_contact"/>\n'
        '      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="inv_cseq"/>\n'
    )
    for i, prof in enumerate(profiles[:-1]):
        out.append(
            f'      <ereg regexp="{escape(prof.match)}" search_in="hdr" header="From:"'
            f' assign_to="m{i}"/>\n'
        )
    out.append("    </action>\n  </recv>\n")
    # sipp refuses a variable that is set and never read: read them all once
    out.append('  <nop><action><log message="[$from_hdr] [$to_hdr] [$remote_contact]'
               ' [$inv_cseq]"/></action></nop>\n')
    for i in range(len(profiles) - 1):
        out.append(f'  <nop test="m{i}" next="p{i}"/>\n')
    out.append(f'  <nop next="p{len(profiles) - 1}"/>\n')
    for i, prof in enumerate(profiles):
        out.append(f'  <label id="p{i}"/>\n')
        out.append(_uas_profile(prof, user, audio, f"p{i}"))
    out.append('  <label id="end"/>\n  <timewait milliseconds="500"/>\n</scenario>\n')
    return "".join(out)


def uac_xml(call: Uac, audio: str) -> str:
    """One call from a phone or an outside caller."""
    host = call.from_host or "[local_ip]:[local_port]"
    name = f'"{call.name}" ' if call.name else ""
    from_hdr = f"{name}<sip:{call.caller}@{host}>;tag=[pid]SIPpTag09[call_number]"
    to_hdr = f"<sip:{call.to}@[remote_ip]:[remote_port]>"
    extra = "".join(f"{k}: {v}\n" for k, v in call.headers)
    invite = _with_sdp(
        f"INVITE sip:{call.to}@[remote_ip]:[remote_port] SIP/2.0\n"
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"From: {from_hdr}\n"
        f"To: {to_hdr}\n"
        "Call-ID: [call_id]\n"
        "CSeq: 1 INVITE\n"
        f"Contact: <sip:{call.caller}@[local_ip]:[local_port]>\n"
        "Max-Forwards: 70\n"
        "User-Agent: pinc-lab-sipp\n" + extra
    )
    out = [f'<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="lab uac {call.caller}">\n']
    if call.abandon_ms is not None:
        out.append(_msg(invite))
        out.append(f'  <pause milliseconds="{call.abandon_ms}"/>\n')
        out.append(_msg(
            f"CANCEL sip:{call.to}@[remote_ip]:[remote_port] SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-2]\n"
            f"From: {from_hdr}\nTo: {to_hdr}\nCall-ID: [call_id]\nCSeq: 1 CANCEL\n"
            "Max-Forwards: 70\nContent-Length: 0\n"
        ))
        out.append('  <recv response="200" optional="true"/>\n  <recv response="487"/>\n')
        out.append(_msg(_ack_final(call, from_hdr, to_hdr, "[branch-5]")))
        out.append('  <nop next="end"/>\n')
    else:
        out.append(_msg(invite, retrans=True))
        out.append('  <label id="progress"/>\n')
        for code in ("100", "180", "181", "182", "183"):
            out.append(f'  <recv response="{code}" optional="true" next="progress"/>\n')
        for code in ("404", "480", "486", "487", "500", "503", "603"):
            out.append(f'  <recv response="{code}" optional="true" next="failed"/>\n')
        out.append('  <recv response="200" rtd="true" rrs="true"/>\n')
        dialog = _Dialog(uac=True, from_hdr=from_hdr, to_hdr=to_hdr + "[peer_tag_param]")
        dialog.cseq = 1
        out.append(_msg(dialog.ack()))
        dialog.cseq = 100
        out.append(_talk(call.steps, dialog, audio, "t"))
        out.append('  <label id="failed"/>\n')
        out.append(_msg(_ack_final(call, from_hdr, to_hdr, "[branch]", via_last=True)))
    out.append('  <label id="end"/>\n  <timewait milliseconds="500"/>\n</scenario>\n')
    return "".join(out)


def _ack_final(call: Uac, from_hdr: str, to_hdr: str, branch: str, via_last: bool = False) -> str:
    via = "[last_Via:]" if via_last else (
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}"
    )
    return (
        f"ACK sip:{call.to}@[remote_ip]:[remote_port] SIP/2.0\n{via}\n"
        f"From: {from_hdr}\nTo: {to_hdr}[peer_tag_param]\nCall-ID: [call_id]\n"
        "CSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n"
    )


@dataclass
class Tones:
    """The u-law tones the parties stream (1 s, looped), made once per media folder."""

    folder: Path
    files: dict[str, str] = field(default_factory=dict)

    def path(self, name: str, freq: int) -> str:
        p = self.folder / f"tone-{name}.ulaw"
        if not p.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            p.write_bytes(bytes(_ulaw(freq, i) for i in range(8000)))
        return os.fspath(p)


def _ulaw(freq: int, i: int) -> int:
    import math

    sample = int(6000 * math.sin(2 * math.pi * freq * i / 8000))
    sign = 0x80 if sample < 0 else 0
    s = min(abs(sample), 32635) + 0x84
    exp, mask = 7, 0x4000
    while exp > 0 and not s & mask:
        exp -= 1
        mask >>= 1
    return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0F)) & 0xFF
