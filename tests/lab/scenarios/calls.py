"""#13 items 9-12: a conference an outside number joins, outbound failover and early media,
caller ids and numbers in every form, internal calls on PJSIP and through Local channels."""

from __future__ import annotations

import trio

from tests.lab.scenario import Ctx, scenario
from tests.lab.scenarios.common import CONFERENCE, DID_CONFERENCE, DID_MAIN, direct, settle
from tests.lab.sipp import Answer, Bye, Pause, Uac
from tests.lab.truth import span

# --- item 9: conference --------------------------------------------------------------------


@scenario("conference_outside", 9, "conference (ConfBridge)", caller="79031239876",
          host="101", guest="102", host_s=22, guest_s=14, caller_s=8)
@scenario("conference_outside_2", 9, "conference (ConfBridge)", caller="74956660011",
          host="102", guest="103", host_s=9, guest_s=10, caller_s=14)
async def conference(ctx: Ctx, caller: str, host: str, guest: str, host_s: int, guest_s: int,
                     caller_s: int) -> None:
    """Phone {host} dials 8000 (conference room) and stays {host_s} s; 2 s later phone
    {guest} dials 8000 and stays {guest_s} s; 2 s later the outside caller {caller} calls
    74951230009 (the room's company number), joins the three-party conference and hangs
    up after {caller_s} s."""
    a = await ctx.sipp.call(Uac(host, CONFERENCE, name=host, steps=[Pause(host_s * 1000),
                                                                    Bye()]), phone=host)
    await ctx.wait_event("ConfbridgeJoin", Channel=f"PJSIP/{host}-*")
    await trio.sleep(2)
    b = await ctx.sipp.call(Uac(guest, CONFERENCE, name=guest, steps=[Pause(guest_s * 1000),
                                                                      Bye()]), phone=guest)
    await ctx.wait_event("ConfbridgeJoin", Channel=f"PJSIP/{guest}-*")
    await trio.sleep(2)
    c = await ctx.sipp.call(Uac(caller, DID_CONFERENCE, name=caller,
                                steps=[Pause(caller_s * 1000), Bye()]))
    for uac in (a, b, c):
        await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("three ConfbridgeJoin", ctx.count("ConfbridgeJoin", Conference="8000") == 3)
    recorded = [k for k, v in ctx.new_recordings().items() if v > 44]
    ctx.check("the caller's recording has audio", len(recorded) == 1, recorded)
    notes = {"conference": CONFERENCE}
    ctx.expect("internal", host, CONFERENCE, "completed", host, talk=span(host_s),
               duration=span(host_s), notes=notes)
    ctx.expect("internal", guest, CONFERENCE, "completed", guest, talk=span(guest_s),
               duration=span(guest_s), notes=notes)
    ctx.expect("inbound", caller, DID_CONFERENCE, "completed", host, recording=True,
               talk=span(caller_s), duration=span(caller_s), notes=notes)


# --- item 10: outbound failover, early media ---------------------------------------------------


@scenario("outbound_failover", 10, "outbound trunk failover", phone="101",
          number="79161110022", talk=5)
async def outbound_failover(ctx: Ctx, phone: str, number: str, talk: int) -> None:
    """Phone {phone} dials {number}. Carrier A (endpoint trunk) answers 503 Service
    Unavailable (congestion); the outbound route tries carrier B (trunk2), which answers
    after 2 s and hangs up after {talk} s of talk."""
    await ctx.sipp.carrier(Answer("congestion"))
    await ctx.sipp.carrier(Answer(ring_ms=2000, steps=[Pause(talk * 1000), Bye()]), which="B")
    uac = await ctx.sipp.call(Uac(phone, number, name=phone, steps=[Pause(60000)]),
                              phone=phone)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("trunk CONGESTION then trunk2 ANSWER", [
        (e.get("DestChannel").split("-")[0], e.get("DialStatus")) for e in ctx.events
        if e.event == "DialEnd"] == [("PJSIP/trunk", "CONGESTION"), ("PJSIP/trunk2", "ANSWER")])
    ctx.expect("outbound", phone, number, "completed", phone, recording=True, talk=span(talk),
               duration=span(2 + talk), notes={"failover": "trunk"})


@scenario("outbound_failover_c2c", 10, "outbound trunk failover", phone="103",
          number="89161110033", talk=4)
