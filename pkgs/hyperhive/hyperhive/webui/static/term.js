// @ts-check
// hyperhive per-agent web UI, first of its files (page.html loads them in order, after
// /static/common/hive-auth.js and hive-ui.js): the page's state, small helpers and the
// terminal, which sticks to the bottom with a "↓ N new" pill.
"use strict";

/**
 * `/api/state` (`webui.control.Controls.snapshot` and `webui.app.api_state`).
 * @typedef {{ phase: string, url: string | null, note: string, output: string[], since: number }} Login
 * @typedef {{ id: number, from: string, to: string, body: string, sent_at: number, delivered: boolean, acked: boolean }} InboxRow
 * @typedef {{ rows?: InboxRow[], error: string | null }} InboxView
 * @typedef {{
 *   state: string, status: string, since: number, model: string, default_model: string,
 *   models: string[], login: Login, inbox: InboxView, store: boolean, now: number,
 * }} State
 * One event of the harness (`webui.app.event_json`); the payload of a "stream" event is a
 * line of claude's stream-json, as claude wrote it.
 * @typedef {{ id: number, ts: number, kind: string, payload: Record<string, any> }} HiveEvent
 */

const AGENT = document.body.dataset.agent ?? "";
const COLLAPSE_LINES = 6;
const COLLAPSE_CHARS = 600;
const TERM_CAP = 4000; // lines kept in the DOM; older ones are dropped from the top

const ui = {
  /** @type {State | null} the last /api/state snapshot, updated by events */
  state: null,
  clockSkew: 0, // server time - browser time, seconds
  /** @type {string | null} the harness's life the ids below belong to (a restart starts a new one) */
  epoch: null,
  lastId: 0,
  /** @type {{ stop(): void } | null} the open stream */
  live: null,
  /** @type {Map<string, HTMLElement>} tool_use id -> its terminal line */
  tools: new Map(),
  /** @type {string[]} */
  models: [],
  /** @type {string | null} the last status drawn as a "status →" line */
  statusSeen: null,
  replaying: false, // drawing the history: skip scroll bookkeeping
};

// -- small helpers --------------------------------------------------------------------------

/**
 * @param {string} tag
 * @param {string} [cls]
 * @param {string} [text]
 */
function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

/** @param {number} ts seconds since the epoch */
function fmtTime(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

/**
 * POST `body` (as JSON, if given) and return the JSON answer; an error status throws its
 * `error` text.
 * @param {string} url
 * @param {unknown} [body]
 * @returns {Promise<Record<string, any>>}
 */
async function post(url, body) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  /** @type {RequestInit} */
  const init = { method: "POST", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await hiveAuth.api(url, init);
  const j = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
  return j;
}

/**
 * @param {unknown} text
 * @param {number} n
 */
function short(text, n) {
  const s = String(text ?? "");
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** @param {number} n */
function fmtTokens(n) {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

// -- the terminal: sticky bottom with a "↓ N new" pill (hiveUI.sticky) ----------------------

const term = $("#term");
const termView = hiveUI.sticky(term, $("#pill"));

// Live lines are appended at once, but the scroll bookkeeping runs once per animation frame:
// "was the view at the bottom" is read before the frame's first append, so a burst of events
// costs one layout, not one per line.
/** @type {{ stuck: boolean, added: number } | null} the frame being collected */
let pending = null;

function beginFrame() {
  if (ui.replaying || pending) return;
  pending = { stuck: termView.atBottom(), added: 0 };
  requestAnimationFrame(settle);
}

function settle() {
  const f = pending;
  pending = null;
  if (f) termView.settle(f.stuck, f.added);
}

/**
 * Append lines to the terminal; `count: false` keeps them off the pill's count.
 * @param {Node[]} nodes
 * @param {{ count?: boolean }} [options]
 */
function append(nodes, { count = true } = {}) {
  if (!nodes.length) return;
  beginFrame();
  for (const n of nodes) term.append(n);
  const extra = term.children.length - TERM_CAP;
  for (let i = 0; i < extra; i++) term.firstElementChild?.remove();
  if (ui.tools.size > TERM_CAP) {
    for (const [id, n] of ui.tools) { if (n.isConnected) break; ui.tools.delete(id); }
  }
  if (pending && count) pending.added += nodes.length;
}

/**
 * One terminal line: time, glyph, content.
 * @param {string} kind
 * @param {string} glyph
 * @param {string | Node} content
 * @param {number} [ts]
 */
function line(kind, glyph, content, ts) {
  const n = el("div", `ln ${kind}`);
  const t = el("time", "", ts ? fmtTime(ts) : "");
  const x = el("span", "x");
  if (content instanceof Node) x.append(content);
  else x.textContent = content;
  n.append(t, el("span", "g", glyph), x);
  return n;
}

/**
 * A block of text shown whole when short, else collapsed behind a summary line.
 * @param {unknown} text
 * @param {string} label
 */
function collapsible(text, label) {
  const s = String(text ?? "").replace(/\n+$/, "");
  const lines = s.split("\n");
  if (lines.length <= COLLAPSE_LINES && s.length <= COLLAPSE_CHARS) return el("pre", "", s);
  const d = el("details");
  d.append(el("summary", "", `${label} · ${lines.length} lines, ${s.length} chars`), el("pre", "", s));
  return d;
}
