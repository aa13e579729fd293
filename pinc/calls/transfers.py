"""Transfers: blind, attended, redirect, FollowMe steps and pinc's own (``crm``).

A phone that starts ringing while a call is answered is a *tentative* transfer
(``State.tentative_transfer``). It is confirmed when its target answers (a redirect or
a blind transfer), or, for a consultation call, only by an ``AttendedTransfer`` event.
``BlindTransfer`` and ``AttendedTransfer`` events name the kind; a transfer that pinc's
``/transfer`` asked for (``Tracker.note_transfer``) is recorded as ``crm``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.channels import touch
from pinc.calls.model import Transfer
from pinc.calls.names import clean, digits
from pinc.calls.state import CrmAsk, LegState, Live, Out, State, Xfer

Fields = Mapping[str, str]


def xfer_for(live: Live, ls: LegState) -> Xfer | None:
    for x in live.xfers:
        if x.target is ls:
            return x
    return None


def confirm(st: State, live: Live, x: Xfer, out: Out) -> None:
    if x.confirmed:
        return
    x.confirmed = True
    if x.target is not None:
        x.target.counts = True
    ask = st.crm_asks.get(live.call.id)
    if ask is not None and ask.to in ("", x.transfer.to):  # pinc's own /transfer asked for it
        if ask.accepted:
            del st.crm_asks[live.call.id]
            x.transfer.kind = "crm"
        else:  # the events came before Asterisk's answer: relabel it once Success comes
            ask.seen = x
    live.call.transfers.append(x.transfer)
    if live.announced:
        st.refresh(live)
        st.emit(live, "call.transferred", out, x.transfer.to_dict())


def ask(st: State, call_id: str, to: str) -> bool:
    """pinc is about to ask Asterisk to transfer ``call_id`` to ``to``."""
    if st.live_by_id(call_id) is None:
        return False
    st.crm_asks[call_id] = CrmAsk(to=to)
    return True


def answered(st: State, call_id: str, to: str, accepted: bool) -> None:
    """Asterisk answered pinc's transfer request: only a Success makes it a ``crm``
    transfer; a refusal leaves no mark behind (it would mislabel a later transfer)."""
    ask = st.crm_asks.get(call_id)
    if ask is None or ask.to != to:
        return
    if not accepted:
        del st.crm_asks[call_id]
        return
    if ask.seen is None:
        ask.accepted = True
        return
    del st.crm_asks[call_id]
    live = st.live_by_id(call_id)
    ask.seen.transfer.kind = "crm"
    if live is not None and live.announced:
        st.emit(live, "call.transferred", st.pending_out, ask.seen.transfer.to_dict())


def explicit_transfer(
    st: State, live: Live, kind: str, from_ext: str, target: str, out: Out
) -> None:
    """A transfer event named ``target``: confirm the tentative transfer to it, or record
    one and expect the target to ring next."""
    for x in live.xfers:
        if not x.confirmed and x.target is not None and x.transfer.to == target:
            x.transfer.kind = kind
            if from_ext:
                x.transfer.from_ext = from_ext
            confirm(st, live, x, out)
            return
    transfer = Transfer(kind=kind, from_ext=from_ext, to=target, at=st.t)
    x = Xfer(transfer, None, needs_event=False)
    live.xfers.append(x)
    live.expect_target = target
    confirm(st, live, x, out)


def on_blind_transfer(st: State, f: Fields, out: Out) -> None:
    transferer = touch(st, f, "Transferer", out)
    transferee = touch(st, f, "Transferee", out)
    if clean(f.get("Result", "")) != "Success":
        return
    chan = transferee or transferer
    if chan is None or chan.call is None:
        return
    live = chan.call
    target = digits(clean(f.get("Extension", "")))
    from_ext = st.who(live, transferer) or (live.call.answered_by or "")
    explicit_transfer(st, live, "blind", from_ext, target, out)


def on_attended_transfer(st: State, f: Fields, out: Out) -> None:
    orig = touch(st, f, "OrigTransferer", out)
    second = touch(st, f, "SecondTransferer", out)
    transferee = touch(st, f, "Transferee", out)
    target_chan = touch(st, f, "TransferTarget", out)
    if clean(f.get("Result", "")) != "Success":
        return
    if target_chan is None and clean(f.get("DestType", "")) == "Bridge":
        # An Asterisk race (the transferer's Local half hung up first) leaves the
        # TransferTarget fields out: the target is who entered the bridge just before.
        members = st.bridges.get(clean(f.get("DestBridgeUniqueid", "")), [])
        target_chan = members[-1] if members else None
        if target_chan in (orig, second, transferee):
            target_chan = None
    chans = [c for c in (transferee, orig, second, target_chan) if c is not None]
    if not chans or chans[0].call is None:
        return
    live = chans[0].call
    for c in chans[1:]:  # both halves of the transfer now belong to one call
        if c.call is not None and c.call is not live:
            live = st.merge_older(live, c.call, out)
    from_ext = st.who(live, orig) or st.who(live, second)
    target = st.dialled_ext(live, target_chan)
    if not target and target_chan is not None:
        target = digits(target_chan.exten) or digits(target_chan.parsed.exten)
    pending = [x for x in live.xfers if not x.confirmed and x.target is not None]
    match = next((x for x in pending if x.transfer.to == target), None)
    if match is None and pending and not target:
        match = pending[-1]
    if match is not None:
        match.transfer.kind = "attended"
        if from_ext:
            match.transfer.from_ext = from_ext
        confirm(st, live, match, out)
        return
    explicit_transfer(st, live, "attended", from_ext, target, out)


def followme_step(st: State, live: Live, ls: LegState, out: Out) -> None:
    """A FollowMe rang its next step: the previous step timed out (FollowMe sends it no
    DialEnd), and the call moved on, a ``followme`` transfer."""
    prev = None
    for other in live.legs[:-1]:
        if other.followme_owner is not None:
            prev = other
    if prev is None:
        return
    if prev.leg.result is None:
        prev.leg.result = "no-answer"
    transfer = Transfer(kind="followme", from_ext=prev.leg.ext, to=ls.leg.ext, at=st.t)
    live.xfers.append(Xfer(transfer, ls, needs_event=False, confirmed=True))
    live.call.transfers.append(transfer)
    if live.announced:
        st.emit(live, "call.transferred", out, transfer.to_dict())
