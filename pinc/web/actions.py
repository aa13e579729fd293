"""The AMI actions the web surface issues: click-to-call Originate and transfers.

Values arrive here already validated (``pinc.web.validate``); this module only
builds the action fields and decides which channel a transfer acts on.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from pinc.services import ActionResult, Services

log = logging.getLogger(__name__)
audit_log = logging.getLogger("pinc.audit")


def audit(action: str, *, who: str, address: str | None, result: str, **fields: object) -> None:
    """The one audit line of an originate or a transfer: who asked, from where, what was
    dialled, in which context, and what pinc did (``pinc.audit`` logger)."""
    details = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
    audit_log.info("%s by=%s addr=%s %s result=%s", action, who, address or "?", details, result)


@dataclass(frozen=True)
class OriginateRequest:
    ext: str
    number: str  # digits only
    context: str
    record_id: str | None
    variables: Sequence[tuple[str, str]] = ()
    origin: str = "crm"


def new_channel_id() -> str:
    """A ChannelId Asterisk uses as the Uniqueid (and so the Linkedid) of the call.

    ``<epoch>.<seq>`` like Asterisk's own ids, so call ids stay short and sortable;
    the ``pinc-`` prefix keeps it apart from ids Asterisk generates.
    """
    return f"pinc-{int(time.time())}.{secrets.randbelow(36**5)}"


def originate_fields(
    services: Services, req: OriginateRequest, channel_id: str
) -> list[tuple[str, str]]:
    pbx = services.config.pbx
    fields = [
        ("Channel", pbx.originate_channel.format(ext=req.ext)),
        ("Context", req.context),
        ("Exten", req.number),
        ("Priority", "1"),
        ("CallerID", f'"CRM {req.number}" <{req.ext}>'),
        ("Timeout", str(int(pbx.originate_timeout * 1000))),
        ("Async", "true"),
        ("ChannelId", channel_id),
    ]
    fields.extend(("Variable", f"{name}={value}") for name, value in req.variables)
    return fields


async def originate(services: Services, req: OriginateRequest, channel_id: str) -> bool:
    """Send the Originate (runs in pinc's nursery after the HTTP answer went out)."""
    services.ingest.note_originate(
        channel_id, ext=req.ext, number=req.number, record_id=req.record_id, origin=req.origin
    )
    fields = originate_fields(services, req, channel_id)
    try:
        result = await services.ami.action(
            "Originate", fields, timeout=services.config.ami.action_timeout
        )
    except trio.TooSlowError:
        log.error("originate %s -> %s: AMI did not answer in time", req.ext, req.number)
        return False
    except Exception as exc:  # AmiNotConnected, a broken connection: logged, nothing to retry
        log.error("originate %s -> %s failed: %s", req.ext, req.number, exc)
        return False
    if not result.ok:
        log.error(
            "originate %s -> %s refused by Asterisk: %s",
            req.ext,
            req.number,
            result.response.get("Message"),
        )
        return False
    log.info("originate %s -> %s sent (ChannelId %s)", req.ext, req.number, channel_id)
    return True


def ami_connected(services: Services) -> bool:
    try:
        return bool(services.ami.status().get("connected"))
    except Exception:  # a status() that fails means we cannot vouch for the connection
        return False


class TransferError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


Step = tuple[str, list[tuple[str, str]]]  # an AMI action and its fields


def pick_channel(channels: Sequence[dict[str, str]], from_ext: str | None) -> dict[str, str] | None:
    """The employee's channel that hands the call over: the one bridged with the other
    party (``from_ext``'s, when given). A Local channel's other half, or a phone that only
    rings, is no good: Asterisk answers "Transfer invalid" for a channel in no bridge."""
    employees = [c for c in channels if c.get("role") == "employee" and c.get("partner")]
    if from_ext:
        employees = [c for c in employees if c.get("ext") == from_ext]
    with_customer = [c for c in employees if c.get("partner") == "customer"]
    picked = with_customer or employees
    return picked[-1] if picked else None


def _movable_customer(
    channels: Sequence[dict[str, str]], bridge: str | None = None
) -> dict[str, str] | None:
    """The customer's channel a Redirect can move: the one in ``bridge`` when given,
    else one in the PBX's dialplan (a Local pair's ;2 half, which runs it)."""
    customers = [c for c in channels if c.get("role") == "customer"]
    if bridge is not None:
        customers = [c for c in customers if c.get("bridge") == bridge]
    else:
        customers.sort(key=lambda c: not c.get("channel", "").endswith(";2"))
    return customers[0] if customers else None


def _redirect(channel: str, to: str, context: str) -> Step:
    return "Redirect", [
        ("Channel", channel),
        ("Exten", to),
        ("Context", context),
        ("Priority", "1"),
    ]


def transfer_plan(
    channels: Sequence[dict[str, str]],
    *,
    to: str,
    mode: str,
    context: str,
    from_ext: str | None = None,
) -> list[Step]:
    """The AMI actions for a transfer of a live call, to try in order.

    blind: BlindTransfer of the employee's channel that is bridged with the customer
    (the customer, its bridge peer, goes to ``to``), then, should Asterisk refuse it, a
    Redirect of that customer's channel. With no employee bridged yet (queue, IVR,
    ringing): a Redirect of the customer's channel. attended: Atxfer from the
    employee's bridged channel (the employee consults ``to``, hangs up to complete).
    """
    employee = pick_channel(channels, from_ext)
    if mode == "attended":
        if employee is None:
            raise TransferError(409, "not_answered", "no employee is on the call to consult")
        return [("Atxfer", [("Channel", employee["channel"]), ("Exten", to), ("Context", context)])]
    if employee is not None:
        steps: list[Step] = [
            (
                "BlindTransfer",
                [("Channel", employee["channel"]), ("Exten", to), ("Context", context)],
            )
        ]
        peer = _movable_customer(channels, employee.get("bridge") or None)
        if peer is not None:
            steps.append(_redirect(peer["channel"], to, context))
        return steps
    if from_ext:
        raise TransferError(409, "not_on_call", f"{from_ext} is not talking on this call")
    customer = _movable_customer(channels)
    if customer is None:
        raise TransferError(409, "no_channel", "the call has no channel that can be moved")
    return [_redirect(customer["channel"], to, context)]


async def run_transfer(services: Services, steps: Sequence[Step]) -> str:
    """Send the plan's actions until Asterisk accepts one; returns the action it took.
    Each refusal is logged; the last one is raised as a ``TransferError``."""
    refusals: list[str] = []
    for action, fields in steps:
        try:
            result: ActionResult = await services.ami.action(
                action, fields, timeout=services.config.ami.action_timeout
            )
        except trio.TooSlowError:
            raise TransferError(504, "ami_timeout", "Asterisk did not answer in time") from None
        except Exception as exc:
            log.error("%s failed: %s", action, exc)
            raise TransferError(503, "ami_unavailable", "not connected to Asterisk") from None
        if result.ok:
            return action
        message = result.response.get("Message") or "refused"
        channel = dict(fields).get("Channel", "")
        log.warning("transfer: Asterisk refused %s of %s: %s", action, channel, message)
        refusals.append(f"{action}: {message}")
    raise TransferError(
        502, "ami_refused", "Asterisk refused the transfer (" + "; ".join(refusals) + ")"
    )


def involves(call: dict[str, Any], ext: str) -> bool:
    """Whether employee ``ext`` takes part in ``call`` (websocket and dashboard filter)."""
    if ext in (call.get("from"), call.get("to"), call.get("answered_by")):
        return True
    if any(leg.get("ext") == ext for leg in call.get("legs") or ()):
        return True
    return any(ext in (t.get("from"), t.get("to")) for t in call.get("transfers") or ())
