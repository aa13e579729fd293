"""#13 items 13-15: a PBX clock that is not UTC (and AMI without Timestamp headers), the
AttendedTransfer race that drops TransferTarget*, FreePBX's recording layout."""

from __future__ import annotations

import trio

from tests.lab.amirec import Msg
from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios import calls
from tests.lab.scenarios.calls import PJSIP_LOCAL
from tests.lab.scenarios.common import DID_FPBX_RINGALL, DID_MAIN, direct, settle
from tests.lab.scenarios.transfers import press
from tests.lab.sipp import Answer, Bye, Pause, Uac
from tests.lab.truth import span

# --- item 13: the PBX clock ----------------------------------------------------------------

MSK = "PBX clock Europe/Moscow"
NOTS = "AMI without Timestamp headers"


@scenario("msk_inbound", 13, MSK, office="labmsk", caller="79035551313", talk=5)
@scenario("msk_nots_inbound", 13, MSK + ", " + NOTS, office="labmsk_nots",
          caller="79035551314", talk=7)
@scenario("utc_nots_inbound", 13, NOTS, office="labnots", caller="79035551315", talk=6)
async def clock_inbound(ctx: Ctx, caller: str, talk: int) -> None:
    """Caller {caller} -> 74951230000 (queue sales: 101 and 102 ring); 101 answers after
    3 s, 102 is cancelled; the caller talks {talk} s and hangs up."""
    await ctx.sipp.phone("101", Answer(ring_ms=3000))
    await ctx.sipp.phone("102", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_MAIN, name=caller,
                                  steps=[Pause(talk * 1000), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("DialEnd ANSWER PJSIP/101", ctx.count("DialEnd", DialStatus="ANSWER",
                                                    DestChannel="PJSIP/101-*") == 1)
    ctx.expect("inbound", caller, DID_MAIN, "completed", "101",
               legs=[("101", "answered"), ("102", "cancelled")], recording=True,
               talk=span(talk), duration=span(3 + talk))


@scenario("msk_missed", 13, MSK, office="labmsk", caller="79035551316", give_up=8)
@scenario("msk_nots_missed", 13, MSK + ", " + NOTS, office="labmsk_nots",
          caller="79035551317", give_up=6)
async def clock_missed(ctx: Ctx, caller: str, give_up: int) -> None:
    """Caller {caller} -> 74951230000 (queue sales: 101 and 102 ring); nobody answers; the
    caller gives up after {give_up} s."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, DID_MAIN, name=caller, abandon_ms=give_up * 1000))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("QueueCallerAbandon", ctx.count("QueueCallerAbandon") == 1)
    ctx.expect("inbound", caller, DID_MAIN, "missed", None,
               legs=[("101", "cancelled"), ("102", "cancelled")], duration=span(give_up))


scenario("msk_outbound", 13, MSK, office="labmsk", phone="102",
         number="79161234567")(calls.outbound_forms)
scenario("msk_nots_outbound", 13, MSK + ", " + NOTS, office="labmsk_nots", phone="103",
         number="89161234567")(calls.outbound_forms)
scenario("utc_nots_outbound", 13, NOTS, office="labnots", phone="101",
         number="79161234567")(calls.outbound_forms)
scenario("msk_internal", 13, MSK, office="labmsk", caller="103", callee="101",
         mode="answer", plan="101 answers after 2 s; 103 hangs up after 5 s of talk")(
    calls.internal)


# --- item 14: AttendedTransfer without TransferTarget* ----------------------------------------

RACE = "AttendedTransfer without TransferTarget (Asterisk race)"
LOCAL_PHONES = ("107", "108")  # phones that are Local channels (local-phones)


@scenario("atxfer_race_missing", 14, RACE, tech=PJSIP_LOCAL, caller="79036661414", missing=True)
@scenario("atxfer_race_present", 14, RACE, tech=PJSIP_LOCAL, caller="79036661415", missing=False)
async def atxfer_race(ctx: Ctx, caller: str, missing: bool | None) -> None:
    """Caller {caller} -> 74951230107, the direct number of phone 107, which is a Local
    channel (Local/107@local-phones: answers after 1 s and plays a tone; its ;2 half runs
    dialplan, as the kit's Local office phones do). 3 s later the driver sends AMI Atxfer of
    Local/107@local-phones-...;1 to 108@from-internal (Local phone 108, reached through
    Local/108@from-internal); 108 answers after 1 s; 2 s later the driver hangs the ;1 half
    of 107 up (AMI Hangup), which completes the transfer; the caller talks with 108 and
    hangs up 16 s after 107 answered. Asterisk sometimes builds the AttendedTransfer event
    after the transferer's ;2 half is gone, without TransferTarget* headers. Headers missing
    in this recording: {missing} (the recorder repeats the call until it gets the form it
    wants)."""
    uac = await ctx.sipp.call(Uac(caller, "74951230107", name=caller,
                                  steps=[Pause(16000), Bye()]))
    at = await _atxfer_then_hang_up(ctx, "Local/107@local-phones-", "108")
    await ctx.wait_uac(uac)
    await settle(ctx)
    gone = not at.get("TransferTargetChannel")
    if missing is not None:  # None: either form will do (the live tests)
        ctx.check(f"TransferTarget* {'missing' if missing else 'present'} (the race)",
                  gone is missing, at.get("TransferTargetChannel"))
    ctx.expect("inbound", caller, "74951230107", "completed", "108",
               legs=[("107", "answered"), ("108", "answered")],
               transfers=[("attended", "107", "108")], recording=True,
               talk=span(16, 4, 3), duration=span(17, 4, 3),
               notes={"atxfer_target_missing": gone})


async def _atxfer_then_hang_up(ctx: Ctx, member: str, target: str) -> Msg:
    """AMI Atxfer of the answered channel ``member``...;1 to ``target``, then (2 s after the
    target answered) AMI Hangup of that channel: the AttendedTransfer event."""
    half = (await ctx.answered(member)).get("DestChannel")
    await trio.sleep(3)
    n = len(ctx.events)
    await ctx.action("Atxfer", [("Channel", half), ("Exten", target),
                                ("Context", "from-internal")])
    phone = f"Local/{target}@local-phones-" if target in LOCAL_PHONES else f"PJSIP/{target}-"
    await ctx.answered(phone, timeout=15, since=n)
    await trio.sleep(2)
    m = len(ctx.events)
    await ctx.action("Hangup", [("Channel", half)])
    at = await ctx.wait_event("AttendedTransfer", timeout=15, since=m)
    ctx.note(f"AttendedTransfer {'with' if at.get('TransferTargetChannel') else 'without'}"
             " TransferTarget*")
    ctx.check("AttendedTransfer Success", at.get("Result") == "Success")
    return at


@scenario("atxfer_queue_member", 14, RACE, tech=PJSIP_LOCAL, caller="79036661417")
async def atxfer_queue_member(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230001 (queue fpbx-ringall: Local/101@from-queue/n and
    Local/102@from-queue/n); 101 answers after 1 s, 102 is cancelled. 3 s later the driver
    sends AMI Atxfer of the member's Local/101@from-queue-...;1 half to 103@from-internal;
    103 answers after 2 s; 2 s later the driver hangs that ;1 half up (AMI Hangup), which
    completes the transfer; the caller talks with 103 and hangs up 16 s after 101
    answered."""
    await ctx.sipp.phone("101", Answer(ring_ms=1000))
    await ctx.sipp.phone("102", Answer("noanswer"))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_RINGALL, name=caller,
                                  steps=[Pause(16000), Bye()]))
    at = await _atxfer_then_hang_up(ctx, "Local/101@from-queue-", "103")
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.expect("inbound", caller, DID_FPBX_RINGALL, "completed", "103",
               legs=[("101", "answered"), ("102", "cancelled"), ("103", "answered")],
               transfers=[("attended", "101", "103")], recording=True,
               talk=span(16, 4, 3), duration=span(17, 4, 3),
               notes={"atxfer_target_missing": not at.get("TransferTargetChannel")})


@scenario("atxfer_dtmf_local", 14, RACE, tech=PJSIP_LOCAL, caller="79036661416")
async def atxfer_dtmf_local(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230001 (queue fpbx-ringall, Local members); 101 answers
    after 1 s (bridged through Local/101@from-queue-...); 3 s later phone 101 presses *2
    then 103; 103 answers after 2 s; phone 101 hangs up 11 s after it answered, which
    completes the transfer; the caller talks with 103 and hangs up 17 s after the answer."""
    p101 = await ctx.sipp.phone("101", Answer(ring_ms=1000, steps=[Pause(11000), Bye()]))
    await ctx.sipp.phone("102", Answer("noanswer"))
    await ctx.sipp.phone("103", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_RINGALL, name=caller,
                                  steps=[Pause(17000), Bye()]))
    await ctx.answered("PJSIP/101-")
    await trio.sleep(3)
    await press(ctx, p101, "*2", "103", held="Local/101@from-queue-*")
    n = len(ctx.events)
    at = await ctx.wait_event("AttendedTransfer", timeout=20, since=n)
    await ctx.wait_uac(uac)
    await settle(ctx)
    gone = not at.get("TransferTargetChannel")
    ctx.note(f"AttendedTransfer {'without' if gone else 'with'} TransferTarget*")
    ctx.check("AttendedTransfer Success", at.get("Result") == "Success")
    ctx.expect("inbound", caller, DID_FPBX_RINGALL, "completed", "103",
               legs=[("101", "answered"), ("102", "cancelled"), ("103", "answered")],
               transfers=[("attended", "101", "103")], recording=True,
               talk=span(17, 10, 3), duration=span(18, 10, 3),
               notes={"atxfer_target_missing": gone})


# --- item 15: FreePBX's recording layout -------------------------------------------------------

FPBX = "FreePBX recording layout (monitor/YYYY/MM/DD, basename in CDR)"
LAYOUT = ("X-Lab-Rec-Layout", "fpbx")


def _recording(ctx: Ctx) -> str:
    """The one recording with audio the scenario made (a path relative to the folder)."""
    found = [k for k, v in ctx.new_recordings().items() if v > 44]
    ctx.check("one recording with audio, in YYYY/MM/DD", len(found) == 1
              and found[0].count("/") == 3, found)
    return found[0] if found else ""


@scenario("fpbx_rec_inbound", 15, FPBX, caller="79037771515", ext="102")
async def fpbx_rec_inbound(ctx: Ctx, caller: str, ext: str) -> None:
    """Caller {caller} -> the direct number of {ext} with X-Lab-Rec-Layout: fpbx (MixMonitor
    into recordings/YYYY/MM/DD/external-<did>-<caller>-<time>-<uniqueid>.wav, only the
    basename in CDR(recordingfile), no userfield); {ext} answers after 2 s; the caller talks
    5 s and hangs up."""
    await ctx.sipp.phone(ext, Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, direct(ext), name=caller, headers=[LAYOUT],
                                  steps=[Pause(5000), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.expect("inbound", caller, direct(ext), "completed", ext, legs=[(ext, "answered")],
               recording=_recording(ctx), talk=span(5), duration=span(7))


@scenario("fpbx_rec_outbound", 15, FPBX, phone="103", number="79161234567")
async def fpbx_rec_outbound(ctx: Ctx, phone: str, number: str) -> None:
    """Phone {phone} dials {number} with X-Lab-Rec-Layout: fpbx in its INVITE (recording
    recordings/YYYY/MM/DD/out-<number>-<phone>-<time>-<uniqueid>.wav, basename in the CDR);
    carrier A answers after 2 s; the phone hangs up after 4 s of talk."""
    await ctx.sipp.carrier(Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(phone, number, name=phone, headers=[LAYOUT],
                                  steps=[Pause(4000), Bye()]), phone=phone)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.expect("outbound", phone, number, "completed", phone, recording=_recording(ctx),
               talk=span(4), duration=span(6))


@scenario("fpbx_rec_queue", 15, FPBX, tech=PJSIP_LOCAL, caller="74958881515")
async def fpbx_rec_queue(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230001 (queue fpbx-ringall, Local members) with
    X-Lab-Rec-Layout: fpbx; 102 answers after 2 s, 101 is cancelled; the caller talks 6 s
    and hangs up."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(caller, DID_FPBX_RINGALL, name=caller, headers=[LAYOUT],
                                  steps=[Pause(6000), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.expect("inbound", caller, DID_FPBX_RINGALL, "completed", "102",
               legs=[("101", "cancelled"), ("102", "answered")], recording=_recording(ctx),
               talk=span(6), duration=span(8))


@scenario("fpbx_rec_missed", 15, FPBX, caller="79169991515")
async def fpbx_rec_missed(ctx: Ctx, caller: str) -> None:
    """Caller {caller} -> 74951230101 with X-Lab-Rec-Layout: fpbx; 101 rings and does not
    answer; the caller gives up after 5 s (MixMonitor leaves an empty 44-byte file in
    YYYY/MM/DD: not a recording)."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac(caller, direct("101"), name=caller, headers=[LAYOUT],
                                  abandon_ms=5000))
    await ctx.wait_uac(uac)
    await settle(ctx)
    empty = [k for k, v in ctx.new_recordings().items() if v <= 44]
    ctx.check("an empty file in YYYY/MM/DD", len(empty) == 1 and empty[0].count("/") == 3,
              empty)
    ctx.expect("inbound", caller, direct("101"), "missed", None, legs=[("101", "cancelled")],
               duration=span(5))


scenario("msk_fpbx_rec_inbound", 15, FPBX + ", PBX clock Europe/Moscow", office="labmsk",
         caller="79037771516", ext="101")(fpbx_rec_inbound)
