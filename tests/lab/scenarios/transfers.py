"""#13 item 4: transfers made with the phone's feature keys (features.conf: blind ``##``,
attended ``*2``; during an attended transfer ``*1`` aborts), sent as RFC 2833 DTMF.

Every call: an outside caller on 101's direct number, 101 answers after 1 s and presses the
keys 3 s later. A phone's own hang-up is planned when it starts (sipp steps), so each
scenario checks that the events came in the planned order.
"""

from __future__ import annotations

import trio

from tests.lab.parties import Party
from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios.common import direct, settle
from tests.lab.sipp import Answer, Bye, Pause, Uac
from tests.lab.truth import span

SHAPE = "transfer by the phone's feature keys"
OUTSIDE = "79161234567"


async def press(ctx: Ctx, phone: Party, code: str, target: str) -> None:
    """Feature code, then (once Asterisk put the caller on hold) the target's number."""
    n = len(ctx.events)
    await ctx.sipp.dtmf(phone, code)
    await ctx.wait_event("MusicOnHoldStart", timeout=5, since=n, Channel="PJSIP/trunk-*")
    await trio.sleep(0.8)  # the transfer prompt starts playing
    await ctx.sipp.dtmf(phone, target)


async def answered_then(ctx: Ctx, seconds: float) -> None:
    await ctx.answered("PJSIP/101-")
    await trio.sleep(seconds)


@scenario("xfer_blind_dtmf", 4, SHAPE, caller="79035550011", target="102", talk=6.0)
@scenario("xfer_blind_dtmf_2", 4, SHAPE, caller="74991110055", target="103", talk=4.0)
async def xfer_blind_dtmf(ctx: Ctx, caller: str, target: str, talk: float) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses ##
    then {target} (blind transfer) and is hung up; {target} answers after 2 s; the caller
    talks about {talk} s with {target} and hangs up (15 s after 101 answered)."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000))
    await ctx.sipp.phone(target, Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(int((9 + talk) * 1000)), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "##", target)
    await ctx.answered(f"PJSIP/{target}-", timeout=10)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("BlindTransfer Success", ctx.count("BlindTransfer", Result="Success",
                                                 Extension=target) == 1)
    ctx.expect("inbound", caller, direct("101"), "completed", target,
               legs=[("101", "answered"), (target, "answered")],
               transfers=[("blind", "101", target)], recording=True,
               talk=span(9 + talk, 5, 2.5), duration=span(10 + talk, 5, 3))


@scenario("xfer_attended_dtmf", 4, SHAPE, caller="79031112233")
async def xfer_attended_dtmf(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses *2 then
    103 (the caller hears music on hold); 103 answers after 2 s and talks with 101; 101 hangs
    up 11 s after it answered, which completes the transfer; the caller talks with 103 and
    hangs up 16 s after 101 answered."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000, steps=[Pause(11000), Bye()]))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(16000), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "*2", "103")
    n = len(ctx.events)
    await ctx.answered("PJSIP/103-", timeout=10)
    at = await ctx.wait_event("AttendedTransfer", timeout=15, since=n)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("AttendedTransfer Success after 103 answered", at.get("Result") == "Success")
    ctx.expect("inbound", caller, direct("101"), "completed", "103",
               legs=[("101", "answered"), ("103", "answered")],
               transfers=[("attended", "101", "103")], recording=True,
               talk=span(16, 10, 2.5), duration=span(17, 10, 3))


@scenario("xfer_attended_ringing", 4, SHAPE, caller="79167778800")
async def xfer_attended_ringing(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses *2 then
    103; 103 rings for 7 s; 101 hangs up while 103 still rings (8 s after it answered), which
    completes the transfer before the target answered; 103 answers, the caller talks with it
    and hangs up 18 s after 101 answered."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000, steps=[Pause(8000), Bye()]))
    await ctx.sipp.phone("103", Answer(ring_ms=7000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(18000), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "*2", "103")
    n = len(ctx.events)
    at = await ctx.wait_event("AttendedTransfer", timeout=15, since=n)
    answer = await ctx.answered("PJSIP/103-", timeout=15, since=n)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("AttendedTransfer Success before 103 answered",
              at.get("Result") == "Success" and ctx.events.index(at) < ctx.events.index(answer))
    ctx.expect("inbound", caller, direct("101"), "completed", "103",
               legs=[("101", "answered"), ("103", "answered")],
               transfers=[("attended", "101", "103")], recording=True,
               talk=span(18, 14, 2.5), duration=span(19, 14, 3))


@scenario("xfer_attended_abort", 4, SHAPE, caller="79854443322")
async def xfer_attended_abort(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses *2 then
    103; 103 answers after 2 s and talks with 101 for 3 s; 101 presses *1 (abort): 103 is
    hung up and 101 is back with the caller, who hangs up 16 s after 101 answered."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(16000), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "*2", "103")
    await ctx.answered("PJSIP/103-", timeout=10)
    await trio.sleep(3)
    await ctx.sipp.dtmf(p101, "*1")
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("no AttendedTransfer", ctx.count("AttendedTransfer") == 0)
    ctx.check("the caller back with 101 (MusicOnHoldStop)",
              ctx.count("MusicOnHoldStop", Channel="PJSIP/trunk-*") >= 1)
    ctx.expect("inbound", caller, direct("101"), "completed", "101",
               legs=[("101", "answered"), ("103", "answered")], recording=True,
               talk=span(16), duration=span(17), notes={"consultation": "103"})


@scenario("xfer_blind_outside", 4, SHAPE, caller="79031234599", number=OUTSIDE)
async def xfer_blind_outside(ctx: Ctx, caller: str, number: str) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses ## then
    {number} (an outside number); carrier A answers after 2 s; the caller talks with the
    outside number and hangs up 17 s after 101 answered."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000))
    await ctx.sipp.carrier(Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(17000), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "##", number)
    await ctx.answered("PJSIP/trunk-", timeout=15)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("BlindTransfer to the number", ctx.count("BlindTransfer", Result="Success",
                                                       Extension=number) == 1)
    ctx.expect("inbound", caller, direct("101"), "completed", "101",
               legs=[("101", "answered")], transfers=[("blind", "101", number)],
               recording=True, talk=span(17, 10, 2.5), duration=span(18, 10, 3))


@scenario("xfer_attended_outside", 4, SHAPE, caller="74959876543", number=OUTSIDE)
async def xfer_attended_outside(ctx: Ctx, caller: str, number: str) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses *2 then
    {number}; carrier A answers after 2 s and talks with 101; 101 hangs up 14 s after it
    answered, which completes the transfer; the caller talks with the outside number and
    hangs up 20 s after 101 answered."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000, steps=[Pause(14000), Bye()]))
    await ctx.sipp.carrier(Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(20000), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "*2", number)
    n = len(ctx.events)
    await ctx.answered("PJSIP/trunk-", timeout=15)
    at = await ctx.wait_event("AttendedTransfer", timeout=20, since=n)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("AttendedTransfer Success", at.get("Result") == "Success")
    ctx.expect("inbound", caller, direct("101"), "completed", "101",
               legs=[("101", "answered")], transfers=[("attended", "101", number)],
               recording=True, talk=span(20, 12, 2.5), duration=span(21, 12, 3))
