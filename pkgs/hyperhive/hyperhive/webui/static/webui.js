// hyperhive per-agent web UI: history backfill, then the live SSE stream; the state row,
// the inbox, the login panel and the operator prompt. No build step, no framework.
// Live updates only ever append to the terminal or rewrite small display nodes: the prompt
// is never re-rendered and never focused by an update, so typed text survives.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const AGENT = document.body.dataset.agent;
const COMMANDS = ["/help", "/model", "/cancel", "/compact", "/new-session"];
const HELP = [
  "/help                 this help",
  "/model <name>         model of the next turns (haiku, sonnet, opus, fable, claude-…, default)",
  "/cancel               stop the running turn (SIGINT to claude)",
  "/compact              compact the conversation now (between turns)",
  "/new-session          the next turn starts a fresh conversation",
  "//text                send text that starts with /",
  "anything else         goes to the agent as a message from operator (Enter sends)",
];
const COLLAPSE_LINES = 6;
const COLLAPSE_CHARS = 600;
const TERM_CAP = 4000; // lines kept in the DOM; older ones are dropped from the top

// SPEC's 🧠, unless this browser has no emoji font (it would draw an empty box).
const BRAIN = (() => {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return "🧠";
  ctx.font = "16px sans-serif";
  return ctx.measureText("🧠").width === ctx.measureText("\u{10FFFD}").width ? "◉" : "🧠";
})();

const ui = {
  state: null, // the last /api/state snapshot, updated by events
  clockSkew: 0, // server time - browser time, seconds
  epoch: null, // the harness's life the ids below belong to (a restart starts a new one)
  lastId: 0,
  live: null, // the open stream

  tools: new Map(), // tool_use id -> its terminal line
  unseen: 0,
  models: [],
  replaying: false, // drawing the history: skip scroll bookkeeping
};

// -- small helpers --------------------------------------------------------------------------

function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

