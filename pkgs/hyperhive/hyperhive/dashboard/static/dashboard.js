// @ts-check
// hive-c0re dashboard: keeps the server-rendered page live from the SSE change feed.
// The server renders every item; this file only inserts, replaces and removes items by
// data-key, and never replaces an item whose data-v is unchanged (typed text survives).
// Loaded after /static/common/hive-auth.js and hive-ui.js ($, $$, hiveUI).
"use strict";

/** @returns {Record<string, HTMLElement>} the live lists by their data-list name */
const lists = () => Object.fromEntries($$("[data-list]").map((el) => [el.dataset.list, el]));

/**
 * One change of a frame of /dashboard/stream (`views.Op`): upsert the item `key`, or remove
 * it (`html` null); with `key` null, the whole list `list` holds exactly `html`.
 * @typedef {{ list: string, key: string, html: string | null } | { list: string, key: null, html: string }} Op
 * @typedef {{ seq: number, epoch: string, ops: Op[] }} Frame
 */

// -- rendering helpers ----------------------------------------------------------------------

/** @param {string} html */
function parse(html) {
  const tpl = document.createElement("template");
  tpl.innerHTML = html;
  return /** @type {HTMLElement[]} */ ([...tpl.content.children]);
}

/** @param {number} ts seconds since the epoch */
function fmtTime(ts) {
  const d = new Date(ts * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString([], { hour12: false }) : d.toLocaleString([], { hour12: false });
}

/**
 * Finish a freshly inserted node: local times, web UI links on this host, lazy diffs.
 * @param {HTMLElement} node
 */
function fixup(node) {
  for (const t of $$("time[data-ts]", node)) if (Number(t.dataset.ts)) t.textContent = fmtTime(Number(t.dataset.ts));
  for (const a of $$("a[data-port]", node)) pageLink(/** @type {HTMLAnchorElement} */ (a));
  for (const pre of $$("pre[data-diff]", node)) loadDiff(pre);
}

// A link to an agent's page carries that page's key (and only that one) in its #fragment.
/** @type {Map<string, string>} */
const pageKeys = new Map();
// Keys come for running agents only (a stopped agent's port could be anyone's): ask again
// once per agent and row state, so a link gets its key when its agent starts running.
/** @type {Set<string>} */
const keysAskedFor = new Set();
/** @param {HTMLAnchorElement} a */
function pageLink(a) {
  const k = pageKeys.get(a.dataset.name ?? "");
  a.href = `${location.protocol}//${location.hostname}:${a.dataset.port}/${k ? `#key=${k}` : ""}`;
  const row = a.closest("[data-key]");
  const asked = `${a.dataset.name} ${row ? row.className : ""}`;
  if (!k && !keysAskedFor.has(asked)) {
    keysAskedFor.add(asked);
    loadPageKeys().catch(() => {});
  }
}
async function loadPageKeys() {
  const r = await hiveAuth.api("/api/webui-keys");
  if (!r.ok) return;
  /** @type {{ keys: Record<string, string> }} */
  const j = await r.json();
  pageKeys.clear();
  for (const [name, k] of Object.entries(j.keys)) pageKeys.set(name, k);
  for (const a of $$("a[data-port]")) pageLink(/** @type {HTMLAnchorElement} */ (a));
}

/** @param {HTMLElement} pre */
async function loadDiff(pre) {
  try {
    const r = await hiveAuth.api(`/api/diff/${pre.dataset.diff}`);
    /** @type {{ diff?: string, note?: string, error?: string }} */
    const j = await r.json();
    pre.textContent = "";
    if (!r.ok) { pre.textContent = j.error ?? `HTTP ${r.status}`; return; }
    if (!j.diff) { pre.textContent = j.note || "(no changes)"; return; }
    for (const line of j.diff.split("\n")) {
      const s = document.createElement("span");
      s.className = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "file"
        : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "";
      s.textContent = line + "\n";
      pre.append(s);
    }
  } catch (e) { pre.textContent = `diff unavailable: ${e}`; }
}

/**
 * Replace `old` by `fresh`, carrying over islands that must survive (open log viewers).
 * @param {HTMLElement | null | undefined} old
 * @param {HTMLElement} fresh
 */
function adopt(old, fresh) {
  if (old) {
    for (const keep of $$("[data-keep][id]", old)) {
      const spot = fresh.querySelector(`#${CSS.escape(keep.id)}`);
      if (spot) spot.replaceWith(keep);
    }
  }
  fixup(fresh);
  return fresh;
}

/** @param {HTMLElement} list @returns {HTMLElement[]} its items (children with a data-key) */
const keyed = (list) => /** @type {HTMLElement[]} */ ([...list.children]).filter((c) => c.dataset.key);

/**
 * Make `list` hold exactly the items of `html`, keeping unchanged nodes in place.
 * @param {HTMLElement} list
 * @param {string} html
 */
function reconcile(list, html) {
  const old = new Map(keyed(list).map((c) => [c.dataset.key, c]));
  /** @type {HTMLElement | null} */
  let prev = null;
  for (const fresh of parse(html)) {
    const cur = old.get(fresh.dataset.key);
    old.delete(fresh.dataset.key);
    const node = cur && cur.dataset.v === fresh.dataset.v ? cur : adopt(cur, fresh);
    if (cur && node !== cur) cur.remove();
    /** @type {Element | null} */
    const want = prev ? prev.nextElementSibling : keyed(list)[0] || null;
    if (node !== want) list.insertBefore(node, want);
    prev = node;
  }
  for (const gone of old.values()) gone.remove();
}

/**
 * Insert, replace or (html null) remove one item; returns the node if it is new.
 * @param {HTMLElement} list
 * @param {string} key
 * @param {string | null} html
 * @returns {HTMLElement | null}
 */
function upsert(list, key, html) {
  const cur = keyed(list).find((c) => c.dataset.key === key);
  if (html === null) { if (cur) cur.remove(); return null; }
  const [fresh] = parse(html);
  if (cur) {
    if (cur.dataset.v !== fresh.dataset.v) cur.replaceWith(adopt(cur, fresh));
    return null;
  }
  let after = /** @type {HTMLElement | null} */ (list.lastElementChild);
  while (after && after.dataset.key && (after.dataset.sort ?? "") > (fresh.dataset.sort ?? "")) after = /** @type {HTMLElement | null} */ (after.previousElementSibling);
  list.insertBefore(adopt(null, fresh), after ? after.nextElementSibling : list.firstElementChild);
  const cap = Number(list.dataset.cap);
  if (cap) { const items = keyed(list); for (const c of items.slice(0, Math.max(0, items.length - cap))) c.remove(); }
  return fresh;
}

function counts() {
  const all = lists();
  /** @param {HTMLElement} list a section's item count: its bounded total, else its items */
  const total = (list) => { const m = list.querySelector("[data-total]"); return m instanceof HTMLElement ? Number(m.dataset.total) : keyed(list).length; };
  for (const c of $$("[data-count]")) {
    const n = total(all[c.dataset.count ?? ""]);
    c.textContent = n ? `(${n})` : "";
  }
  // what waits for the operator, visible in the tab strip
  const waiting = total(all.questions) + total(all.approvals);
  document.title = waiting ? `(${waiting}) hyperhive ◆ hive-c0re` : "hyperhive ◆ hive-c0re";
}

// -- message flow: sticky bottom with a "↓ N new" pill (hiveUI.sticky) ----------------------

const flow = hiveUI.sticky($("#flow"), $("#pill"));

// -- the change feed --------------------------------------------------------------------------

// `epoch` names the daemon's life the seqs belong to: seq starts again at 1 on a restart,
// so a seq is only compared with one of the same epoch.
/** @type {{ snapSeq: number | null, epoch: string | null, buffer: Frame[], stale: boolean }} */
const feed = { snapSeq: null, epoch: null, buffer: [], stale: false };

/** @param {Frame} frame */
function apply(frame) {
  const all = lists();
  const stuck = flow.atBottom();
  let added = 0;
  for (const op of frame.ops) {
    const list = all[op.list];
    if (!list) continue;
    if (op.key === null) { reconcile(list, op.html); continue; }
    const fresh = upsert(list, op.key, op.html);
    if (fresh && op.list === "flow") added += 1;
    if (fresh && (op.list === "questions" || op.list === "approvals")) notify(fresh);
  }
  if (added) flow.settle(stuck, added);
  counts();
}

// The snapshot rule: frames that arrive before the snapshot are held, then every frame with
// seq <= snapshot.seq is dropped (the snapshot already contains it).
async function sync() {
  feed.snapSeq = null;
  const r = await hiveAuth.api("/api/state?html=1");
  if (!r.ok) throw new Error(`state: HTTP ${r.status}`);
  /** @type {{ backend: string, host: string, seq: number, epoch: string, html: Record<string, string> }} */
  const snap = await r.json();
  $("#backend").textContent =
    `hive-c0re · backend ${snap.backend}` + (snap.host ? ` · host ${snap.host}` : "");
  loadPageKeys().catch(() => {});
  const stuck = flow.atBottom();
  const all = lists();
  for (const [name, html] of Object.entries(snap.html)) if (all[name]) reconcile(all[name], html);
  if (stuck) flow.toBottom();
  counts();
  feed.snapSeq = snap.seq;
  feed.epoch = snap.epoch;
  document.body.dataset.seq = String(snap.seq);
  // A held frame of another life (the daemon restarted meanwhile) makes this snapshot
  // uncomparable with the stream: take another one.
  if (feed.buffer.some((f) => f.epoch !== snap.epoch)) feed.stale = true;
  const held = feed.buffer.filter((f) => f.seq > snap.seq);
  feed.buffer = [];
  if (feed.stale) { feed.stale = false; resync(); return; }
  held.forEach(apply);
}

// A failed sync is retried; meanwhile frames are held, but never without bound.
function resync() {
  sync().catch((e) => {
    hiveUI.toast(`could not load the state (${e.message}); retrying`, true);
    setTimeout(resync, 2000);
  });
}

function connect() {
  /** @param {string} data */
  const frameOf = (data) => {
    /** @type {Frame} */
    const frame = JSON.parse(data);
    if (feed.snapSeq === null) {
      // too many frames while the snapshot loads: drop them and take another snapshot after
      if (feed.buffer.push(frame) > 5000) { feed.buffer = []; feed.stale = true; }
    }
    else if (frame.epoch !== feed.epoch) resync(); // the daemon restarted since the snapshot
    else if (frame.seq > feed.snapSeq) { apply(frame); document.body.dataset.seq = String(frame.seq); }
  };
  hiveAuth.stream("/dashboard/stream", {
    onOpen() {
      hiveUI.conn("● live", true);
      resync();
    },
    onEvent(event, data) {
      if (event === "change") frameOf(data);
      else if (event === "resync") resync();
    },
    onDown() { hiveUI.conn("○ reconnecting", false); },
  });
}

// -- forms: async post, spinner, toast, two clicks for destructive actions -----------------

/** The pending disarm of each armed button. @type {WeakMap<HTMLElement, number>} */
const disarmTimers = new WeakMap();
/** @param {HTMLElement} btn */
function arm(btn) {
  btn.dataset.label = btn.textContent ?? "";
  btn.textContent = btn.dataset.confirm ?? "";
  btn.classList.add("armed");
  disarmTimers.set(btn, setTimeout(() => disarm(btn), 4000));
}
/** @param {HTMLElement} btn */
function disarm(btn) {
  clearTimeout(disarmTimers.get(btn));
  btn.textContent = btn.dataset.label ?? "";
  btn.classList.remove("armed");
}

document.addEventListener("submit", async (e) => {
  const form = e.target;
  if (!(form instanceof HTMLFormElement) || !form.matches("[data-async]")) return;
  e.preventDefault();
  const btn = /** @type {HTMLButtonElement} */ (e.submitter || $("button[type=submit]", form));
  if (btn.dataset.confirm && !btn.classList.contains("armed")) { arm(btn); return; }
  if (btn.dataset.confirm) disarm(btn);
  if (btn.classList.contains("busy")) return;
  const url = btn.getAttribute("formaction") || form.getAttribute("action") || "";
  btn.classList.add("busy");
  btn.disabled = true;
  try {
    // The forms hold text fields and choices only (no files), so every value is a string.
    const body = new URLSearchParams(/** @type {[string, string][]} */ ([...new FormData(form)]));
    const r = await hiveAuth.api(url, { method: "POST", body, headers: { Accept: "application/json" } });
    /** @type {{ message?: string, error?: string }} */
    const j = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (r.ok) {
      hiveUI.toast(j.message || "done");
      if (form.hasAttribute("data-reset")) form.reset();
      if (form.dataset.clear) /** @type {HTMLInputElement} */ (form.elements.namedItem(form.dataset.clear)).value = "";
    } else hiveUI.toast(j.error || `HTTP ${r.status}`, true);
  } catch (err) {
    hiveUI.toast(`request failed: ${/** @type {Error} */ (err).message}`, true);
  } finally {
    btn.classList.remove("busy");
    btn.disabled = false;
  }
});

// ↩ on an inbox message: T4LK to its sender, the cursor in the message field.
document.addEventListener("click", (e) => {
  const btn = e.target instanceof Element ? e.target.closest("button.reply") : null;
  if (!(btn instanceof HTMLElement)) return;
  const form = /** @type {HTMLFormElement} */ ($("form.talk"));
  /** @type {HTMLInputElement} */ (form.elements.namedItem("to")).value = btn.dataset.to ?? "";
  /** @type {HTMLInputElement} */ (form.elements.namedItem("body")).focus(); // an explicit click, not a refresh
});

// -- journald viewer, ttl countdowns, section state, notifications ---------------------------

/** @param {HTMLElement} details */
async function loadLogs(details) {
  const pre = $("pre", details);
  try {
    const r = await hiveAuth.api(`/api/journal/${encodeURIComponent(details.dataset.name ?? "")}?lines=300`);
    /** @type {{ lines: string[], error: string }} */
    const j = await r.json();
    const stuck = pre.textContent === "…" || hiveUI.atBottom(pre);
    pre.textContent = r.ok ? (j.lines.join("\n") || "(no log lines yet)") : j.error;
    if (stuck) pre.scrollTop = pre.scrollHeight;
  } catch (e) { pre.textContent = `logs unavailable: ${e}`; }
}

document.addEventListener("toggle", (e) => {
  const el = e.target;
  if (!(el instanceof HTMLDetailsElement)) return;
  if (el.matches("details.logs") && el.open) loadLogs(el);
  if (el.matches("details[data-sec]")) localStorage.setItem(`hive.sec.${el.dataset.sec}`, el.open ? "open" : "closed");
}, true);

let ticks = 0;
function tick() {
  // open log viewers follow the journal every 5 s while the tab is visible
  if (++ticks % 5 === 0 && !document.hidden) for (const d of $$("details.logs[open]")) loadLogs(d);
  const now = Date.now() / 1000;
  for (const t of $$(".ttl[data-deadline]")) {
    const left = Math.max(0, Math.round(Number(t.dataset.deadline) - now));
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    t.textContent = left ? `ttl ${h ? `${h}h ` : ""}${m}m ${String(s).padStart(2, "0")}s` : "ttl expiring…";
  }
}

const notifier = hiveUI.notifications("hive.notify", $("#notify"));
/** A new question or approval: its data-notify line, tagged with its key. @param {HTMLElement} node */
const notify = (node) => notifier("hyperhive", { body: node.dataset.notify || "", tag: node.dataset.key });

function init() {
  for (const d of /** @type {HTMLDetailsElement[]} */ ($$("details[data-sec]"))) {
    const saved = localStorage.getItem(`hive.sec.${d.dataset.sec}`);
    if (saved) d.open = saved === "open";
  }
  fixup(document.body);
  counts();
  flow.toBottom();
  setInterval(tick, 1000);
  tick();
  connect();
}

init();
