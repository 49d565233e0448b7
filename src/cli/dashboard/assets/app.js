// The dashboard page: reads the server's views, renders them, reloads on
// every change the server pushes, and sends the buttons' requests with the
// session token. No framework: the views are plain JSON rendered once.
"use strict";

const token = document.querySelector('meta[name="packit-token"]').content;
const main = document.getElementById("main");
const result = document.getElementById("result");

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const when = (t) => (t ? new Date(t).toLocaleString([], { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "—");
const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const phase = (p) => `<span class="phase ${esc(p)}">${esc(p)}</span>`;

function route() {
  const m = location.hash.match(/^#\/train\/([^/]+)\/([^/]+)$/);
  return m ? { ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]) } : null;
}

async function load() {
  const r = route();
  const url = r ? `/api/trains/${encodeURIComponent(r.ns)}/${encodeURIComponent(r.name)}` : "/api/trains";
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) { main.innerHTML = `<p class="verdict fail">${esc(body.error)}</p>`; return; }
  // Keep what the user is typing or has opened across reloads.
  const open = new Set([...document.querySelectorAll("details[open]")].map((d) => d.dataset.key));
  const inputs = Object.fromEntries([...document.querySelectorAll("input[name],select[name]")].map((i) => [i.name, i.value]));
  main.innerHTML = r ? train(body) : overview(body);
  document.querySelectorAll("details[data-key]").forEach((d) => { if (open.has(d.dataset.key)) d.open = true; });
  document.querySelectorAll("input[name],select[name]").forEach((i) => { if (inputs[i.name]) i.value = inputs[i.name]; });
  document.body.dataset.loaded = String(Date.now());
}

function overview(rows) {
  if (!rows.length) return `<h1>Trains</h1><p class="muted">No PackitDeployments you can see.</p>`;
  return `<h1>Trains</h1><table id="trains"><thead><tr><th>Train</th><th>Phase</th><th>Environments</th><th>Next window</th><th>Freeze</th><th>Last release</th></tr></thead><tbody>${rows
    .map((t) => `<tr class="train" data-name="${esc(t.name)}">
      <td><a href="#/train/${encodeURIComponent(t.namespace)}/${encodeURIComponent(t.name)}">${esc(t.namespace)}/${esc(t.name)}</a></td>
      <td>${phase(t.phase)}${t.inFlight ? `<div class="muted">${esc(t.inFlight.release)}${t.inFlight.message ? ": " + esc(t.inFlight.message) : ""}</div>` : ""}</td>
      <td>${t.environments.map((e) => `<div><b>${esc(e.name)}</b> ${esc(e.release ?? "—")}</div>`).join("")}</td>
      <td class="next-window">${t.windowOpenUntil ? "open until " + when(t.windowOpenUntil) : when(t.nextWindow)}</td>
      <td class="freeze">${esc(t.activeFreeze ?? "")}</td>
      <td class="last-release">${t.lastRelease ? `${esc(t.lastRelease.name)} ${phase(t.lastRelease.phase)}` : "—"}</td></tr>`)
    .join("")}</tbody></table>`;
}

function train(t) {
  const envs = t.environments.map((e) => e.name);
  const f = t.inFlight;
  const awaiting = f ? t.approvalRequired.filter((e) => !t.approved.includes(e)) : [];
  return `<h1>${esc(t.namespace)}/${esc(t.name)} ${phase(t.phase)}</h1>
  <div class="card" id="summary">
    <div>${f ? `In flight: <b>${esc(f.release)}</b> (${esc(f.stage)}${f.environment ? " " + esc(f.environment) : ""})${f.message ? " — " + esc(f.message) : ""}` : "Nothing in flight."}</div>
    <div>Next build: ${when(t.nextBuild)} · Next window: <span class="next-window">${t.windowOpenUntil ? "open until " + when(t.windowOpenUntil) : when(t.nextWindow)}</span>${t.activeFreeze ? ` · <b class="freeze">Frozen: ${esc(t.activeFreeze)}</b>` : ""}</div>
    <div class="muted">${t.conditions.map((c) => `${esc(c.type)}=${esc(c.status)} (${esc(c.reason)})`).join(" · ")}</div>
  </div>
  <div class="card" id="actions"><div class="row">
    <button data-action="release">Release now</button>
    ${f ? `<button data-action="promote">Promote now</button>` : ""}
    ${awaiting.map((e) => `<button class="primary" data-action="approve" data-environment="${esc(e)}">Approve for ${esc(e)}</button>`).join("")}
    <span class="muted">|</span>
    <select name="rollback-env">${envs.map((e) => `<option ${e === envs[envs.length - 1] ? "selected" : ""}>${esc(e)}</option>`).join("")}</select>
    <label>at <input type="datetime-local" name="rollback-at"></label>
    <button class="danger" data-action="rollback">Roll back</button>
    <span class="muted">|</span>
    <button data-action="hold">Hold</button><button data-action="unhold">Unhold</button>
  </div></div>
  <h2>This week</h2>${week(t.calendar)}
  <h2>Environments</h2>
  <table id="environments"><thead><tr><th>Environment</th><th>Release</th><th>Deployed</th><th>Approval</th></tr></thead><tbody>${t.environments
    .map((e) => `<tr><td>${esc(e.name)}${e.cluster ? ` <span class="muted">@${esc(e.cluster)}</span>` : ""}</td><td>${esc(e.release ?? "—")}</td><td>${when(e.deployedAt)}</td>
      <td>${t.approvalRequired.includes(e.name) ? (t.approved.includes(e.name) ? "approved" : "required") : ""}</td></tr>`)
    .join("")}</tbody></table>
  <h2>Releases</h2><div id="releases">${t.releases.map(release).join("") || `<p class="muted">No releases yet.</p>`}</div>`;
}

