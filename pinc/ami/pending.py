"""An action waiting for its reply: its response and, for a list reply, its events.

The AMI client keeps one per ActionID it sent; the reader hands each message that carries
that ActionID here, and the waiting ``action()`` call wakes when the reply is whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from pinc.ami.events import ListCompleted
from pinc.ami.message import Message


@dataclass
class Pending:
    """One action in flight."""

    done: trio.Event = field(default_factory=trio.Event)
    response: Message | None = None
    events: list[Message] = field(default_factory=list)
    listing: bool = False  # the response said EventList: start; collecting until Complete
    error: str | None = None
    action: str = ""
    in_stream: bool = False  # also deliver the completed list as a ListCompleted event

    def take_response(self, msg: Message) -> None:
        if self.response is not None:
            return  # a second response to one ActionID: Asterisk's, not ours to wake on
        self.response = msg
        if msg.get("EventList").lower() == "start":
            self.listing = True
        else:
            self.done.set()

    def take_event(self, msg: Message, at: float) -> ListCompleted | None:
        """An event of this action's list; at its end, what to deliver in the stream."""
        if msg.get("EventList").lower() != "complete":
            self.events.append(msg)
            return None
        self.done.set()
        return ListCompleted(self.action, tuple(self.events), at) if self.in_stream else None
