"""Ask a lab office's Asterisk what it holds right now, over AMI (pinc's own sans-IO parser
on a plain socket): the ground truth a test compares pinc and the CRM with."""

from __future__ import annotations

import socket
import time

from pinc.ami.protocol import AMIConnection, Message, encode_action
from tests.lab.lab import Office


def channels(office: Office, timeout: float = 10.0) -> list[dict[str, str]]:
    """Every channel Asterisk has (``CoreShowChannels``): Channel, BridgeId, Exten, ..."""
    deadline = time.monotonic() + timeout
    conn = AMIConnection(expect_banner=True)
    with socket.create_connection((office.ami_host, office.ami_port), timeout=timeout) as sock:
        sock.sendall(encode_action("Login", {"Username": office.ami_user,
                                             "Secret": office.ami_secret,
                                             "Events": "off"}, action_id="login"))
        sock.sendall(encode_action("CoreShowChannels", {}, action_id="chans"))
        found: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            conn.feed(data)
            for msg in conn.messages():
                if not isinstance(msg, Message) or msg.get("ActionID") != "chans":
                    continue
                if msg.get("Event") == "CoreShowChannel":
                    found.append(dict(msg.headers))
                elif msg.get("Event") == "CoreShowChannelsComplete":
                    sock.sendall(encode_action("Logoff", {}, action_id="bye"))
                    return found
        raise TimeoutError("Asterisk did not list its channels in time")


def bridged_with(office: Office, prefix: str) -> list[str]:
    """The channels in the same bridge as the first channel whose name starts with ``prefix``."""
    chans = channels(office)
    mine = [c for c in chans if c.get("Channel", "").startswith(prefix)]
    if not mine or not mine[0].get("BridgeId"):
        return []
    bridge = mine[0]["BridgeId"]
    return [c["Channel"] for c in chans if c.get("BridgeId") == bridge and c is not mine[0]]
