"""Failed credentials, counted per address: guessing gets slow. Pure: no I/O, no clock.

Every refused secret, token, session, link or ticket counts against the client that sent
it. ``FAILURES`` of them within ``WINDOW`` seconds and that client gets 429 for every
request (``GET /ping`` apart, so monitoring goes on) until the oldest of those failures
is ``WINDOW`` seconds old: a guesser gets at most ``FAILURES`` tries a minute, and a
correct guess among the refused ones would not be recognised.

The client is its address; behind a reverse proxy (forwarding headers present) the
forwarded-for value is part of the key, so one client behind the proxy does not lock out
the others (it can change that value and start afresh, but only behind the proxy, which
is where rate limits of its own belong; the CRM secret is refused through a proxy anyway).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

FAILURES: Final = 20
WINDOW: Final = 60.0
MAX_CLIENTS: Final = 10_000  # clients remembered (the oldest forgotten first)


class Throttle:
    def __init__(self, failures: int = FAILURES, window: float = WINDOW) -> None:
        self.failures = failures
        self.window = window
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def failed(self, client: str, now: float) -> None:
        if not self.failures:  # web.auth_failures_per_minute = 0: no limit
            return
        times = self._seen.get(client)
        if times is None:
            times = self._seen[client] = deque(maxlen=self.failures)
        times.append(now)
        self._seen.move_to_end(client)
        while len(self._seen) > MAX_CLIENTS:
            self._seen.popitem(last=False)

    def blocked(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again; 0.0 when it may now."""
        times = self._seen.get(client)
        if not self.failures or times is None or len(times) < self.failures:
            return 0.0
        wait = times[0] + self.window - now
        if wait <= 0:
            return 0.0
        return wait


def client_key(remote: str | None, forwarded_for: str | None) -> str:
    """Who failed: the peer address, and behind a proxy the client it names."""
    peer = remote or "?"
    if forwarded_for:
        return f"{peer}|{forwarded_for.split(',')[0].strip()[:64]}"
    return peer
