"""The demo's fake vtiger: keeps records the way PBXManager would, over real HTTP."""

from __future__ import annotations

import httpx
import trio

from pinc.sim.fakevtiger import CALLBACK_PATH, CrmSink

SECRET = "demo-secret"


def test_inbound_sequence_builds_a_completed_record() -> None:
    sink = CrmSink(SECRET)
    base = {"vtigersignature": SECRET, "callUUID": "c1"}
    kind, body = sink.handle_callback(
        {
            **base,
            "callstatus": "StartApp",
            "callerIdNumber": "79161234567",
            "channel": "PJSIP/trunk-0001",
            "StartTime": "2026-11-24 00:41:44",
        }
    )
    assert kind.startswith("text/xml") and "<Number>SIP/101</Number>" in body
    sink.handle_callback(
        {**base, "callstatus": "DialAnswer", "callerid1": "79161234567", "callerid2": "101"}
    )
    sink.handle_callback({**base, "callstatus": "Hangup", "causetxt": "Normal Clearing"})
    sink.handle_callback(
        {
            **base,
            "callstatus": "EndCall",
            "starttime": "2026-11-24 00:41:44",
            "endtime": "2026-11-24 00:41:49",
            "duration": "5",
            "billableseconds": "3",
        }
    )
    sink.handle_callback({**base, "callstatus": "Record", "recordinglink": "http://x/rec?id=1"})
    (record,) = sink.snapshot()["records"]
    assert record["direction"] == "inbound"
    assert record["customer"] == "Contact: Anna Customer"
    assert record["user"] == "manager1 (101)"
    assert record["callstatus"] == "completed"
    assert (record["totalduration"], record["billduration"]) == ("5", "3")
    assert record["recordingurl"] == "http://x/rec?id=1"
    assert "vtigersignature" not in str(sink.snapshot()["callbacks"])


def test_outbound_missed_busy_and_bad_input() -> None:
    sink = CrmSink(SECRET)
    sink.handle_callback(
        {
            "vtigersignature": SECRET,
            "callUUID": "o1",
            "callstatus": "StartApp",
            "callerIdNumber": "101",
            "callerIdName": "79169999999",
            "channel": "SIP/101-0002",
        }
    )
    sink.handle_callback(
        {
            "vtigersignature": SECRET,
            "callUUID": "o1",
            "callstatus": "Hangup",
            "causetxt": "User busy",
        }
    )
    (record,) = sink.snapshot()["records"]
    assert (record["direction"], record["customernumber"], record["callstatus"]) == (
        "outbound",
        "79169999999",
        "busy",
    )
    # an update before StartApp is dropped, as vtiger drops it, and counted
    sink.handle_callback(
        {
            "vtigersignature": SECRET,
            "callUUID": "zz",
            "callstatus": "Hangup",
            "causetxt": "Normal Clearing",
        }
    )
    assert sink.unmatched == 1
    _kind, body = sink.handle_callback({"vtigersignature": "wrong", "callstatus": "StartApp"})
    assert "Failure" in body and sink.rejected == 1


async def test_served_over_http() -> None:
    sink = CrmSink(SECRET)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sink.run)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                reply = await client.post(
                    # vtiger's webappurl with a trailing slash gives //modules/...
                    f"http://127.0.0.1:{port}/" + CALLBACK_PATH,
                    data={
                        "vtigersignature": SECRET,
                        "callstatus": "StartApp",
                        "callUUID": "h1",
                        "callerIdNumber": "79035550102",
                        "channel": "PJSIP/trunk-1",
                    },
                )
                assert reply.status_code == 200 and "<Dial>" in reply.text
                page = await client.get("/")
                assert "vtiger PBXManager" in page.text
                data = (await client.get("/records.json")).json()
                assert data["records"][0]["customer"] == "Lead: Boris Prospect"
                assert (await client.get("/nope")).status_code == 404
                big = await client.post(CALLBACK_PATH, content=b"x" * 100_000)
                assert big.status_code == 413
            nursery.cancel_scope.cancel()
