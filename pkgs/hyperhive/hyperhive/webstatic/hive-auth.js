// @ts-check
// hyperhive: the operator's key in this page's origin, and requests that carry it.
// Shared by the dashboard and every agent's page (served as /static/common/hive-auth.js).
//
// The key arrives once in the URL's #fragment (`hive-c0re login`, or the dashboard's link to
// an agent's page); a fragment never reaches a server. It is kept in localStorage, which
// belongs to this origin (scheme, host and port) alone: a page on another port — one an
// agent serves — cannot read it. It travels only in an Authorization header, which a
// browser never adds by itself, so another page's fetch or form post has no credential.
"use strict";

/**
 * What `hiveAuth.stream` calls: `onOpen` once connected, `onEvent` per SSE event (its name,
 * its data lines joined, its id), `onDown` when the stream broke and a reconnect is due.
 * @typedef {{
 *   onOpen?: () => void,
 *   onEvent: (event: string, data: string, id: string | null) => void,
 *   onDown?: (error: unknown) => void,
 * }} StreamHandlers
 */

const hiveAuth = (() => {
  const STORE = "hive.key";
  const m = /(?:^#|&)key=([A-Za-z0-9_-]{16,128})(?:&|$)/.exec(location.hash);
  if (location.hash) {
    // Out of the address bar and the history at once.
    history.replaceState(null, "", location.pathname === "/login" ? "/" : location.pathname + location.search);
  }
  // A key from a link replaces the stored one only once this server accepts it: another
  // page cannot log the operator out by linking here with a made-up key.
  const ready = (async () => {
    if (!m || m[1] === localStorage.getItem(STORE)) return;
    try {
      const r = await fetch("/api/state", { headers: { Authorization: `Bearer ${m[1]}` }, credentials: "omit", cache: "no-store" });
      // 401 is the key refused. A 5xx comes only after the key check passed (a 503 while
      // the hive's database is away): keep the key, the page retries the state.
      if (r.ok || r.status >= 500) localStorage.setItem(STORE, m[1]);
    } catch (e) { /* the server is down: keep what we had */ }
  })();
  /** @type {() => void} */
  let unauthorized = () => {};

  const key = () => localStorage.getItem(STORE);

  /**
   * `fetch` with this page's key; a 401 calls the onUnauthorized hook.
   * @param {string} url
   * @param {RequestInit} [init]
   */
  async function api(url, init = {}) {
    await ready;
    const headers = new Headers(init.headers || {});
    const k = key();
    if (k) headers.set("Authorization", `Bearer ${k}`);
    const r = await fetch(url, { ...init, headers, credentials: "omit", cache: "no-store" });
    if (r.status === 401) unauthorized();
    return r;
  }

  // Server-sent events over fetch: EventSource cannot send an Authorization header.
  // `url` may be a function (re-evaluated on every reconnect, e.g. to resume after an id).
  /**
   * @param {string | (() => string)} url
   * @param {StreamHandlers} handlers
   */
  function stream(url, { onOpen, onEvent, onDown }) {
    let stopped = false;
    /** @type {AbortController | null} */
    let ctrl = null;
    async function run() {
      ctrl = new AbortController();
      try {
        const r = await api(typeof url === "function" ? url() : url, { signal: ctrl.signal, headers: { Accept: "text/event-stream" } });
        if (!r.ok || !r.body) throw Object.assign(new Error(`HTTP ${r.status}`), { status: r.status });
        if (onOpen) onOpen();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r/g, ""); // JSON data never holds a raw CR
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let event = "message";
            let id = null;
            const data = [];
            for (const line of block.split("\n")) {
              if (!line || line.startsWith(":")) continue; // comments are pings
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              let v = colon < 0 ? "" : line.slice(colon + 1);
              if (v.startsWith(" ")) v = v.slice(1);
              if (field === "event") event = v;
              else if (field === "data") data.push(v);
              else if (field === "id") id = v;
            }
            if (data.length) onEvent(event, data.join("\n"), id);
          }
        }
        throw new Error("the stream ended");
      } catch (e) {
        if (stopped) return;
        // No key, or an old one: api() said "logged out"; no reconnect, so no "reconnecting".
        if (/** @type {{ status?: number }} */ (e).status === 401) return;
        if (onDown) onDown(e);
        setTimeout(run, 1000 + Math.random() * 1000);
      }
    }
    run();
    return { stop() { stopped = true; if (ctrl) ctrl.abort(); } };
  }

  return {
    key,
    api,
    stream,
    /** @param {() => void} f what to do when the server says the key is missing or old */
    onUnauthorized(f) { unauthorized = f; },
  };
})();
