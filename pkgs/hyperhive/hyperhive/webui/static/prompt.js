// @ts-check
// hyperhive per-agent web UI: the operator's prompt, its /commands and Tab completion
// (after term.js).
"use strict";

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

// -- the prompt ------------------------------------------------------------------------------

/** @param {string} [intro] a line above the help */
function helpLines(intro) {
  const lines = intro ? [intro, ...HELP] : HELP;
  append([line("k-help", "?", lines.join("\n"))], { count: false });
  if (pending) pending.stuck = true; // the operator asked: show it
}

/**
 * Run a /command; false if there is no such command (the text stays in the prompt).
 * @param {string} text
 */
async function runCommand(text) {
  const [cmd, ...rest] = text.trim().split(/\s+/);
  const arg = rest.join(" ");
  switch (cmd) {
    case "/help": helpLines(); return true;
    case "/model":
      if (!arg) {
        const now = ui.state ? `${ui.state.model} (default ${ui.state.default_model})` : "unknown (the state did not load)";
        helpLines(`model now: ${now} — /model <name> to change`);
        return true;
      }
      hiveUI.toast(`model: ${(await post("/api/model", { model: arg })).model}`);
      return true;
    case "/cancel": await post("/api/cancel"); hiveUI.toast("cancel sent"); return true;
    case "/compact": await post("/api/compact"); hiveUI.toast("compaction queued"); return true;
    case "/new-session": await post("/api/new-session"); hiveUI.toast("the next turn starts a new session"); return true;
    default: helpLines(`unknown command ${cmd}`); return false;
  }
}

async function submitPrompt() {
  const input = /** @type {HTMLTextAreaElement} */ ($("#input"));
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
      if (j.queued > 1) hiveUI.toast(`queued (${j.queued} waiting)`);
    }
  } catch (e) {
    hiveUI.toast(/** @type {Error} */ (e).message, true); // the text stays in the prompt
  } finally {
    form.classList.remove("busy");
    autosize();
  }
}

/**
 * Tab on the prompt: complete a /command or a model name; false if there is nothing to
 * complete (the Tab then moves the focus as usual).
 * @param {HTMLTextAreaElement} input
 */
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

