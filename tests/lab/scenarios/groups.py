"""#13 item 2: a ring group (several phones at once, one answers) and a hunt group (one
after another)."""

from __future__ import annotations

from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios.common import DID_HUNTGROUP, DID_RINGGROUP, settle
from tests.lab.sipp import Answer, Bye, Pause, Uac
from tests.lab.truth import span

RING = "ring group"
HUNT = "hunt group"


@scenario("ringgroup_answered", 2, RING, caller="79161230044", ring=3.0, talk=5.0)
async def ringgroup_answered(ctx: Ctx, caller: str, ring: float, talk: float) -> None:
    """Caller {caller} -> 74951230006 (ring group: Dial PJSIP/101&PJSIP/102&PJSIP/103). All
    three ring; 102 answers after {ring} s, 101 and 103 are cancelled; the caller talks
    {talk} s and hangs up."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer(ring_ms=int(ring * 1000)))
    await ctx.sipp.phone("103", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_RINGGROUP, name=caller,
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("three DialBegin", ctx.count("DialBegin") == 3)
    ctx.check("DialEnd ANSWER 102",
              ctx.count("DialEnd", DialStatus="ANSWER", DestChannel="PJSIP/102-*") == 1)
    ctx.expect("inbound", caller, DID_RINGGROUP, "completed", "102",
               legs=[("101", "cancelled"), ("102", "answered"), ("103", "cancelled")],
               recording=True, talk=span(talk), duration=span(ring + talk))


@scenario("ringgroup_noanswer", 2, RING, caller="78123334455", timeout=6)
async def ringgroup_noanswer(ctx: Ctx, caller: str, timeout: int) -> None:
    """Caller {caller} -> 74951230006 with X-Lab-Dial-Timeout: {timeout}: 101, 102 and 103
    ring, nobody answers; Dial gives up after {timeout} s and the PBX hangs up."""
    for ext in ("101", "102", "103"):
        await ctx.sipp.phone(ext, Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_RINGGROUP, name=caller,
                                  headers=[("X-Lab-Dial-Timeout", str(timeout))]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("three DialEnd NOANSWER", ctx.count("DialEnd", DialStatus="NOANSWER") == 3,
              [(e.get("DestChannel"), e.get("DialStatus")) for e in ctx.events
               if e.event == "DialEnd"])
    ctx.expect("inbound", caller, DID_RINGGROUP, "missed", None,
               legs=[("101", "no-answer"), ("102", "no-answer"), ("103", "no-answer")],
               duration=span(timeout))


@scenario("ringgroup_abandon", 2, RING, caller="79995550066", give_up=5.0)
async def ringgroup_abandon(ctx: Ctx, caller: str, give_up: float) -> None:
    """Caller {caller} -> 74951230006: 101, 102 and 103 ring; the caller gives up after
    {give_up} s (CANCEL)."""
    for ext in ("101", "102", "103"):
        await ctx.sipp.phone(ext, Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_RINGGROUP, name=caller,
                                  abandon_ms=int(give_up * 1000)))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("three DialEnd CANCEL", ctx.count("DialEnd", DialStatus="CANCEL") == 3)
    ctx.expect("inbound", caller, DID_RINGGROUP, "missed", None,
               legs=[("101", "cancelled"), ("102", "cancelled"), ("103", "cancelled")],
               duration=span(give_up))


@scenario("huntgroup", 2, HUNT, caller="79037778899", talk=4.0)
async def huntgroup(ctx: Ctx, caller: str, talk: float) -> None:
    """Caller {caller} -> 74951230007 (hunt group, 5 s per step): 101 rings 5 s unanswered,
    102 is busy (486), 103 answers after 2 s; the caller talks {talk} s and hangs up."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("busy"))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, DID_HUNTGROUP, name=caller,
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("101 NOANSWER, 102 BUSY, 103 ANSWER", [
        (e.get("DestChannel")[:9], e.get("DialStatus")) for e in ctx.events
        if e.event == "DialEnd"] == [("PJSIP/101", "NOANSWER"), ("PJSIP/102", "BUSY"),
                                      ("PJSIP/103", "ANSWER")])
    ctx.expect("inbound", caller, DID_HUNTGROUP, "completed", "103",
               legs=[("101", "no-answer"), ("102", "busy"), ("103", "answered")],
               recording=True, talk=span(talk), duration=span(5 + 2 + talk, 2, 3))


@scenario("huntgroup_missed", 2, HUNT, caller="74952223344")
async def huntgroup_missed(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230007: 101 rings its 5 s, 102 rings its 5 s, 103 rings and
    the caller gives up 3 s into it (13 s after calling)."""
    for ext in ("101", "102", "103"):
        await ctx.sipp.phone(ext, Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_HUNTGROUP, name=caller, abandon_ms=13000))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("101 and 102 NOANSWER, 103 CANCEL", [
        (e.get("DestChannel")[:9], e.get("DialStatus")) for e in ctx.events
        if e.event == "DialEnd"] == [("PJSIP/101", "NOANSWER"), ("PJSIP/102", "NOANSWER"),
                                      ("PJSIP/103", "CANCEL")])
    ctx.expect("inbound", caller, DID_HUNTGROUP, "missed", None,
               legs=[("101", "no-answer"), ("102", "no-answer"), ("103", "cancelled")],
               duration=span(13))