function fmtTime(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

function toast(text, err = false) {
  const t = el("div", err ? "toast err" : "toast", text);
  $("#toasts").append(t);
  setTimeout(() => t.remove(), err ? 8000 : 4000);
}

async function post(url, body) {
  const init = { method: "POST", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await hiveAuth.api(url, init);
  const j = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
  return j;
}

function short(text, n) {
  const s = String(text ?? "");
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function fmtTokens(n) {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

// -- the terminal: sticky bottom with a "↓ N new" pill ---------------------------------------

const term = () => $("#term");
const atBottom = (n) => n.scrollHeight - n.scrollTop - n.clientHeight < 30;

function toBottom() {
  const t = term();
  t.scrollTop = t.scrollHeight;
  ui.unseen = 0;
  $("#pill").hidden = true;
}

// Live lines are appended at once, but the scroll bookkeeping runs once per animation frame:
// "was the view at the bottom" is read before the frame's first append, so a burst of events
// costs one layout, not one per line.
let pending = null; // { stuck, added } of the frame being collected

function beginFrame() {
  if (ui.replaying || pending) return;
  pending = { stuck: atBottom(term()), added: 0 };
  requestAnimationFrame(settle);
}

function settle() {
  const f = pending;
  pending = null;
  if (!f) return;
  if (f.stuck) { toBottom(); return; }
  if (!f.added) return;
  ui.unseen += f.added;
  const pill = $("#pill");
  pill.hidden = false;
  $("span", pill).textContent = ui.unseen;
}

function append(nodes, { count = true } = {}) {
  if (!nodes.length) return;
  beginFrame();
  const t = term();
  for (const n of nodes) t.append(n);
  const extra = t.children.length - TERM_CAP;
  for (let i = 0; i < extra; i++) t.firstElementChild.remove();
  if (ui.tools.size > TERM_CAP) {
    for (const [id, n] of ui.tools) { if (n.isConnected) break; ui.tools.delete(id); }
  }
  if (pending && count) pending.added += nodes.length;
}

function line(kind, glyph, content, ts) {
  const n = el("div", `ln ${kind}`);
  const t = el("time", "", ts ? fmtTime(ts) : "");
  const x = el("span", "x");
  if (content instanceof Node) x.append(content);
  else x.textContent = content;
  n.append(t, el("span", "g", glyph), x);
  return n;
}

// A block of text shown whole when short, else collapsed behind a summary line.
function collapsible(text, label) {
  const s = String(text ?? "").replace(/\n+$/, "");
  const lines = s.split("\n");
  if (lines.length <= COLLAPSE_LINES && s.length <= COLLAPSE_CHARS) return el("pre", "", s);
  const d = el("details");
  d.append(el("summary", "", `${label} · ${lines.length} lines, ${s.length} chars`), el("pre", "", s));
  return d;
}

// -- rendering events ------------------------------------------------------------------------

function toolView(name, input) {
  const frag = document.createDocumentFragment();
  const i = input || {};
  const tn = (t) => el("span", "tn", t);
  const arg = (t) => el("span", "arg", t);
  const mcp = /^mcp__([^_]+(?:_[^_]+)*)__(.+)$/.exec(name);
  if (name === "Read") frag.append(tn("Read "), arg(i.file_path ?? ""));
  else if (name === "Write") frag.append(tn("Write "), arg(i.file_path ?? ""), ` (${String(i.content ?? "").split("\n").length} lines)`);
  else if (name === "Edit") frag.append(tn("Edit "), arg(i.file_path ?? ""));
  else if (name === "Bash") frag.append(tn("Bash "), arg(`$ ${i.command ?? ""}`));
  else if (name === "Glob") frag.append(tn("Glob "), arg(i.pattern ?? ""), i.path ? ` in ${i.path}` : "");
  else if (name === "Grep") frag.append(tn("Grep "), arg(i.pattern ?? ""), i.path ? ` in ${i.path}` : "");
  else if (name === "ToolSearch") frag.append(tn("ToolSearch "), arg(i.query ?? ""));
  else if (mcp && mcp[1] === "hyperhive") {
    const tool = mcp[2];
    if (tool === "send") frag.append(tn("send"), " → ", el("span", "to", i.to ?? "?"), `: ${short(i.body, 400)}`);
    else if (tool === "recv") frag.append(tn("recv"), ` (wait ${i.wait_seconds ?? 0} s)`);
    else if (tool === "ask_operator") frag.append(tn("ask_operator"), `: ${short(i.question, 400)}`);
    else if (tool === "request_apply_commit") frag.append(tn("request_apply_commit"), ` ${i.agent ?? ""} @ ${i.commit_ref ?? ""}`);
    else frag.append(tn(tool), Object.keys(i).length ? ` ${short(JSON.stringify(i), 300)}` : "");
  } else if (mcp) frag.append(tn(`${mcp[1]}.${mcp[2]}`), ` ${short(JSON.stringify(i), 300)}`);
  else frag.append(tn(name), ` ${short(JSON.stringify(i), 300)}`);
  return frag;
}

function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((b) => (b && b.type === "text" ? b.text
      : b && b.type === "tool_reference" ? `(loaded ${b.tool_name})` : JSON.stringify(b))).join("\n");
  }
  return JSON.stringify(content);
}

function renderStream(ev, live) {
  const p = ev.payload;
  const out = [];
  if (p.type === "system") {
    if (p.subtype === "init") {
      const mcp = (p.mcp_servers || []).map((s) => `${s.name} ${s.status === "connected" ? "✓" : s.status}`).join(", ");
      out.push(line("k-sys", "●", `session · ${p.model ?? "?"} · ${(p.tools || []).length} tools · mcp: ${mcp || "none"}`, ev.ts));
    } else if (p.subtype === "status" && p.status) out.push(line("k-sys", "…", p.status, ev.ts));
    else if (p.subtype === "compact_boundary") {
      const m = p.compact_metadata || {};
      out.push(line("k-sys", "◆", `compacted (${m.trigger ?? "?"}): ${m.pre_tokens ?? "?"} → ${m.post_tokens ?? "?"} tokens`, ev.ts));
    }
    return out;
  }
  if (p.type === "assistant") {
    for (const b of (p.message && p.message.content) || []) {
      if (b.type === "text" && b.text) out.push(line(p.error ? "k-err" : "k-text", p.error ? "✗" : "◂", b.text, ev.ts));
      else if (b.type === "thinking") out.push(line("k-sys", "…", collapsible(b.thinking, "thinking"), ev.ts));
      else if (b.type === "tool_use") {
        const n = line(`k-tool${/__send$/.test(b.name) ? " send" : ""}`, "⚙", toolView(b.name, b.input), ev.ts);
        n.dataset.tool = b.name;
        ui.tools.set(b.id, n);
        out.push(n);
        if (live && /^mcp__hyperhive__send$/.test(b.name) && b.input && b.input.to === "operator") notify(b.id, b.input.body);
      }
    }
    return out;
  }
  if (p.type === "user") {
    const content = p.message && p.message.content;
    if (typeof content === "string") {
      if (p.isSynthetic || p.isReplay) out.push(line("k-sys", "·", collapsible(content, "context"), ev.ts));
      return out;
    }
    for (const b of content || []) {
      if (b.type === "tool_result") {
        const text = resultText(b.content);
        const box = el("div", b.is_error ? "result err" : "result");
        box.append(collapsible(text, b.is_error ? "error" : "result"));
        const owner = ui.tools.get(b.tool_use_id);
        if (owner && owner.isConnected) {
          // Keep a result under its own call even when other lines came in between.
          let after = owner;
          while (after.nextElementSibling && after.nextElementSibling.classList.contains("result")) after = after.nextElementSibling;
          beginFrame();
          after.after(box);
        } else out.push(box);
      } else if (b.type === "text" && b.text) out.push(line("k-sys", "·", b.text, ev.ts));
    }
    return out;
  }
  if (p.type === "result") {
    lastTurn(p);
    const secs = ((p.duration_ms || 0) / 1000).toFixed(1);
    if (p.is_error) out.push(line("k-err", "✗", `${p.subtype}: ${short(p.result || p.terminal_reason || "", 600)} · ${secs} s`, ev.ts));
    else out.push(line("k-end ok", "✓", `done · ${secs} s · $${(p.total_cost_usd || 0).toFixed(4)}`, ev.ts));
    return out;
  }
  return out; // stream_event partials, rate_limit_event…: nothing to show
}

function render(ev, live) {
  const p = ev.payload || {};
  switch (ev.kind) {
    case "stream": return renderStream(ev, live);
    case "operator_message": return [line("k-op", "›", `operator: ${p.body}`, ev.ts)];
    case "turn_start": {
      const first = String(p.prompt || "").split("\n")[0].replace(/:$/, "");
      const head = p.message_id ? first : "operator message (web UI)";
      return [line("k-turn", "▶", `${head} · ${p.model}${p.resume ? "" : " · new session"}`, ev.ts)];
    }
    case "turn_end": {
      const cls = p.outcome === "cancelled" ? "cancelled" : p.ok ? "ok" : "bad";
      const glyph = p.outcome === "cancelled" ? "■" : p.ok ? "■" : "✗";
      return [line(`k-end ${cls}`, glyph, `turn ${p.outcome}${p.note && !p.ok ? `: ${short(p.note, 400)}` : ""}`, ev.ts)];
    }
    case "note": return [line(`k-note ${p.source || ""}`, "·", `${p.source ? `${p.source}: ` : ""}${p.text}`, ev.ts)];
    case "compacted": return [line(p.ok ? "k-sys" : "k-err", "◆", p.ok ? "compacted" : `compaction failed: ${p.note}`, ev.ts)];
    case "model": return [line("k-sys", "◆", `model → ${p.model}`, ev.ts)];
    case "login": return [line("k-sys", "◆", `login: ${p.phase}${p.note ? ` — ${p.note}` : ""}`, ev.ts)];
    case "state": {
      const prev = ui.statusSeen;
      ui.statusSeen = p.status;
      return prev && prev !== p.status ? [line("k-sys", "◆", `status → ${p.status.replace("_", " ")}`, ev.ts)] : [];
    }
    default: return [line("k-sys", "·", `${ev.kind} ${short(JSON.stringify(p), 300)}`, ev.ts)];
  }
}

// Apply an event to the state row (live and history alike), then draw it.
function consume(ev, live) {
  if (ev.id <= ui.lastId) return [];
  ui.lastId = ev.id;
  const p = ev.payload || {};
  if (live && ui.state) {
    if (ev.kind === "state") Object.assign(ui.state, { state: p.state, status: p.status, since: p.since });
    if (ev.kind === "model") ui.state.model = p.model;
    if (ev.kind === "login") Object.assign(ui.state.login, { phase: p.phase, url: p.url, note: p.note });
    if (ev.kind === "login" || ev.kind === "state") renderLogin();
    if (ev.kind === "state" || ev.kind === "model") renderState();
  }
  return render(ev, live);
}

// -- state row -------------------------------------------------------------------------------

function renderState() {
  const s = ui.state;
  if (!s) return;
  const badge = $("#badge");
  const secs = Math.max(0, Math.round(Date.now() / 1000 + ui.clockSkew - s.since));
  let cls = s.state, text = s.state;
  if (s.status === "needs_login") { cls = "needs_login"; text = "needs login"; }
  else if (s.status === "rate_limited") { cls = "rate_limited"; text = `rate limited · ${secs} s`; }
  else if (s.state === "thinking") text = `${BRAIN} thinking · ${secs} s`;
  else if (s.state === "compacting") text = `compacting · ${secs} s`;
  badge.className = `badge-state ${cls}`;
  badge.textContent = text;
  badge.dataset.state = s.state;
  badge.dataset.status = s.status;
  $("#model").textContent = `model ${s.model}`;
  $("#model").dataset.model = s.model;
  $("#cancel").hidden = !(s.state === "thinking" || s.state === "compacting");
}

function lastTurn(p) {
  const u = p.usage || {};
  const tokensIn = (u.input_tokens || 0) + (u.cache_creation_input_tokens || 0) + (u.cache_read_input_tokens || 0);
  const chip = $("#last");
  chip.hidden = false;
  chip.textContent = `last ${((p.duration_ms || 0) / 1000).toFixed(1)} s · $${(p.total_cost_usd || 0).toFixed(4)} · ${fmtTokens(tokensIn)} in / ${fmtTokens(u.output_tokens || 0)} out`;
}

// -- login panel -----------------------------------------------------------------------------

function renderLogin() {
  const s = ui.state;
  const login = s.login || {};
  const running = ["starting", "waiting_code", "verifying"].includes(login.phase);
  const panel = $("#login");
  const wasShown = !panel.hidden;
  panel.hidden = !(s.status === "needs_login" || running);
  if (wasShown && panel.hidden && s.status === "online") toast("logged in: the agent is online");
  $("#login-note").textContent = login.note || "";
  const url = $("#login-url");
  $("#login-url-row").hidden = !login.url;
  if (login.url && url.href !== login.url) { url.href = login.url; url.textContent = login.url; }
  $("#login-code").hidden = !(login.phase === "waiting_code" || login.phase === "verifying");
  const out = $("#login-output");
  out.hidden = !(login.output && login.output.length);
  if (login.output) out.textContent = login.output.join("\n");
}

async function refreshLogin() {
  try {
    const r = await hiveAuth.api("/api/state");
    const s = await r.json();
    if (!r.ok) return;
    ui.state.login = s.login;
    renderLogin();
  } catch (e) { /* the stream will bring it */ }
}

// -- inbox -----------------------------------------------------------------------------------

function renderInbox(view) {
  const box = $("#inbox");
  const stuck = atBottom(box);
  const rows = view.rows || [];
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const n = el("div", "msg");
    n.dataset.id = r.id;
    n.append(el("time", "", fmtTime(r.sent_at)), el("span", "from", r.from), el("span", "arrow", "→"), el("span", "to", r.to));
    if (r.to === AGENT) n.append(el("span", r.acked ? "flag acked" : "flag", r.acked ? "done" : r.delivered ? "in turn" : "waiting"));
    n.append(el("span", "body", r.body));
    frag.append(n);
  }
  box.replaceChildren(frag);
  if (stuck) box.scrollTop = box.scrollHeight;
  const waiting = rows.filter((r) => r.to === AGENT && !r.acked).length;
  $("#inbox-count").textContent = rows.length ? `(${waiting} waiting · ${rows.length} recent)` : "";
  $("#inbox-error").hidden = !view.error;
  $("#inbox-error").textContent = view.error ? `socket unreachable: ${view.error}` : "";
}

// -- the prompt ------------------------------------------------------------------------------

function helpLines(intro) {
  const lines = intro ? [intro, ...HELP] : HELP;
  append([line("k-help", "?", lines.join("\n"))], { count: false });
  if (pending) pending.stuck = true; // the operator asked: show it
}

async function runCommand(text) {
  const [cmd, ...rest] = text.trim().split(/\s+/);
  const arg = rest.join(" ");
  switch (cmd) {
    case "/help": helpLines(); return true;
    case "/model":
      if (!arg) { helpLines(`model now: ${ui.state.model} (default ${ui.state.default_model}) — /model <name> to change`); return true; }
      toast(`model: ${(await post("/api/model", { model: arg })).model}`);
      return true;
    case "/cancel": await post("/api/cancel"); toast("cancel sent"); return true;
    case "/compact": await post("/api/compact"); toast("compaction queued"); return true;
    case "/new-session": await post("/api/new-session"); toast("the next turn starts a new session"); return true;
    default: helpLines(`unknown command ${cmd}`); return false;
  }
}

async function submitPrompt() {
  const input = $("#input");
  const text = input.value;
  if (!text.trim()) return;
  const form = $("#prompt");
  if (form.classList.contains("busy")) return;
  form.classList.add("busy");
  try {
    if (text.startsWith("/") && !text.startsWith("//")) {
      const ok = await runCommand(text);
      if (ok) input.value = "";
    } else {
      const body = text.startsWith("//") ? text.slice(1) : text;
      const j = await post("/api/send", { body });
      input.value = "";
      if (j.queued > 1) toast(`queued (${j.queued} waiting)`);
    }
  } catch (e) {
    toast(e.message, true); // the text stays in the prompt
  } finally {
    form.classList.remove("busy");
    autosize();
  }
}

function complete(input) {
  const v = input.value;
  if (!v.startsWith("/") || v.includes("\n")) return false;
  const sp = v.indexOf(" ");
  if (sp === -1) {
    const hits = COMMANDS.filter((c) => c.startsWith(v));
    if (hits.length === 1) input.value = hits[0] === "/model" ? "/model " : hits[0];
    else if (hits.length > 1) {
      let pre = hits[0];
      for (const h of hits) while (!h.startsWith(pre)) pre = pre.slice(0, -1);
      if (pre.length > v.length) input.value = pre;
      else helpLines(`completions: ${hits.join("  ")}`);
    } else helpLines(`unknown command ${v}`);
    return true;
  }
  if (v.startsWith("/model ")) {
    const part = v.slice(7);
    const hits = [...ui.models, "default"].filter((m) => m.startsWith(part));
    if (hits.length === 1) input.value = `/model ${hits[0]}`;
    else helpLines(`models: ${hits.join("  ") || ui.models.join("  ")}`);
    return true;
  }
  return false;
}

function autosize() {
  const input = $("#input");
  input.style.height = "auto";
  input.style.height = `${input.scrollHeight + 2}px`;
}

// -- notifications (opt-in) ------------------------------------------------------------------

function notify(tag, body) {
  if (localStorage.getItem("ag3nt.notify") !== "on" || !("Notification" in window)) return;
  if (Notification.permission !== "granted") return;
  new Notification(`${AGENT} → operator`, { body: short(body, 300), tag: `send-${tag}` });
}

function notifyButton() {
  const btn = $("#notify");
  const show = () => { btn.textContent = localStorage.getItem("ag3nt.notify") === "on" ? "◆ notify on" : "◇ notify"; };
  btn.addEventListener("click", async () => {
    if (localStorage.getItem("ag3nt.notify") === "on") localStorage.setItem("ag3nt.notify", "off");
    else if (!("Notification" in window)) toast("this browser has no notifications", true);
    else if ((await Notification.requestPermission()) === "granted") localStorage.setItem("ag3nt.notify", "on");
    else toast("notifications were not allowed", true);
    show();
  });
  show();
}

// -- logs ------------------------------------------------------------------------------------

async function loadLogs() {
  const pre = $("#journal");
  try {
    const r = await hiveAuth.api("/api/journal?lines=300");
    const j = await r.json();
    if (!r.ok) { pre.textContent = j.error; return; }
    $("#logs-source").textContent = j.source;
    pre.textContent = j.lines.join("\n") || "(no log lines yet)";
    pre.scrollTop = pre.scrollHeight;
  } catch (e) { pre.textContent = `logs unavailable: ${e}`; }
}

// -- start-up: state, history, then the stream ----------------------------------------------

async function loadState() {
  const r = await hiveAuth.api("/api/state");
  if (!r.ok) throw new Error(`state: HTTP ${r.status}`);
  const s = await r.json();
  ui.clockSkew = s.now - Date.now() / 1000;
  ui.state = s;
  ui.models = s.models || [];
  $("#store-note").textContent = s.store ? "" : "no-store mode: no history, live only";
  renderState();
  renderLogin();
  renderInbox(s.inbox);
}

async function loadHistory() {
  const r = await hiveAuth.api("/events/history");
  if (!r.ok) throw new Error(`history: HTTP ${r.status}`);
  const j = await r.json();
  // Drawn event by event, exactly as live, so a result lands under its own call and a
  // reload looks the same; no layout reads until the end.
  ui.replaying = true;
  ui.statusSeen = null; // the first state event of the history is a start, not a change
  try {
    for (const ev of j.events) append(consume(ev, false), { count: false });
  } finally {
    ui.replaying = false;
  }
  ui.epoch = j.epoch;
  ui.lastId = j.last_id;
  ui.statusSeen = ui.state ? ui.state.status : ui.statusSeen;
  toBottom();
}

// Where the stream resumes: "<epoch>-<id>" of the events drawn, or "0" (from now on).
const position = () => (ui.epoch ? `${ui.epoch}-${ui.lastId}` : "0");

function connect() {
  const conn = $("#conn");
  ui.live = hiveAuth.stream(() => `/events/stream?after=${position()}`, {
    onOpen() { conn.textContent = "● live"; conn.className = "conn live"; },
    onEvent(event, data, id) {
      if (event === "resync") resync();
      // An id of another life: numbers of different lives cannot be compared.
      else if (event === "ev" && ui.epoch && id && !id.startsWith(`${ui.epoch}-`)) resync();
      else if (event === "ev") append(consume(JSON.parse(data), true));
      else if (event === "inbox") renderInbox(JSON.parse(data));
    },
    onDown() {
      conn.textContent = "○ reconnecting"; conn.className = "conn down";
      // The reconnect resumes after ui.lastId; state may have moved meanwhile.
      loadState().catch(() => {});
    },
  });
}

// The harness restarted (or our position is gone): its numbering may have started again,
// so nothing we hold can be resumed. Draw everything again from a fresh state and history.
let resyncing = false;
async function resync() {
  if (resyncing) return;
  resyncing = true;
  if (ui.live) ui.live.stop();
  const conn = $("#conn");
  conn.textContent = "○ reloading"; conn.className = "conn down";
  try {
    for (;;) {
      try {
        term().replaceChildren();
        ui.tools.clear();
        ui.epoch = null;
        ui.lastId = 0;
        await loadState();
        await loadHistory();
        append([line("k-sys", "◆", "the agent restarted: history reloaded")], { count: false });
        break;
      } catch (e) {
        await new Promise((done) => setTimeout(done, 2000));
      }
    }
  } finally {
    resyncing = false;
  }
  connect();
}

// No key for this page, or one a rotation made old: say where the key comes from.
hiveAuth.onUnauthorized(() => {
  $("#login-needed").hidden = false;
  const conn = $("#conn");
  conn.textContent = "○ logged out"; conn.className = "conn down";
});

function wire() {
  const input = $("#input");
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitPrompt(); }
    else if (e.key === "Tab" && !e.shiftKey && complete(input)) e.preventDefault();
  });
  input.addEventListener("input", autosize);
  $("#prompt").addEventListener("submit", (e) => { e.preventDefault(); submitPrompt(); });
  term().addEventListener("scroll", () => { if (atBottom(term())) { ui.unseen = 0; $("#pill").hidden = true; } });
  $("#pill").addEventListener("click", toBottom);
  $("#cancel").addEventListener("click", async (e) => {
    const btn = e.currentTarget;
    btn.classList.add("busy");
    try { await post("/api/cancel"); toast("cancel sent"); } catch (err) { toast(err.message, true); } finally { btn.classList.remove("busy"); }
  });
  $("#model").addEventListener("click", () => {
    if (!input.value) input.value = "/model ";
    input.focus(); // an explicit click, not a refresh
  });
  $("#login-start").addEventListener("click", async (e) => {
    const btn = e.currentTarget;
    btn.classList.add("busy");
    try { const j = await post("/api/login/start"); ui.state.login = j.login; renderLogin(); } catch (err) { toast(err.message, true); } finally { btn.classList.remove("busy"); }
  });
  $("#login-code").addEventListener("submit", async (e) => {
    e.preventDefault();
    const field = e.currentTarget.elements.code;
    try { const j = await post("/api/login/code", { code: field.value }); field.value = ""; ui.state.login = j.login; renderLogin(); } catch (err) { toast(err.message, true); }
  });
  $("#logs").addEventListener("toggle", (e) => { if (e.target.open) loadLogs(); });
  $("#logs-refresh").addEventListener("click", loadLogs);
  notifyButton();
  setInterval(renderState, 1000);
  // The login output tail is not an event (it is not stored): poll it while a login runs.
  setInterval(() => { if (ui.state && !$("#login").hidden) refreshLogin(); }, 1500);
}

async function init() {
  wire();
  try {
    await loadState();
    await loadHistory();
  } catch (e) {
    toast(`could not load: ${e.message}`, true);
  }
  connect();
  $("#input").focus();
}

init();
