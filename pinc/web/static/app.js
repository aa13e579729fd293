// pinc dashboard: live calls from /ws, recent calls from /api/calls. No build step.
"use strict";

const LIVE = new Map(); // call id -> call snapshot
const NAMES = new Map(); // customer number -> {name, type, id, url} from the CRM (via /ws)
let recent = []; // newest first
const RECENT_MAX = 30;
let ws = null;
let retry = 0;
let ext = localStorage.getItem("pinc.ext") || "";

const $ = (sel) => document.querySelector(sel);
const DIR_LABEL = { inbound: "Incoming", outbound: "Outgoing", internal: "Internal" };
const DIR_ICON = { inbound: "↙", outbound: "↗", internal: "↔" };
const STATUS_LABEL = {
  ringing: "Ringing", answered: "Talking", completed: "Completed", missed: "Missed",
  "no-answer": "No answer", busy: "Busy", failed: "Failed",
};

function parseTime(iso) { return iso ? Date.parse(iso) : NaN; }

function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  seconds = Math.floor(seconds);
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function when(iso) {
  const t = parseTime(iso);
  if (!Number.isFinite(t)) return "";
  const d = new Date(t), now = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (d.toDateString() === now.toDateString()) return time;
  return d.toLocaleDateString([], { day: "2-digit", month: "short" }) + " " + time;
}

const TYPE_LABEL = { Contacts: "Contact", Leads: "Lead", Accounts: "Organization" };

function customerNumber(call) {
  if (call.direction === "outbound") return call.to;
  if (call.direction === "inbound") return call.from;
  return "";
}

function known(call) {
  // The CRM record of the customer, when pinc knows it (a /ws message said so).
  return call.customer || NAMES.get(customerNumber(call)) || null;
}

function customer(call) {
  // The outside party: the caller of an inbound call, the dialled number of an outbound one.
  if (call.direction === "internal") return { main: `${call.from} → ${call.to}`, line: "internal call" };
  const number = customerNumber(call) || "unknown";
  const rec = known(call);
  const route = call.direction === "outbound" ? `from ${call.from}` : call.to ? `to ${call.to}` : "";
  if (rec && rec.name) {
    const type = TYPE_LABEL[rec.type] || rec.type || "";
    return { main: rec.name, line: [type, number, route].filter(Boolean).join(" · "), rec };
  }
  return { main: number, line: route };
}

