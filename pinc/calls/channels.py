"""Who a channel is: the tracker's channel registry, each channel's call and role.

Every event's channel snapshot passes through ``touch``: the first time a Uniqueid is
seen it gets a ``Chan`` (its name read by ``names.parse_name``), joins the call of its
Linkedid, and may become the call's *origin*, which decides the direction. A channel
whose Linkedid changes (an attended transfer bridging two calls) merges the calls.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.names import clean, digits, parse_name
from pinc.calls.state import Chan, Live, Out, State

Fields = Mapping[str, str]

# Events that show a channel first: its Newchannel, and a resync's snapshot of it.
FIRST_SIGHTS = frozenset({"Newchannel", "CoreShowChannel"})


def touch(st: State, f: Fields, prefix: str, out: Out) -> Chan | None:
    """The channel an event's ``prefix`` snapshot describes, updated (or first seen)."""
    uid = f.get(prefix + "Uniqueid")
    if not uid:
        return None
    uid = clean(uid)
    if uid in ("none", "<unknown>") or uid in st.gone:
        return None  # a global VarSet; a failed OriginateResponse; a late event
    linkedid = clean(f.get(prefix + "Linkedid", "")) or uid
    chan = st.chans.get(uid)
    if chan is None:
        if st.event not in FIRST_SIGHTS:
            # its Newchannel never came (lost, or before pinc connected: then the
            # resync after the login shows it first): tracked anyway, and counted
            st.odd("unseen_channel", f"{st.event} {f.get(prefix + 'Channel', '')}")
        chan = _new_chan(st, f, prefix, uid, linkedid, out)
    elif chan.linkedid != linkedid:
        _relink(st, chan, linkedid, out)
    ctx = f.get(prefix + "Context")
    if ctx is not None:
        chan.context = clean(ctx)
    exten = f.get(prefix + "Exten")
    if exten is not None:
        chan.exten = clean(exten)
    cid = f.get(prefix + "CallerIDNum")
    if cid and cid != chan.cid_raw:  # it rarely changes: read it only when it does
        chan.cid_raw = cid
        num = digits(cid)
        if num:
            chan.cid = num
    live = chan.call
    if live is not None:
        live.last_at = st.t
        if live.kind == "inbound" and not live.announced and chan.role == "customer" and chan.cid:
            live.call.from_number = chan.cid
    return chan


def _new_chan(st: State, f: Fields, prefix: str, uid: str, linkedid: str, out: Out) -> Chan:
    name = clean(f.get(prefix + "Channel", ""))
    parsed = parse_name(name)
    if not parsed.tech:
        st.odd("odd_channel", name or f"{st.event} without {prefix}Channel")
    context0 = clean(f.get(prefix + "Context", ""))
    exten0 = clean(f.get(prefix + "Exten", ""))
    chan = Chan(
        uid=uid,
        name=name,
        parsed=parsed,
        linkedid=linkedid,
        ext=st.office.phone_ext(parsed),
        context0=context0,
        exten0=exten0,
        context=context0,
        exten=exten0,
    )
    st.chans[uid] = chan
    st.by_name[name] = chan
    if parsed.half:
        other = st.pairs.pop(parsed.pair, None)
        if other is not None and other.peer is None:
            chan.peer, other.peer = other, chan
        else:
            st.pairs[parsed.pair] = chan
    live = st.calls.get(linkedid)
    if live is None:
        live = st.new_call(linkedid)
    st.attach(live, chan)
    if live.origin is None and (uid == linkedid or not live.chans or len(live.chans) == 1):
        _set_origin(st, live, chan, out)
    elif chan.peer is not None and chan.peer is live.origin and live.kind == "inbound":
        chan.role = "customer"
    return chan


def _set_origin(st: State, live: Live, chan: Chan, out: Out) -> None:
    live.origin = chan
    note = st.originates.pop(chan.uid, None)
    if note is not None:
        chan.role = "employee"
        call = live.call
        call.record_id = note.get("record_id")
        call.origin = note.get("origin")
        ext = note.get("ext") or ""
        number = note.get("number") or ""
        kind = "internal" if st.office.is_ext(number) else "outbound"
        st.classify(live, kind, ext, number, out)
        return
    trunk = st.office.trunk_contexts
    if chan.context0 in trunk or chan.parsed.context in trunk:
        chan.role = "customer"
        if chan.peer is not None:
            chan.peer.role = "customer"
        live.kind = "inbound"
        call = live.call
        call.direction = "inbound"
        did = digits(chan.exten0) or digits(chan.parsed.exten)
        call.to_number = did
        call.from_number = chan.cid
    elif chan.ext is not None or st.office.is_ext(chan.cid):
        chan.role = "employee"


