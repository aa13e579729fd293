"""CI helper: connect to pinc's /ws and wait for one call message.

    python .ci/ws_call.py PORT TOKEN [SECONDS]

Exit 0 when a `call.*` message arrives within SECONDS, 1 otherwise.
"""

from __future__ import annotations

import json
import sys

import trio
from trio_websocket import open_websocket_url


async def main(port: int, token: str, seconds: float) -> int:
    with trio.move_on_after(seconds):
        url = f"ws://127.0.0.1:{port}/ws"  # the token goes in a header, never in a URL
        headers = [(b"Authorization", f"Bearer {token}".encode())]
        async with open_websocket_url(url, extra_headers=headers) as ws:
            while True:
                message = json.loads(await ws.get_message())
                kind = str(message.get("type", ""))
                if kind.startswith("call."):
                    print(f"websocket delivered {kind} for call {message.get('call_id')}")
                    return 0
    print(f"no call message on /ws within {seconds} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    sys.exit(trio.run(main, int(sys.argv[1]), sys.argv[2], seconds))
