// @ts-check
// hyperhive per-agent web UI, its start-up: the state, the history backfill, then the live
// SSE stream. The page's other files come first (page.html: term.js, events.js, panels.js,
// prompt.js); this one runs init(). No build step, no framework.
// Live updates only ever append to the terminal or rewrite small display nodes: the prompt
// is never re-rendered and never focused by an update, so typed text survives.
"use strict";

// -- notifications (opt-in) ------------------------------------------------------------------

const notifier = hiveUI.notifications("ag3nt.notify", $("#notify"));
/**
 * The agent wrote to the operator (a live send call, `tag` its tool_use id).
 * @param {string} tag
 * @param {unknown} body
 */
const notify = (tag, body) => notifier(`${AGENT} → operator`, { body: short(body, 300), tag: `send-${tag}` });

// -- start-up: state, history, then the stream ----------------------------------------------

async function loadState() {
  const r = await hiveAuth.api("/api/state");
  if (!r.ok) throw new Error(`state: HTTP ${r.status}`);
  /** @type {State} */
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
  /** @type {{ events: HiveEvent[], epoch: string, last_id: number }} */
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
  termView.toBottom();
}

// Where the stream resumes: "<epoch>-<id>" of the events drawn, or "0" (from now on).
const position = () => (ui.epoch ? `${ui.epoch}-${ui.lastId}` : "0");

function connect() {
  ui.live = hiveAuth.stream(() => `/events/stream?after=${position()}`, {
    onOpen() { hiveUI.conn("● live", true); },
    onEvent(event, data, id) {
      if (event === "resync") resync();
      // An id of another life: numbers of different lives cannot be compared.
      else if (event === "ev" && ui.epoch && id && !id.startsWith(`${ui.epoch}-`)) resync();
      else if (event === "ev") append(consume(JSON.parse(data), true));
      else if (event === "inbox") renderInbox(JSON.parse(data));
    },
    onDown() {
      hiveUI.conn("○ reconnecting", false);
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
  hiveUI.conn("○ reloading", false);
  try {
    for (;;) {
      try {
        term.replaceChildren();
        ui.tools.clear();
        ui.epoch = null;
        ui.lastId = 0;
        await loadState();
        await loadHistory();
        append([line("k-sys", "◆", "the agent restarted: history reloaded")], { count: false });
        break;
      } catch {
        await new Promise((done) => setTimeout(done, 2000));
      }
    }
  } finally {
    resyncing = false;
  }
  connect();
}

function wire() {
  const input = /** @type {HTMLTextAreaElement} */ ($("#input"));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitPrompt(); }
    else if (e.key === "Tab" && !e.shiftKey && complete(input)) e.preventDefault();
  });
  input.addEventListener("input", autosize);
  $("#prompt").addEventListener("submit", (e) => { e.preventDefault(); submitPrompt(); });
  /** @param {unknown} err */
  const failed = (err) => hiveUI.toast(/** @type {Error} */ (err).message, true);
  const cancel = $("#cancel");
  cancel.addEventListener("click", async () => {
    cancel.classList.add("busy");
    try { await post("/api/cancel"); hiveUI.toast("cancel sent"); } catch (err) { failed(err); } finally { cancel.classList.remove("busy"); }
  });
  $("#model").addEventListener("click", () => {
    if (!input.value) input.value = "/model ";
    input.focus(); // an explicit click, not a refresh
  });
  /** @param {Login} login */
  const loginNow = (login) => { if (ui.state) { ui.state.login = login; renderLogin(); } };
  const start = $("#login-start");
  start.addEventListener("click", async () => {
    start.classList.add("busy");
    try { loginNow((await post("/api/login/start")).login); } catch (err) { failed(err); } finally { start.classList.remove("busy"); }
  });
  const codeForm = /** @type {HTMLFormElement} */ ($("#login-code"));
  codeForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const field = /** @type {HTMLInputElement} */ (codeForm.elements.namedItem("code"));
    try { const j = await post("/api/login/code", { code: field.value }); field.value = ""; loginNow(j.login); } catch (err) { failed(err); }
  });
  const logs = /** @type {HTMLDetailsElement} */ ($("#logs"));
  logs.addEventListener("toggle", () => { if (logs.open) loadLogs(); });
  $("#logs-refresh").addEventListener("click", loadLogs);
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
    hiveUI.toast(`could not load: ${/** @type {Error} */ (e).message}`, true);
  }
  connect();
  $("#input").focus();
}

init();
