"""#13 item 3: call pickup. Another phone takes a ringing call: group pickup with ``*8``
(call group / pickup group 1: 101-103), directed pickup with ``**10X`` (PickupChan). The
phone that picks up never rang: it is ``answered_by`` and no leg."""

from __future__ import annotations

import trio

from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios.common import DID_MAIN, direct, settle
from tests.lab.sipp import Answer, Bye, Pause, Uac
from tests.lab.truth import span

SHAPE = "call pickup"


@scenario("pickup_group", 3, SHAPE, caller="79035550011", code="*8", ring=3.0, talk=4.0)
@scenario("pickup_directed", 3, SHAPE, caller="79152224466", code="**101", ring=4.0,
          talk=5.0)
async def pickup_direct_number(ctx: Ctx, caller: str, code: str, ring: float,
                               talk: float) -> None:
    """Caller {caller} -> 74951230101 (direct number of 101); 101 rings and never answers;
    {ring} s later phone 103 dials {code} and takes the call; the caller talks {talk} s
    with 103 and hangs up."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_event("DialBegin", DestChannel="PJSIP/101-*")
    await trio.sleep(ring)
    picker = await ctx.sipp.call(Uac("103", code, name="Viktor 103", steps=[Pause(60000)]),
                                 phone="103")
    await ctx.wait_uac(uac)
    await ctx.wait_uac(picker)
    await settle(ctx)
    ctx.check("Pickup event", ctx.count("Pickup") == 1, ctx.count("Pickup"))
    ctx.check("the caller was bridged with PJSIP/103",
              ctx.count("BridgeEnter", Channel="PJSIP/103-*") == 1)
    ctx.expect("inbound", caller, direct("101"), "completed", "103",
               legs=[("101", "cancelled")], recording=True, talk=span(talk),
               duration=span(ring + talk), notes={"pickup": "103"})


@scenario("pickup_queue", 3, SHAPE, caller="79264441122", ring=4.0, talk=4.0)
async def pickup_queue(ctx: Ctx, caller: str, ring: float, talk: float) -> None:
    """Caller {caller} -> 74951230000 (queue sales rings PJSIP/101 and PJSIP/102, neither
    answers); {ring} s later phone 103 dials *8 and takes the call (one of the two ringing
    channels); the other stops ringing; the caller talks {talk} s with 103 and hangs up."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_MAIN, name=caller,
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_event("DialBegin", DestChannel="PJSIP/102-*")
    await trio.sleep(ring)
    picker = await ctx.sipp.call(Uac("103", "*8", name="Viktor 103", steps=[Pause(60000)]),
                                 phone="103")
    await ctx.wait_uac(uac)
    await ctx.wait_uac(picker)
    await settle(ctx)
    ctx.check("Pickup event", ctx.count("Pickup") == 1, ctx.count("Pickup"))
    ctx.check("the caller was bridged with PJSIP/103",
              ctx.count("BridgeEnter", Channel="PJSIP/103-*") == 1)
    ctx.expect("inbound", caller, DID_MAIN, "completed", "103",
               legs=[("101", "cancelled"), ("102", "cancelled")], recording=True,
               talk=span(talk), duration=span(ring + talk), notes={"pickup": "103"})
