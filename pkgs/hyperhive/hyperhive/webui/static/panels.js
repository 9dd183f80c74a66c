// @ts-check
// hyperhive per-agent web UI: the state row, the login panel, the inbox and the log viewer
// (after term.js).
"use strict";

// SPEC's 🧠, unless this browser has no emoji font (it would draw an empty box).
const BRAIN = (() => {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return "🧠";
  ctx.font = "16px sans-serif";
  return ctx.measureText("🧠").width === ctx.measureText("\u{10FFFD}").width ? "◉" : "🧠";
})();

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
  const model = $("#model");
  model.textContent = `model ${s.model}`;
  model.dataset.model = s.model;
  $("#cancel").hidden = !(s.state === "thinking" || s.state === "compacting");
}

/** @param {Record<string, any>} p claude's result line of a turn */
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
  if (!s) return;
  /** @type {Partial<Login>} */
  const login = s.login || {};
  const running = ["starting", "waiting_code", "verifying"].includes(login.phase ?? "");
  const panel = $("#login");
  const wasShown = !panel.hidden;
  panel.hidden = !(s.status === "needs_login" || running);
  if (wasShown && panel.hidden && s.status === "online") hiveUI.toast("logged in: the agent is online");
  $("#login-note").textContent = login.note || "";
  const url = /** @type {HTMLAnchorElement} */ ($("#login-url"));
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
    /** @type {State} */
    const s = await r.json();
    if (!r.ok || !ui.state) return;
    ui.state.login = s.login;
    renderLogin();
  } catch (e) { /* the stream will bring it */ }
}

// -- inbox -----------------------------------------------------------------------------------

/** @param {InboxView} view */
function renderInbox(view) {
  const box = $("#inbox");
  const stuck = hiveUI.atBottom(box);
  const rows = view.rows || [];
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const n = el("div", "msg");
    n.dataset.id = String(r.id);
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

// -- logs ------------------------------------------------------------------------------------

async function loadLogs() {
  const pre = $("#journal");
  try {
    const r = await hiveAuth.api("/api/journal?lines=300");
    /** @type {{ lines: string[], source: string, error: string }} */
    const j = await r.json();
    if (!r.ok) { pre.textContent = j.error; return; }
    $("#logs-source").textContent = j.source;
    pre.textContent = j.lines.join("\n") || "(no log lines yet)";
    pre.scrollTop = pre.scrollHeight;
  } catch (e) { pre.textContent = `logs unavailable: ${e}`; }
}