async def outbound_failover_c2c(ctx: Ctx, phone: str, number: str, talk: int) -> None:
    """Click-to-call: AMI Originate PJSIP/{phone} -> {number}@from-internal; phone {phone}
    answers after 2 s; carrier A answers 503; carrier B answers after 3 s and hangs up after
    {talk} s of talk."""
    await ctx.sipp.phone(phone, Answer(ring_ms=2000))
    await ctx.sipp.carrier(Answer("congestion"))
    await ctx.sipp.carrier(Answer(ring_ms=3000, steps=[Pause(talk * 1000), Bye()]), which="B")
    r = await ctx.originate(f"PJSIP/{phone}", "from-internal", number,
                            callerid=f'"CRM {number}" <{phone}>')
    ctx.check("OriginateResponse Success", r.get("Response") == "Success", r.get("Reason"))
    await settle(ctx)
    ctx.check("trunk2 ANSWER", ctx.count("DialEnd", DialStatus="ANSWER",
                                         DestChannel="PJSIP/trunk2-*") == 1)
    ctx.expect("outbound", phone, number, "completed", phone, legs=[(phone, "answered")],
               recording=True, talk=span(talk, 1.5, 4), duration=span(2 + 3 + talk),
               notes={"failover": "trunk"})


@scenario("outbound_early_busy", 10, "outbound early media, then busy", phone="102",
          number="79169990033")
async def outbound_early_busy(ctx: Ctx, phone: str, number: str) -> None:
    """Phone {phone} dials {number}; carrier A answers 183 Session Progress with audio (an
    announcement) for 3 s, then 486 Busy Here; the PBX signals busy to the phone."""
    await ctx.sipp.carrier(Answer("early_busy", ring_ms=3000))
    uac = await ctx.sipp.call(Uac(phone, number, name=phone, steps=[Pause(60000)]),
                              phone=phone)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("DialState PROGRESS, DialEnd BUSY",
              ctx.count("DialState", DialStatus="PROGRESS") >= 1
              and ctx.count("DialEnd", DialStatus="BUSY") == 1)
    ctx.expect("outbound", phone, number, "busy", None, duration=span(3),
               notes={"early_media": True})


# --- item 11: caller ids and number forms ----------------------------------------------------

CID = "caller id and number forms"


@scenario("callerid_anonymous", 11, CID, frm="anonymous", shown="", ext="101",
          host="anonymous.invalid", display="Anonymous",
          desc="From: \"Anonymous\" <sip:anonymous@anonymous.invalid>, Privacy: id")
@scenario("callerid_plus7", 11, CID, frm="+79035550055", shown="79035550055", ext="102",
          host="", display="", desc="From: <sip:+79035550055@...> (no display name)")
@scenario("callerid_8", 11, CID, frm="89035550066", shown="89035550066", ext="103", host="",
          display="89035550066", desc="From: \"89035550066\" <sip:89035550066@...>")
@scenario("callerid_10digit", 11, CID, frm="9035550077", shown="9035550077", ext="101",
          host="", display="", desc="From: <sip:9035550077@...> (10 digits)")
@scenario("callerid_international", 11, CID, frm="+442071234567", shown="442071234567",
          ext="102", host="", display="", desc="From: <sip:+442071234567@...> (London)")
@scenario("callerid_utf8_name", 11, CID, frm="79035550088", shown="79035550088", ext="103",
          host="", display="Анна Иванова",
          desc="From: \"Анна Иванова\" <sip:79035550088@...> (a UTF-8 name)")
