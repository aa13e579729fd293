"""#13 items 5-8: call parking, voicemail after no answer, the IVR, hold and call waiting."""

from __future__ import annotations

import trio

from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios.common import DID_IVR, direct, settle
from tests.lab.scenarios.transfers import answered_then, press
from tests.lab.sipp import Answer, Bye, Hold, Pause, Resume, Uac
from tests.lab.truth import span

# --- item 5: parking ---------------------------------------------------------------------


@scenario("park_retrieve", 5, "call parking", caller="79035550022", retriever="102",
          parked_s=4.0)
@scenario("park_retrieve_2", 5, "call parking", caller="74957778811", retriever="103",
          parked_s=7.0)
async def park_retrieve(ctx: Ctx, caller: str, retriever: str, parked_s: float) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 1 s; 3 s later 101 presses ## then
    700 (the parking lot): the caller is parked in slot 701 and 101 is hung up; {parked_s} s
    later phone {retriever} dials 701 and takes the call; the caller talks with it and hangs
    up 6 s later."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller,
                                  steps=[Pause(int((9 + parked_s) * 1000)), Bye()]))
    await answered_then(ctx, 3)
    await press(ctx, p101, "##", "700")
    parked = await ctx.wait_event("ParkedCall", timeout=10)
    await trio.sleep(parked_s)
    taker = await ctx.sipp.call(Uac(retriever, "701", name=retriever, steps=[Pause(60000)]),
                                phone=retriever)
    await ctx.wait_uac(uac)
    await ctx.wait_uac(taker)
    await settle(ctx)
    ctx.check("parked in 701", parked.get("ParkingSpace") == "701", parked.get("ParkingSpace"))
    ctx.check(f"UnParkedCall by PJSIP/{retriever}", ctx.count(
        "UnParkedCall", RetrieverChannel=f"PJSIP/{retriever}-*") == 1)
    ctx.expect("inbound", caller, direct("101"), "completed", retriever,
               legs=[("101", "answered")], transfers=[("blind", "101", retriever)],
               recording=True, talk=span(9 + parked_s, 9, 3), duration=span(10 + parked_s, 9, 3),
               notes={"parked": True, "parked_by": "101", "retrieved_by": retriever})


# --- item 6: voicemail ---------------------------------------------------------------------


@scenario("voicemail_noanswer", 6, "voicemail after no answer", caller="79039998877",
          ext="101", mode="noanswer", ring=6)
@scenario("voicemail_busy", 6, "voicemail after no answer", caller="79261112200",
          ext="102", mode="busy", ring=0)
