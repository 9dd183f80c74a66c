// @ts-check
// hyperhive per-agent web UI: how each event is drawn in the terminal (after term.js).
"use strict";

/**
 * A tool call in one line: the tool's name and its main argument.
 * @param {string} name
 * @param {Record<string, any> | undefined} input
 */
function toolView(name, input) {
  const frag = document.createDocumentFragment();
  const i = input || {};
  /** @param {string} t */
  const tn = (t) => el("span", "tn", t);
  /** @param {string} t */
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

/** @param {unknown} content a tool result's content: text, or a list of blocks */
function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((b) => (b && b.type === "text" ? b.text
      : b && b.type === "tool_reference" ? `(loaded ${b.tool_name})` : JSON.stringify(b))).join("\n");
  }
  return JSON.stringify(content);
}

/**
 * The terminal lines of one line of claude's stream-json (`live`: it just happened).
 * @param {HiveEvent} ev
 * @param {boolean} live
 * @returns {HTMLElement[]}
 */
function renderStream(ev, live) {
  const p = ev.payload;
  /** @type {HTMLElement[]} */
  const out = [];
  if (p.type === "system") {
    if (p.subtype === "init") {
      const mcp = (p.mcp_servers || []).map((/** @type {{ name: string, status: string }} */ s) => `${s.name} ${s.status === "connected" ? "✓" : s.status}`).join(", ");
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
          /** @type {Element} */
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

/**
 * @param {HiveEvent} ev
 * @param {boolean} live
 * @returns {HTMLElement[]}
 */
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

/**
 * Apply an event to the state row (live and history alike), then draw it.
 * @param {HiveEvent} ev
 * @param {boolean} live
 */
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