function partyNode(party) {
  // The customer's name links to their record in the CRM, as the CRM's own card does.
  if (!party.rec || !/^https?:\/\//.test(party.rec.url || "")) return document.createTextNode(party.main);
  const a = el("a", "crm-link", party.main);
  a.href = party.rec.url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function involves(call) {
  if (!ext) return true;
  if ([call.from, call.to, call.answered_by].includes(ext)) return true;
  return (call.legs || []).some((l) => l.ext === ext) ||
    (call.transfers || []).some((t) => t.from === ext || t.to === ext);
}

// ---- live cards -------------------------------------------------------------------------

function renderCard(call, card) {
  const talking = call.status === "answered";
  card.className = "card " + (talking ? "talking" : "ringing");
  card.dataset.id = call.id;
  card.dataset.status = call.status;
  card.querySelector(".dir").textContent = `${DIR_ICON[call.direction] || ""} ${DIR_LABEL[call.direction] || ""}`;
  const pill = card.querySelector(".pill");
  pill.className = "pill " + call.status;
  pill.textContent = STATUS_LABEL[call.status] || call.status;
  const party = customer(call);
  card.querySelector(".party").replaceChildren(partyNode(party));
  card.querySelector(".line").textContent = party.line;
  const who = card.querySelector(".who");
  who.replaceChildren();
  if (talking && call.answered_by) {
    who.append(el("span", "ext active", call.answered_by), document.createTextNode(" talking"));
  } else {
    const ringing = (call.legs || []).filter((l) => !l.result && !l.answered_at).map((l) => l.ext);
    if (ringing.length) {
      for (const x of [...new Set(ringing)]) who.append(el("span", "ext active", x));
      who.append(document.createTextNode(ringing.length > 1 ? " ringing" : " ringing"));
    } else {
      who.append(el("span", "muted", call.direction === "inbound" ? "waiting in queue / IVR" : "dialling…"));
    }
  }
  const transfers = call.transfers || [];
  card.querySelector(".xfer").textContent = transfers.length
    ? "Transferred " + transfers.map((t) => `${t.from} → ${t.to} (${t.kind})`).join(", ")
    : "";
}

function renderLive() {
  const box = $("#live");
  const shown = [...LIVE.values()].filter(involves)
    .sort((a, b) => (a.started_at || "").localeCompare(b.started_at || ""));
  const keep = new Set(shown.map((c) => c.id));
  for (const card of [...box.children]) {
    if (!keep.has(card.dataset.id) && !card.classList.contains("ended")) card.remove();
  }
  for (const call of shown) {
    let card = box.querySelector(`[data-id="${CSS.escape(call.id)}"]`);
    if (!card) {
      card = $("#card-tpl").content.firstElementChild.cloneNode(true);
      box.append(card);
    }
    renderCard(call, card);
  }
  const ringing = shown.filter((c) => c.status === "ringing").length;
  $("#live-count").textContent = shown.length;
  $("#live-summary").textContent = shown.length ? `${shown.length - ringing} talking · ${ringing} ringing` : "";
  $("#live-empty").classList.toggle("hidden", box.children.length > 0);
  tick();
}

function endCard(call) {
  const card = $("#live").querySelector(`[data-id="${CSS.escape(call.id)}"]`);
  if (!card) return;
  renderCard(call, card);
  card.classList.add("ended");
  card.querySelector(".pill").className = "pill " + call.status;
  card.querySelector(".pill").textContent = STATUS_LABEL[call.status] || call.status;
  card.querySelector(".timer").textContent = clock(call.duration);
  setTimeout(() => { card.remove(); renderLive(); }, 2500);
}

function tick() {
  const now = Date.now();
  for (const card of $("#live").children) {
    if (card.classList.contains("ended")) continue;
    const call = LIVE.get(card.dataset.id);
    if (!call) continue;
    const since = call.status === "answered" ? parseTime(call.answered_at) : parseTime(call.started_at);
    card.querySelector(".timer").textContent = clock((now - since) / 1000);
  }
}

// ---- recent calls -----------------------------------------------------------------------

function playButton(call) {
  // The tracker keeps a recording only for answered calls (never MixMonitor's empty file
  // of an unanswered one), so a recording is enough: a call answered for less than half a
  // second has talk 0 and still has its recording.
  const td = el("td");
  if (!call.recording) return td;
  const btn = el("button", "play", "▶ Play");
  btn.type = "button";
  btn.title = call.recording;
  btn.addEventListener("click", () => {
    const audio = el("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = `/api/calls/${encodeURIComponent(call.id)}/recording`;
    td.replaceChildren(audio);
    audio.play().catch(() => {});
  });
  td.append(btn);
  return td;
}

function recentRow(call, fresh) {
  const tr = el("tr", fresh ? "fresh" : "");
  tr.dataset.id = call.id;
  tr.append(el("td", "time", when(call.started_at)));
  const dir = el("td", "dir-icon " + call.direction, DIR_ICON[call.direction] || "");
  dir.title = DIR_LABEL[call.direction] || call.direction;
  tr.append(dir);
  const rec = known(call);
  const numberCell = (value) => {
    const td = el("td", "number", value || "—");
    if (rec && rec.name && value && value === customerNumber(call)) {
      td.replaceChildren(partyNode({ main: rec.name, rec }), el("div", "muted", value));
    }
    return td;
  };
  tr.append(numberCell(call.from), numberCell(call.to));
  tr.append(el("td", "", call.answered_by || "—"));
  const st = el("td");
  st.append(el("span", "pill " + call.status, STATUS_LABEL[call.status] || call.status));
  tr.append(st);
  const answered = call.talk > 0 || Boolean(call.answered_at);
  tr.append(el("td", "num", answered ? clock(call.talk) : "—"), el("td", "num", clock(call.duration)));
  tr.append(playButton(call));
  return tr;
}

function renderRecent(freshId) {
  const body = $("#recent tbody");
  const rows = recent.filter(involves).slice(0, RECENT_MAX);
  body.replaceChildren(...rows.map((c) => recentRow(c, c.id === freshId)));
  $("#recent-empty").classList.toggle("hidden", rows.length > 0);
  $("#recent").classList.toggle("hidden", rows.length === 0);
  const missed = rows.filter((c) => c.status === "missed").length;
  $("#recent-summary").textContent = rows.length ? `${rows.length} shown · ${missed} missed` : "";
}

async function loadRecent() {
  const q = new URLSearchParams({ status: "ended", limit: String(RECENT_MAX) });
  if (ext) q.set("ext", ext);
  try {
    const r = await fetch(`/api/calls?${q}`, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/"; return; }
    if (!r.ok) return;
    recent = (await r.json()).calls;
    renderRecent();
  } catch (e) { /* the feed chip shows the connection state */ }
}

// ---- feed -------------------------------------------------------------------------------

function setChip(id, state, text) {
  const chip = $(id);
  chip.className = "chip " + state;
  chip.querySelector("span").textContent = text;
}

function apply(msg) {
  if (msg.type === "snapshot") {
    LIVE.clear();
    for (const c of msg.calls) {
      LIVE.set(c.id, c);
      if (c.customer) NAMES.set(customerNumber(c), c.customer);
    }
    renderLive();
    return;
  }
  if (!msg.type || !msg.type.startsWith("call.")) return;
  const call = msg.call;
  if (msg.customer) {
    call.customer = msg.customer;
    NAMES.set(customerNumber(call), msg.customer);
  }
  if (call.status === "ringing" || call.status === "answered") {
    LIVE.set(call.id, call);
    renderLive();
  } else {
    LIVE.delete(call.id);
    endCard(call);
    recent = [call, ...recent.filter((c) => c.id !== call.id)].slice(0, 200);
    renderRecent(call.id);
    $("#live-count").textContent = [...LIVE.values()].filter(involves).length;
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const q = ext ? `?ext=${encodeURIComponent(ext)}` : "";
  ws = new WebSocket(`${proto}://${location.host}/ws${q}`);
  ws.onopen = () => { retry = 0; setChip("#chip-feed", "ok", "live"); };
  ws.onmessage = (ev) => { try { apply(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
  ws.onclose = (ev) => {
    setChip("#chip-feed", "bad", ev.code === 4008 ? "catching up…" : "reconnecting…");
    const delay = Math.min(10000, 500 * 2 ** retry++);
    setTimeout(() => { connect(); loadRecent(); }, delay);
  };
}

async function pollPing() {
  try {
    const r = await fetch("/ping", { cache: "no-store" });
    const p = await r.json();
    setChip("#chip-ami", p.ami.connected ? "ok" : "bad",
      p.ami.connected ? `Asterisk ${p.ami.asterisk_version || ""}`.trim() : "Asterisk disconnected");
    const crm = p.crm || {};
    if (!crm.enabled) setChip("#chip-crm", "", "no CRM");
    else setChip("#chip-crm", crm.state === "ok" ? (crm.backlog > 50 ? "warn" : "ok") : "bad",
      `CRM ${crm.state || "?"}${crm.backlog ? ` · ${crm.backlog} queued` : ""}`);
  } catch (e) {
    setChip("#chip-ami", "bad", "pinc unreachable");
  }
}

function start() {
  const input = $("#ext");
  input.value = ext;
  $("#filter").addEventListener("submit", (e) => e.preventDefault());
  input.addEventListener("change", () => {
    const v = input.value.trim();
    if (v && !/^[A-Za-z0-9_-]{1,32}$/.test(v)) { input.value = ext; return; }
    ext = v;
    localStorage.setItem("pinc.ext", ext);
    if (ws) { ws.onclose = null; ws.close(); }
    connect();
    loadRecent();
  });
  loadRecent();
  connect();
  pollPing();
  setInterval(tick, 1000);
  setInterval(pollPing, 5000);
}

start();