async def voicemail(ctx: Ctx, caller: str, ext: str, mode: str, ring: int) -> None:
    """Caller {caller} -> the direct number of {ext} with X-Lab-Voicemail: 1 and
    X-Lab-Dial-Timeout: 6; phone {ext} is {mode} (it rings {ring} s); the PBX answers with
    VoiceMail({ext}): the caller hears the greeting and the beep, speaks, and hangs up 14 s
    after the PBX answered."""
    await ctx.sipp.phone(ext, Answer(mode))
    uac = await ctx.sipp.call(Uac(caller, direct(ext), name=caller,
                                  headers=[("X-Lab-Voicemail", "1"), ("X-Lab-Dial-Timeout", "6")],
                                  steps=[Pause(14000), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("VoiceMail ran", ctx.count("Newexten", Application="VoiceMail") == 1)
    ctx.check("no DialEnd ANSWER", ctx.count("DialEnd", DialStatus="ANSWER") == 0)
    result = "busy" if mode == "busy" else "no-answer"
    ctx.expect("inbound", caller, direct(ext), "missed", None, legs=[(ext, result)],
               duration=span(ring + 14), notes={"voicemail": True})


# --- item 7: IVR ---------------------------------------------------------------------------


@scenario("ivr_queue", 7, "IVR", caller="79031110099", digit="1", phone="101", talk=5.0)
@scenario("ivr_direct", 7, "IVR", caller="79857770011", digit="2", phone="102", talk=4.0)
async def ivr_choice(ctx: Ctx, caller: str, digit: str, phone: str, talk: float) -> None:
    """Caller {caller} -> 74951230008 (IVR: 1 = queue sales, 2 = phone 102). The IVR answers
    and plays its menu; 2 s into it the caller presses {digit}; phone {phone} answers after
    2 s (in the queue, 102 rings too and is cancelled); the caller talks about {talk} s and
    hangs up."""
    if digit == "1":
        await ctx.sipp.phone("101", Answer(ring_ms=2000))
        await ctx.sipp.phone("102", Answer("noanswer"))
        legs = [("101", "answered"), ("102", "cancelled")]
    else:
        await ctx.sipp.phone("102", Answer(ring_ms=2000))
        legs = [("102", "answered")]
    uac = await ctx.sipp.call(Uac(caller, DID_IVR, name=caller,
                                  steps=[Pause(int((5 + talk) * 1000)), Bye()]))
    await ctx.wait_event("Newexten", Application="BackGround")
    await trio.sleep(2)
    await ctx.sipp.dtmf(uac, digit)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check(f"IVR choice {digit} taken", ctx.count("Newexten", Context="ivr-main",
                                                    Exten=digit) >= 1)
    ctx.check(f"DialEnd ANSWER PJSIP/{phone}", ctx.count(
        "DialEnd", DialStatus="ANSWER", DestChannel=f"PJSIP/{phone}-*") == 1)
    ctx.expect("inbound", caller, DID_IVR, "completed", phone, legs=legs, recording=True,
               talk=span(talk, 2, 3), duration=span(5 + talk, 2, 3), notes={"ivr": digit})


@scenario("ivr_hangup", 7, "IVR", caller="79162220033", hangup_s=5.0)
async def ivr_hangup(ctx: Ctx, caller: str, hangup_s: float) -> None:
    """Caller {caller} -> 74951230008; the IVR answers and plays its menu; the caller presses
    nothing and hangs up {hangup_s} s after the IVR answered."""
    uac = await ctx.sipp.call(Uac(caller, DID_IVR, name=caller,
                                  steps=[Pause(int(hangup_s * 1000)), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("no DialBegin", ctx.count("DialBegin") == 0)
    ctx.expect("inbound", caller, DID_IVR, "missed", None, duration=span(hangup_s),
               notes={"ivr": ""})


@scenario("ivr_timeout", 7, "IVR", caller="74993334455")
async def ivr_timeout(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230008; the IVR answers and plays its menu; the caller presses
    nothing; WaitExten gives up after 8 s and the PBX hangs up (about 13 s)."""
    uac = await ctx.sipp.call(Uac(caller, DID_IVR, name=caller, steps=[Pause(60000), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("IVR timeout (t)", ctx.count("Newexten", Context="ivr-main", Exten="t") >= 1)
    ctx.expect("inbound", caller, DID_IVR, "missed", None, duration=(8, 20),
               notes={"ivr": ""})


# --- item 8: hold, call waiting -------------------------------------------------------------


@scenario("hold_resume", 8, "hold and resume", caller="79037770022", by="phone")
@scenario("hold_resume_caller", 8, "hold and resume", caller="78005553535", by="caller")
async def hold_resume(ctx: Ctx, caller: str, by: str) -> None:
    """Caller {caller} -> 74951230101; 101 answers after 2 s; 3 s later the {by} puts the
    call on hold (re-INVITE a=sendonly; the other side hears music), 4 s later resumes it
    (a=sendrecv); the caller hangs up 12 s after the answer."""
    holds = [Pause(3000), Hold(), Pause(4000), Resume()]
    await ctx.sipp.phone("101", Answer(ring_ms=2000, steps=holds if by == "phone" else ()))
    steps = [*holds, Pause(5000), Bye()] if by == "caller" else [Pause(12000), Bye()]
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller, steps=steps))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("Hold and Unhold", ctx.count("Hold") == 1 and ctx.count("Unhold") == 1)
    ctx.expect("inbound", caller, direct("101"), "completed", "101", legs=[("101", "answered")],
               recording=True, talk=span(12), duration=span(14), notes={"hold": 1})


@scenario("call_waiting_missed", 8, "call waiting", first="79031231231", second="79264564564")
async def call_waiting_missed(ctx: Ctx, first: str, second: str) -> None:
    """Caller {first} -> 74951230101; 101 answers after 1 s and talks; 4 s later caller
    {second} calls the same number: phone 101 rings for it (a second call while talking)
    and does not take it; {second} gives up after 6 s; {first} hangs up 16 s after 101
    answered."""
    await ctx.sipp.phone("101", Answer("noanswer", match=second), Answer(ring_ms=1000))
    a = await ctx.sipp.call(Uac(first, direct("101"), name=first, steps=[Pause(16000), Bye()]))
    await answered_then(ctx, 4)
    b = await ctx.sipp.call(Uac(second, direct("101"), name=second, abandon_ms=6000), line=1)
    await ctx.wait_uac(b)
    await ctx.wait_uac(a)
    await settle(ctx)
    ctx.check("two DialBegin to PJSIP/101", ctx.count("DialBegin", DestChannel="PJSIP/101-*")
              == 2)
    ctx.expect("inbound", first, direct("101"), "completed", "101", legs=[("101", "answered")],
               recording=True, talk=span(16), duration=span(17))
    ctx.expect("inbound", second, direct("101"), "missed", None, legs=[("101", "cancelled")],
               duration=span(6), notes={"call_waiting": True})


@scenario("call_waiting_answered", 8, "call waiting", first="74955550101",
          second="79169998877")
async def call_waiting_answered(ctx: Ctx, first: str, second: str) -> None:
    """Caller {first} -> 74951230101; 101 answers after 1 s; 4 s later caller {second} calls
    the same number and phone 101 rings for it; 101 puts {first} on hold (5 s after its
    answer), answers {second} after 2 s of ringing, talks 4 s until {second} hangs up, and
    resumes {first} (12 s after its answer); {first} hangs up 16 s after the answer."""
    await ctx.sipp.phone("101", Answer(ring_ms=2000, match=second),
                         Answer(ring_ms=1000, steps=[Pause(5000), Hold(), Pause(7000),
                                                     Resume()]))
    a = await ctx.sipp.call(Uac(first, direct("101"), name=first, steps=[Pause(16000), Bye()]))
    await answered_then(ctx, 4)
    b = await ctx.sipp.call(Uac(second, direct("101"), name=second,
                                steps=[Pause(4000), Bye()]), line=1)
    await ctx.wait_uac(b)
    await ctx.wait_uac(a)
    await settle(ctx)
    ctx.check("two DialEnd ANSWER PJSIP/101", ctx.count(
        "DialEnd", DialStatus="ANSWER", DestChannel="PJSIP/101-*") == 2)
    ctx.check("Hold and Unhold", ctx.count("Hold") == 1 and ctx.count("Unhold") == 1)
    ctx.expect("inbound", first, direct("101"), "completed", "101", legs=[("101", "answered")],
               recording=True, talk=span(16), duration=span(17), notes={"hold": 1})
    ctx.expect("inbound", second, direct("101"), "completed", "101",
               legs=[("101", "answered")], recording=True, talk=span(4), duration=span(6),
               notes={"call_waiting": True})
