"""The SIP parties of one scenario: sipp processes, their ports, their logs, their ladder.

Who is who comes from the office's ``office.json`` (the kit's sipp ports, moved by the office's
sipp offset; see tests/lab/office/pjsip.conf):

  phone 101..106     UAS on office.sipp.phones[ext]; as a caller, UAC on .phone_uac[ext]
  outside callers    UAC from .trunk_in, .phones["107"], .phones["108"] (identified as trunk)
  carrier A          UAS on .carrier (endpoint trunk); carrier B: UAS on .phones["109"] (trunk2)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import trio

from tests.lab.sipp import Answer, Tones, Uac, uac_xml, uas_xml

SIPP = shutil.which("sipp") or "sipp"
CALLER_PORTS = ("trunk_in", "107", "108")
TONES = {"phone": 425, "caller": 600, "carrier": 1004}


@dataclass
class Party:
    role: str
    port: int
    xml: Path
    log: Path
    process: trio.Process

    @property
    def running(self) -> bool:
        return self.process.returncode is None


KEY_MS, GAP_MS = 120, 120  # how long a key is held, and the pause before the next one
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


async def send_rfc2833(target: tuple[str, int], digits: str, pt: int = 101) -> None:
    """RFC 4733 telephone events for ``digits``: per key, an event packet every 20 ms while
    it is held (the first with the marker bit), then one end packet. Phones repeat the end
    packet three times with their audio's SSRC; ours has its own SSRC beside sipp's audio,
    and Asterisk forgets which end it saw whenever the SSRC changes, so a repeated end would
    be heard as the key pressed again."""
    import random
    import struct

    ssrc, seq, ts = random.getrandbits(32), random.getrandbits(15), random.getrandbits(30)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        for key in digits:
            held = KEY_MS // 20
            for n in range(held + 1):
                end = n == held
                duration = min(n + 1, held) * 160
                header = struct.pack("!BBHII", 0x80, (0x80 if n == 0 else 0) | pt,
                                     seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                event = struct.pack("!BBH", EVENTS[key], (0x80 if end else 0) | 10, duration)
                await sock.sendto(header + event, target)
                seq += 1
                await trio.sleep(0.02)
            ts += (held + 1) * 160 + GAP_MS * 8
            await trio.sleep(GAP_MS / 1000)


def _open_log(path: str) -> IO[bytes]:
    return open(path, "wb")  # handed to the child process, closed by the caller


class Parties:
    """Starts the sipp instances of one scenario and stops them all at its end."""

    def __init__(self, office: dict[str, Any], folder: Path, nursery: trio.Nursery) -> None:
        self.office = office
        self.sipp = office["sipp"]
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.tones = Tones(folder.parent / "media")
        self.nursery = nursery
        self.parties: list[Party] = []
        self._slots: dict[str, int] = {}

    def _media(self, role: str) -> int:
        # 40 RTP ports per role above the office's media base, so no two parties share one
        slot = self._slots.setdefault(role, len(self._slots))
        return int(self.sipp["media_base"]) + 40 * slot

    async def _spawn(self, role: str, port: int, xml_text: str, extra: list[str]) -> Party:
        n = len(self.parties) + 1
        xml = self.folder / f"{n:02d}-{role}.xml"
        xml.write_text(xml_text, encoding="utf-8")
        log = self.folder / f"{n:02d}-{role}"
        argv = [SIPP, *extra, "-sf", os.fspath(xml), "-i", "127.0.0.1", "-p", str(port),
                "-mi", "127.0.0.1", "-mp", str(self._media(role)), "-nostdin", "-aa",
                "-ci", "127.0.0.1", "-cp", str(port + 20000),
                "-trace_msg", "-message_file", f"{log}.msg",
                "-trace_err", "-error_file", f"{log}.err"]
        out = _open_log(f"{log}.out")
        try:
            process = await trio.lowlevel.open_process(argv, stdin=subprocess.DEVNULL,
                                                       stdout=out, stderr=out)
        finally:
            out.close()
        party = Party(role, port, xml, log, process)
        self.parties.append(party)
        return party

    async def phone(self, ext: str, *profiles: Answer) -> Party:
        """Phone ``ext`` answering (or not) each INVITE with the first matching profile."""
        return await self._uas(f"phone{ext}", int(self.sipp["phones"][ext]), ext,
                               profiles or (Answer(),), "phone")

    async def carrier(self, *profiles: Answer, which: str = "A") -> Party:
        port = int(self.sipp["carrier"] if which == "A" else self.sipp["phones"]["109"])
        return await self._uas(f"carrier{which}", port, "carrier", profiles or (Answer(),),
                               "carrier")

    async def _uas(self, role: str, port: int, user: str, profiles: tuple[Answer, ...],
                   tone: str) -> Party:
        audio = self.tones.path(tone, TONES[tone])
        party = await self._spawn(role, port, uas_xml(user, profiles, audio), [])
        await trio.sleep(0.3)
        if not party.running:
            raise RuntimeError(f"sipp {role} exited at start, see {party.log}.out")
        return party

    async def call(self, call: Uac, *, line: int = 0, phone: str = "") -> Party:
        """Place ``call``: from outside on caller line 0-2, or from phone ``phone``."""
        if phone:
            role, port = f"phone{phone}-uac", int(self.sipp["phone_uac"][phone])
        else:
            key = CALLER_PORTS[line]
            role = f"caller{line}"
            port = int(self.sipp["trunk_in"] if key == "trunk_in" else self.sipp["phones"][key])
        audio = self.tones.path("caller", TONES["caller"])
        remote = f"127.0.0.1:{self.office['sip_port']}"
        args = [remote, "-m", "1", "-l", "1", "-timeout", "180s"]
        if call.abandon_ms is not None:
            args.append("-pause_msg_ign")  # the provisional answers while it rings
        return await self._spawn(role, port, uac_xml(call, audio), args)

    async def wait(self, party: Party, timeout: float) -> int | None:
        """The exit status of a party (a UAC ends after its call), None on timeout."""
        with trio.move_on_after(timeout):
            return await party.process.wait()
        return None

    async def stop(self) -> None:
        for p in self.parties:
            if p.running:
                p.process.send_signal(signal.SIGTERM)
        for p in self.parties:
            if await self.wait(p, 5) is None:
                p.process.kill()
                await p.process.wait()

    def media_of(self, party: Party, call: int = -1) -> tuple[str, int, int]:
        """Where Asterisk receives RTP on ``party``'s ``call``-th dialog (from the SDP Asterisk
        sent it) and its telephone-event payload type."""
        text = Path(f"{party.log}.msg").read_text(encoding="utf-8", errors="replace")
        found: dict[str, tuple[str, int, int]] = {}
        for blk in re.split(r"^-{10,} ", text, flags=re.M):
            if "UDP message received" not in blk or "m=audio" not in blk:
                continue
            cid = re.search(r"^Call-ID:\s*(\S+)", blk, re.M | re.I)
            ip = re.search(r"^c=IN IP4 (\S+)", blk, re.M)
            port = re.search(r"^m=audio (\d+)", blk, re.M)
            pt = re.search(r"^a=rtpmap:(\d+) telephone-event", blk, re.M)
            if cid and ip and port:
                found[cid.group(1)] = (ip.group(1), int(port.group(1)),
                                       int(pt.group(1)) if pt else 101)
        if not found:
            raise LookupError(f"no SDP from Asterisk in {party.log}.msg yet")
        return list(found.values())[call]

    async def dtmf(self, party: Party, digits: str, call: int = -1) -> None:
        """Press ``digits`` on ``party``'s ``call``-th call: RFC 2833 events straight to the
        RTP port Asterisk gave that call (the office accepts RTP from any source)."""
        host, port, pt = self.media_of(party, call)
        await send_rfc2833((host, port), digits, pt)

    def errors(self) -> dict[str, list[str]]:
        """What sipp reported as unexpected, per party (label jumps on timeouts are normal)."""
        out: dict[str, list[str]] = {}
        for p in self.parties:
            path = Path(f"{p.log}.err")
            if not path.exists():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            items = [x.strip() for x in re.split(r"(?=\d{4}-\d\d-\d\d\t)", text) if x.strip()]
            items = [x for x in items if "jumping to label" not in x
                     and "watchdog timer" not in x  # a loaded machine, not a SIP problem
                     and "Automatic response mode" not in x  # -aa answered a NOTIFY (MWI)
                     and x != "The following events occurred:"]
            if items:
                out[p.role] = items
        return out

    def ladder(self) -> list[str]:
        """Every SIP message the parties sent or received, in time order, one line each."""
        rows: list[tuple[str, str]] = []
        for p in self.parties:
            path = Path(f"{p.log}.msg")
            if not path.exists():
                continue
            data = path.read_text(encoding="utf-8", errors="replace")
            for blk in re.split(r"^-{10,} ", data, flags=re.M):
                m = re.match(r"(\S+ \S+)\n(UDP message (received|sent)[^\n]*)\n\n([^\n]*)", blk)
                if not m:
                    continue
                cseq = re.search(r"^CSeq:\s*(.+)$", blk, re.M | re.I)
                direction = "recv" if m.group(3) == "received" else "send"
                rows.append((m.group(1), f"{m.group(1)[11:]}  {p.role:<13} {direction:<4} "
                             f"{m.group(4)[:64]:<64} {cseq.group(1).strip() if cseq else ''}"))
        return [line for _, line in sorted(rows)]
