"""SIP phones and an outside caller for the lab's PJSIP office, played by sipp.

The office (``start.sh --office pjsip``) knows phones 101..109 as static contacts on
127.0.0.1 (ports in office.json ``sipp.phones``) and the trunk by the caller's source port
(``sipp.trunk_in``); a call to ``749512301XX`` goes straight to phone 1XX. Each phone here
answers one call after ringing ``ring_ms`` and then waits for the PBX's BYE (or hangs up
itself after ``talk_ms``); the caller sends one INVITE and hangs up ``talk_ms`` after the
answer. Both send a tone as RTP (G.711 u-law) once answered, so MixMonitor records audio.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

from tests.lab.lab import Office

DIRECT = "749512301"  # + "01" .. "09": the direct number of phone 101 .. 109

_SDP = """v=0
      o=lab 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv"""

_PHONE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="pinc lab phone {user}">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from_hdr"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>
      <ereg regexp="sip:[^&gt;]*" search_in="hdr" header="Contact:" assign_to="peer"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]pinc[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Content-Length: 0

  ]]></send>
  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]pinc[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <send><![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]pinc[call_number]
      [last_Call-ID:]
      CSeq: [$cseq] INVITE
      Content-Length: 0

  ]]></send>
  <recv request="ACK" next="end"/>
  <label id="answer"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]pinc[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{user}@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}

  ]]></send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>
  <recv request="BYE" timeout="{talk_ms}" ontimeout="hangup"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <nop next="end"/>
  <label id="hangup"/>
  <send retrans="500"><![CDATA[

      BYE [$peer] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to_hdr];tag=[pid]pinc[call_number]
      To: [$from_hdr]
      Call-ID: [call_id]
      CSeq: 9001 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
  <label id="end"/>
  <timewait milliseconds="300"/>
</scenario>
"""

_CALLER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="pinc lab caller {caller} to {did}">
  <send retrans="500"><![CDATA[

      INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]pinc[call_number]
      To: <sip:{did}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}

  ]]></send>
  <label id="progress"/>
  <recv response="100" optional="true" next="progress"/>
  <recv response="180" optional="true" next="progress"/>
  <recv response="183" optional="true" next="progress"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]pinc[call_number]
      To: <sip:{did}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>
  <recv request="BYE" timeout="{talk_ms}" ontimeout="hangup"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <nop next="end"/>
  <label id="hangup"/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]pinc[call_number]
      To: <sip:{did}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
  <label id="end"/>
  <timewait milliseconds="300"/>
</scenario>
"""


def ulaw(sample: int) -> int:
    """One 16-bit linear sample as G.711 u-law."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone(path: Path, hertz: int) -> Path:
    """One second of a sine tone, 8 kHz u-law, for sipp's rtp_stream."""
    if not path.exists():
        path.write_bytes(bytes(
            ulaw(int(8000 * math.sin(2 * math.pi * hertz * i / 8000))) for i in range(8000)))
    return path


class SipPhones:
    """sipp processes for one test; ``stop()`` ends those still running."""

    def __init__(self, office: Office, workdir: Path) -> None:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise RuntimeError("sipp is missing (apt-get install -y sip-tester)")
        self.sipp = sipp
        self.office = office
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        ports = office.raw["sipp"]
        self.phone_ports: dict[str, int] = {k: int(v) for k, v in ports["phones"].items()}
        self.trunk_in = int(ports["trunk_in"])
        self.carrier_port = int(ports["carrier"])
        self.media = int(ports.get("media_base") or 22000)

    def _spawn(self, name: str, xml: str, args: list[str]) -> subprocess.Popen[bytes]:
        path = self.dir / f"{name}.xml"
        path.write_text(xml, encoding="ascii")
        self.media += 10
        log = (self.dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [self.sipp, *args, "-sf", str(path), "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-mp", str(self.media), "-m", "1", "-timeout", "180s", "-nostdin",
             "-trace_err", "-error_file", str(self.dir / f"{name}.errors")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def phone(self, ext: str, *, ring_ms: int, talk_ms: int = 600_000) -> subprocess.Popen[bytes]:
        """Phone ``ext`` answers its next call after ``ring_ms``; hangs up after ``talk_ms``."""
        audio = tone(self.dir / "phone.ulaw", 425)
        xml = _PHONE.format(user=ext, ring_ms=ring_ms, talk_ms=talk_ms, sdp=_SDP, audio=audio)
        return self._spawn(f"phone{ext}", xml, ["-p", str(self.phone_ports[ext])])

    def carrier(self, *, ring_ms: int, talk_ms: int = 600_000) -> subprocess.Popen[bytes]:
        """The carrier answers the PBX's next outbound call after ``ring_ms`` (the called
        number picks up) and hangs up after ``talk_ms``."""
        audio = tone(self.dir / "carrier.ulaw", 1004)
        xml = _PHONE.format(user="carrier", ring_ms=ring_ms, talk_ms=talk_ms, sdp=_SDP,
                            audio=audio)
        return self._spawn("carrier", xml, ["-p", str(self.carrier_port)])

    def call(self, caller: str, did: str, *, talk_ms: int) -> subprocess.Popen[bytes]:
        """The outside caller ``caller`` calls ``did`` through the trunk; hangs up ``talk_ms``
        after the answer (or when the PBX hangs up)."""
        audio = tone(self.dir / "caller.ulaw", 600)
        xml = _CALLER.format(caller=caller, did=did, talk_ms=talk_ms, sdp=_SDP, audio=audio)
        target = f"127.0.0.1:{self.office.sip_port}"
        return self._spawn(f"caller{caller.lstrip('+')}", xml, [target, "-p", str(self.trunk_in)])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