def _relink(st: State, chan: Chan, linkedid: str, out: Out) -> None:
    """A channel took another Linkedid (attended transfer): merge the two calls."""
    chan.linkedid = linkedid
    old = chan.call
    new = st.calls.get(linkedid)
    if new is None:
        if old is not None:
            st.calls[linkedid] = old
            old.call.linkedids.append(linkedid)
        return
    if old is None or old is new:
        return
    st.merge_older(new, old, out)  # the older Linkedid wins


def classify_by_dial(st: State, live: Live, caller: Chan, f: Fields, out: Out) -> None:
    """An unclassified call's first Dial from an employee's side decides its direction:
    to an extension internal, to a number outbound."""
    if live.kind is not None:
        return
    if caller.context in st.office.trunk_contexts:
        return
    number = digits(caller.exten) if caller.exten.isdigit() else ""
    if not number:
        target = clean(f.get("DialString", "")).split("@", 1)[0].rsplit("/", 1)[-1]
        number = digits(target) if target.isdigit() else ""
    if not number:
        return
    ext = st.employee_ext(caller) or st.employee_ext(live.origin)
    if not ext or ext == number:  # a Local channel ringing the phone behind it: not yet
        return
    caller.role = "employee"
    if caller.peer is not None:
        caller.peer.role = "employee"
    kind = "internal" if st.office.is_ext(number) else "outbound"
    st.classify(live, kind, ext, number, out)


# ---- events about channels ------------------------------------------------------------


def on_touch_only(st: State, f: Fields, out: Out) -> None:
    touch(st, f, "", out)


def on_hold(st: State, f: Fields, out: Out) -> None:
    """Hold / Unhold: a party of an answered call put it on hold or took it back (the
    CRM card shows it); the journal's ended calls never say held."""
    chan = touch(st, f, "", out)
    if chan is None or chan.call is None:
        return
    live = chan.call
    held = st.event == "Hold"
    if live.call.held == held or live.closed or live.call.status != "answered":
        return
    live.call.held = held
    if live.announced:
        st.emit(live, "call.held", out, {"held": held})


def on_significant(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    if chan is not None and chan.call is not None:
        st.announce(chan.call, out)


def on_newexten(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    if chan is None:
        return
    chan.app = clean(f.get("Application", ""))
    chan.app_data = clean(f.get("AppData", ""))
    if chan.app == "MixMonitor" and chan.call is not None:
        st.set_recording(chan.call, chan.app_data, out)
    elif chan.app == "VoiceMail" and chan.call is not None:
        chan.call.call.voicemail = True  # a message left (or the greeting heard): no person


def on_varset(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    if chan is not None and chan.call is not None:
        if f.get("Variable") == "MIXMONITOR_FILENAME":
            st.set_recording(chan.call, f.get("Value", ""), out)


def on_local_bridge(st: State, f: Fields, out: Out) -> None:
    one = touch(st, f, "LocalOne", out)
    two = touch(st, f, "LocalTwo", out)
    if one is not None and two is not None and one.peer is None:
        one.peer, two.peer = two, one
        st.pairs.pop(one.parsed.pair, None)


def on_originate_response(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    if chan is None or chan.call is None:
        return
    live = chan.call
    if live.kind is not None or chan is not live.origin:
        return
    if clean(f.get("Context", "")) in st.office.trunk_contexts:
        return
    number = digits(clean(f.get("Exten", "")))
    ext = st.employee_ext(chan)
    if number and ext and number != ext:
        chan.role = "employee"
        st.classify(live, "internal" if st.office.is_ext(number) else "outbound", ext, number, out)


def on_bridge_enter(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    bridge = clean(f.get("BridgeUniqueid", ""))
    if chan is None or not bridge:
        return
    leave_bridge(st, chan)
    swapped = st.chans.get(clean(f.get("SwapUniqueid", "")))
    if swapped is not None:  # Local optimisation: this channel takes the other's place
        leave_bridge(st, swapped)
    chan.bridge = bridge
    st.bridges.setdefault(bridge, []).append(chan)


def on_bridge_leave(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    if chan is not None:
        leave_bridge(st, chan)


def on_bridge_destroy(st: State, f: Fields, out: Out) -> None:
    for chan in st.bridges.pop(clean(f.get("BridgeUniqueid", "")), ()):
        chan.bridge = ""


def leave_bridge(st: State, chan: Chan) -> None:
    if not chan.bridge:
        return
    members = st.bridges.get(chan.bridge)
    if members is not None:
        if chan in members:
            members.remove(chan)
        if not members:
            del st.bridges[chan.bridge]
    chan.bridge = ""