function week(items) {
  const today = new Date(); today.setHours(0, 0, 0, 0);
  const days = [...Array(7)].map((_, i) => new Date(today.getTime() + (i - 3) * 864e5));
  return `<div class="week" id="calendar">${days
    .map((d) => {
      const end = new Date(d.getTime() + 864e5);
      const here = items.filter((i) => new Date(i.start) < end && new Date(i.end ?? i.start) >= d);
      return `<div class="day ${d.getTime() === today.getTime() ? "today" : ""}"><h4>${d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" })}</h4>${here
        .map((i) => `<div class="cal-item ${esc(i.kind)}" title="${esc(i.label)}">${clock(i.start)}${i.end ? "–" + clock(i.end) : ""} ${esc(i.label)}</div>`)
        .join("")}</div>`;
    })
    .join("")}</div>`;
}

function release(r) {
  return `<details class="release" data-key="${esc(r.name)}" data-name="${esc(r.name)}"><summary><b>${esc(r.name)}</b> <span class="release-phase">${phase(r.phase)}</span> <span class="muted">${esc(r.trigger)} · ${when(r.created)} · ${esc(r.commits ?? "")}</span>${r.message ? ` — <span class="release-message">${esc(r.message)}</span>` : ""}</summary><div>
    <h3>Images</h3><table><tbody>${Object.entries(r.images).map(([c, i]) => `<tr><td>${esc(c)}</td><td><code>${esc(i)}</code></td></tr>`).join("") || `<tr><td class="muted">not built yet</td></tr>`}</tbody></table>
    <h3>Environments and checks</h3>${r.environments.map(progress).join("") || `<p class="muted">Not deployed anywhere yet.</p>`}
    <h3>Changelog</h3>${changelog(r.changelog)}
  </div></details>`;
}

function progress(e) {
  const verdict = (result) => (result === "Pass" ? "pass" : result === "Fail" ? "fail" : "");
  const checks = (e.checks ?? []).map((c) => `<li class="verdict ${verdict(c.result)}">metric ${esc(c.name)} ${esc(c.result)}: ${c.value != null ? `${esc(c.value)} (bounds ${esc(c.bounds)}) ` : ""}${esc(c.message)}</li>`);
  const jobs = (e.jobs ?? []).map((j) => `<li class="verdict ${verdict(j.result)}">smoke test ${esc(j.name)} ${esc(j.result)}: ${esc(j.message)}</li>`);
  return `<div class="progress" data-environment="${esc(e.name)}"><b>${esc(e.name)}</b>: deployed ${when(e.deployedAt)}${e.verifiedAt ? ", verified " + when(e.verifiedAt) : ""}${e.failedAt ? `, <span class="verdict fail">failed ${when(e.failedAt)}</span>` : ""}
    ${e.approval ? `<div>Approved ${when(e.approval.approvedAt)} by ${esc(e.approval.reportedUser ?? "unknown")} <span class="muted">(as reported by the client)</span></div>` : ""}
    ${e.message ? `<div class="muted">${esc(e.message)}</div>` : ""}${e.deployError ? `<div class="verdict fail">${esc(e.deployError)}</div>` : ""}
    ${checks.length + jobs.length ? `<ul>${checks.join("")}${jobs.join("")}</ul>` : ""}</div>`;
}

function changelog(c) {
  if (!c) return `<p class="muted">No changelog yet.</p>`;
  const entry = (e) => `<li>${e.pr ? (e.link ? `<a href="${esc(e.link)}" rel="noreferrer">#${e.pr}</a> ` : `#${e.pr} `) : ""}${esc(e.note || e.title)}</li>`;
  return `<div class="changelog">${(c.repositories ?? [])
    .map((r) => `<h4>${esc(r.name)} <span class="muted">${esc(r.commits)} commits</span></h4>
      <div class="user-visible">${r.user.length ? `<ul>${r.user.map(entry).join("")}</ul>` : `<p class="muted">No user-visible changes.</p>`}</div>
      ${r.internal.length + r.direct.length ? `<details data-key="internal-${esc(r.name)}"><summary>Changes not visible to end users (${r.internal.length + r.direct.length})</summary><ul class="internal">${[...r.internal, ...r.direct].map(entry).join("")}</ul></details>` : ""}`)
    .join("")}${(c.errors ?? []).map((e) => `<p class="verdict fail">${esc(e)}</p>`).join("")}</div>`;
}

async function act(button) {
  const r = route();
  const action = button.dataset.action;
  const body = { action };
  if (button.dataset.environment) body.environment = button.dataset.environment;
  if (action === "rollback") {
    body.environment = document.querySelector('select[name="rollback-env"]').value;
    const at = document.querySelector('input[name="rollback-at"]').value;
    if (at) body.at = new Date(at).toISOString();
  }
  const res = await fetch(`/api/trains/${encodeURIComponent(r.ns)}/${encodeURIComponent(r.name)}/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-packit-token": token },
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  result.hidden = false;
  result.className = res.ok ? "ok" : "error";
  result.textContent = res.ok ? answer.message : answer.error;
}

main.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (b) act(b);
});
window.addEventListener("hashchange", () => { result.hidden = true; load(); });

// One reload for a burst of changes.
let pending = null;
const live = document.getElementById("live");
const events = new EventSource("/api/events");
events.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
events.addEventListener("error", () => { live.textContent = "reconnecting…"; live.classList.remove("on"); });
events.addEventListener("change", () => { clearTimeout(pending); pending = setTimeout(load, 250); });
load();