async def callerid(ctx: Ctx, frm: str, shown: str, ext: str, host: str, display: str,
                   desc: str) -> None:
    """The carrier sends a call with {desc} to the direct number of {ext}; {ext} answers
    after 2 s; the caller talks 4 s and hangs up."""
    await ctx.sipp.phone(ext, Answer(ring_ms=2000))
    headers = [("Privacy", "id")] if host else []
    uac = await ctx.sipp.call(Uac(frm, direct(ext), name=display, from_host=host, headers=headers,
                                  steps=[Pause(4000), Bye()]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check(f"CallerIDNum {frm}", ctx.count("Newchannel", Channel="PJSIP/trunk-*",
                                              CallerIDNum=frm) == 1)
    notes: dict[str, object] = {}
    if host:
        notes["withheld"] = True
    if display and display != frm:
        notes["caller_name"] = display
    ctx.expect("inbound", shown, direct(ext), "completed", ext, legs=[(ext, "answered")],
               recording=True, talk=span(4), duration=span(6), notes=notes)


@scenario("callerid_withheld", 11, CID, number="79035550044")
async def callerid_withheld(ctx: Ctx, number: str) -> None:
    """The carrier sends an anonymous From with the real number in P-Asserted-Identity
    (+{number}) and Privacy: id, to the main number (queue sales: 101 and 102 ring); nobody
    answers and the caller gives up after 5 s."""
    await ctx.sipp.phone("101", Answer("noanswer"))
    await ctx.sipp.phone("102", Answer("noanswer"))
    uac = await ctx.sipp.call(Uac("anonymous", DID_MAIN, name="Anonymous",
                                  from_host="anonymous.invalid", abandon_ms=5000,
                                  headers=[("P-Asserted-Identity", f"<sip:+{number}@127.0.0.1>"),
                                           ("Privacy", "id")]))
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check(f"CallerIDNum +{number}", ctx.count("Newchannel", Channel="PJSIP/trunk-*",
                                                  CallerIDNum=f"+{number}") == 1)
    ctx.expect("inbound", number, DID_MAIN, "missed", None,
               legs=[("101", "cancelled"), ("102", "cancelled")], duration=span(5),
               notes={"withheld": True})


@scenario("outbound_8prefix", 11, CID, phone="101", number="89161234567")
@scenario("outbound_international", 11, CID, phone="102", number="0044207123456")
async def outbound_forms(ctx: Ctx, phone: str, number: str) -> None:
    """Phone {phone} dials {number} itself; carrier A answers after 2 s; the phone hangs up
    after 5 s of talk."""
    await ctx.sipp.carrier(Answer(ring_ms=2000))
    uac = await ctx.sipp.call(Uac(phone, number, name=phone, steps=[Pause(5000), Bye()]),
                              phone=phone)
    await ctx.wait_uac(uac)
    await settle(ctx)
    ctx.check("DialEnd ANSWER trunk", ctx.count("DialEnd", DialStatus="ANSWER",
                                                DestChannel="PJSIP/trunk-*") == 1)
    ctx.expect("outbound", phone, number, "completed", phone, recording=True, talk=span(5),
               duration=span(7))


# --- item 12: internal calls -------------------------------------------------------------------

INTERNAL = "internal call"


@scenario("internal_pjsip", 12, INTERNAL, caller="101", callee="102", mode="answer")
@scenario("internal_pjsip_noanswer", 12, INTERNAL, caller="102", callee="103",
          mode="noanswer")
@scenario("internal_pjsip_busy", 12, INTERNAL, caller="103", callee="101", mode="busy")
@scenario("internal_local", 12, INTERNAL, caller="104", callee="102", mode="answer")
@scenario("internal_local_noanswer", 12, INTERNAL, caller="104", callee="103",
          mode="noanswer")
async def internal(ctx: Ctx, caller: str, callee: str, mode: str) -> None:
    """Phone {caller} dials {callee} itself ({callee} is {mode}; phone 104 reaches its
    colleagues through Local/{callee}@from-internal/n). Answered: after 2 s, {caller} hangs
    up after 5 s of talk; not answered: {caller} gives up after 6 s."""
    await ctx.sipp.phone(callee, Answer(mode, ring_ms=2000))
    call = Uac(caller, callee, name=caller, steps=[Pause(5000), Bye()])
    if mode == "noanswer":
        call.abandon_ms = 6000
    uac = await ctx.sipp.call(call, phone=caller)
    await ctx.wait_uac(uac)
    await settle(ctx)
    if caller == "104":
        ctx.check(f"through Local/{callee}@from-internal", ctx.count(
            "DialBegin", DestChannel=f"Local/{callee}@from-internal-*") == 1)
    status = {"answer": "completed", "noanswer": "no-answer", "busy": "busy"}[mode]
    result = {"answer": "answered", "noanswer": "cancelled", "busy": "busy"}[mode]
    answered = mode == "answer"
    ctx.expect("internal", caller, callee, status, callee if answered else None,
               legs=[(callee, result)], talk=span(5) if answered else (0, 0),
               duration=span(7) if answered else span(6) if mode == "noanswer"
               else span(1.5, 1.5, 3))


@scenario("internal_local_originate", 12, INTERNAL, caller="101", callee="102")
async def internal_local_originate(ctx: Ctx, caller: str, callee: str) -> None:
    """Click-to-call between employees, FreePBX style: AMI Originate
    Local/{caller}@from-internal -> {callee}@from-internal. Phone {caller} rings and answers
    after 2 s, then {callee} rings and answers after 2 s and hangs up after 4 s of talk."""
    await ctx.sipp.phone(caller, Answer(ring_ms=2000))
    await ctx.sipp.phone(callee, Answer(ring_ms=2000, steps=[Pause(4000), Bye()]))
    r = await ctx.originate(f"Local/{caller}@from-internal", "from-internal", callee,
                            callerid=f'"CRM" <{caller}>')
    ctx.check("OriginateResponse Success", r.get("Response") == "Success", r.get("Reason"))
    await settle(ctx)
    ctx.check(f"DialEnd ANSWER PJSIP/{callee}", ctx.count(
        "DialEnd", DialStatus="ANSWER", DestChannel=f"PJSIP/{callee}-*") == 1)
    ctx.expect("internal", caller, callee, "completed", callee,
               legs=[(caller, "answered"), (callee, "answered")], talk=span(4, 1.5, 4),
               duration=span(8))
