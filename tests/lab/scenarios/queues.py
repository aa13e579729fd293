"""#13 item 1: FreePBX-style queues whose members are Local channels into from-queue.

fpbx-ringall rings Local/101@from-queue/n and Local/102@from-queue/n together (with /n: the
Local pair stays); fpbx-linear rings Local/101, 102, 103 @from-queue (no /n: the pair
optimises away once answered) one after another, 4 s each with a 1 s pause.
"""

from __future__ import annotations

from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios.common import DID_FPBX_LINEAR, DID_FPBX_RINGALL, settle
from tests.lab.sipp import Answer, Bye, Pause, Uac
from tests.lab.truth import span

SHAPE = "queue with Local-channel members (FreePBX from-queue)"


@scenario("queue_local_ringall", 1, SHAPE, caller="79035550101", winner="102", ring=3.0,
          talk=5.0)
@scenario("queue_local_ringall_2", 1, SHAPE, caller="74997001122", winner="101", ring=5.0,
          talk=3.0)
async def queue_local_ringall(ctx: Ctx, caller: str, winner: str, ring: float,
                              talk: float) -> None:
    """Caller {caller} -> 74951230001 (queue fpbx-ringall: Local/101@from-queue/n and
    Local/102@from-queue/n ring together). Phone {winner} answers after {ring} s, the other
    phone keeps ringing until the queue cancels it; the caller talks {talk} s and hangs up."""
    loser = "101" if winner == "102" else "102"
    await ctx.sipp.phone(winner, Answer(ring_ms=int(ring * 1000)))
    await ctx.sipp.phone(loser, Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_RINGALL, name=caller,
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("AgentCalled Local/101 and Local/102",
              ctx.count("AgentCalled", Interface="Local/101@from-queue/n") == 1
              and ctx.count("AgentCalled", Interface="Local/102@from-queue/n") == 1)
    ctx.check(f"AgentConnect Local/{winner}",
              ctx.count("AgentConnect", Interface=f"Local/{winner}@from-queue/n") == 1)
    ctx.check(f"DialEnd ANSWER PJSIP/{winner}",
              ctx.count("DialEnd", DialStatus="ANSWER", DestChannel=f"PJSIP/{winner}-*") == 1)
    legs = [("101", "answered" if winner == "101" else "cancelled"),
            ("102", "answered" if winner == "102" else "cancelled")]
    ctx.expect("inbound", caller, DID_FPBX_RINGALL, "completed", winner, legs=legs,
               recording=True, talk=span(talk), duration=span(ring + talk),
               notes={"queue": "fpbx-ringall"})


@scenario("queue_local_linear", 1, SHAPE, caller="79267770033", talk=4.0)
async def queue_local_linear(ctx: Ctx, caller: str, talk: float) -> None:
    """Caller {caller} -> 74951230004 (queue fpbx-linear, 4 s per member, 1 s between). Local/101
    rings 4 s unanswered, Local/102 rings 4 s unanswered, Local/103 answers after 2 s; the
    caller talks {talk} s and hangs up."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("noanswer"))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_LINEAR, name=caller,
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("AgentRingNoAnswer for 101 and 102",
              ctx.count("AgentRingNoAnswer", Interface="Local/101@from-queue") >= 1
              and ctx.count("AgentRingNoAnswer", Interface="Local/102@from-queue") >= 1)
    ctx.check("AgentConnect Local/103", ctx.count("AgentConnect",
                                                  Interface="Local/103@from-queue") == 1)
    ctx.check("101 and 102 rang once each", ctx.count("DialBegin", DestChannel="PJSIP/101-*")
              == 1 and ctx.count("DialBegin", DestChannel="PJSIP/102-*") == 1,
              [e.get("DestChannel") for e in ctx.events if e.event == "DialBegin"])
    ctx.expect("inbound", caller, DID_FPBX_LINEAR, "completed", "103",
               legs=[("101", "no-answer"), ("102", "no-answer"), ("103", "answered")],
               recording=True, talk=span(talk), duration=span(4 + 1 + 4 + 1 + 2 + talk, 2, 4),
               notes={"queue": "fpbx-linear"})


@scenario("queue_local_abandon", 1, SHAPE, caller="79031234501", give_up=7.0)
async def queue_local_abandon(ctx: Ctx, caller: str, give_up: float) -> None:
    """Caller {caller} -> 74951230001 (queue fpbx-ringall); 101 and 102 ring and nobody answers;
    the caller gives up after {give_up} s (CANCEL)."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_RINGALL, name=caller,
                                  abandon_ms=int(give_up * 1000)))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("QueueCallerAbandon", ctx.count("QueueCallerAbandon", Queue="fpbx-ringall") == 1)
    ctx.check("no AgentConnect", ctx.count("AgentConnect") == 0)
    ctx.expect("inbound", caller, DID_FPBX_RINGALL, "missed", None,
               legs=[("101", "cancelled"), ("102", "cancelled")], recording=False,
               duration=span(give_up), notes={"queue": "fpbx-ringall"})


@scenario("queue_local_timeout", 1, SHAPE, caller="74951112233", wait=8, talk=4.0)
async def queue_local_timeout(ctx: Ctx, caller: str, wait: int, talk: float) -> None:
    """Caller {caller} -> 74951230001 with X-Lab-Queue-Timeout: {wait} (queue fpbx-ringall); 101
    and 102 ring unanswered until the queue gives up after {wait} s; the dialplan goes on to
    the operator, PJSIP/103, which answers after 2 s; the caller talks {talk} s."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("noanswer"))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_RINGALL, name=caller,
                                  headers=[("X-Lab-Queue-Timeout", str(wait))],
                                  steps=[Pause(int(talk * 1000)), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("no AgentConnect", ctx.count("AgentConnect") == 0)
    ctx.check("QueueCallerLeave", ctx.count("QueueCallerLeave", Queue="fpbx-ringall") == 1)
    ctx.check("DialEnd ANSWER PJSIP/103",
              ctx.count("DialEnd", DialStatus="ANSWER", DestChannel="PJSIP/103-*") == 1)
    ctx.expect("inbound", caller, DID_FPBX_RINGALL, "completed", "103",
               legs=[("101", "no-answer"), ("102", "no-answer"), ("103", "answered")],
               recording=True, talk=span(talk), duration=span(wait + 2 + talk, 2, 4),
               notes={"queue": "fpbx-ringall"})
