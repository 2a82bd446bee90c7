// A student's own lab: its VMs, the checks they may run, their attempts.
// The copy comes from the token the page was opened with (a cookie since):
// nothing here names a lab or a copy. No library, no CDN.
"use strict";
const $ = (sel) => document.querySelector(sel);
const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) =>
  ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const SYMBOL = {pass: "✓", fail: "✗", error: "?"};
let busy = false;

async function post(path, body, question, said) {
  if (question && !confirm(question)) return null;
  if (busy) return null;
  busy = true;
  $("#error").textContent = "";
  $("#result").textContent = "working…";
  try {
    const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) { $("#error").textContent = `${data.error}${data.hint ? " (" + data.hint + ")" : ""}`; return null; }
    if (said) $("#done").textContent = said;
    return data;
  } finally { busy = false; $("#result").textContent = ""; await refresh(); }
}

function render(state) {
  $("#which").textContent = `${state.group} · ${state.copy}`;
  $("#vms tbody").innerHTML = state.vms.map((vm) =>
    `<tr data-vm="${esc(vm.name)}"><td><b>${esc(vm.name)}</b></td><td class="${esc(vm.state.split(" ")[0])}">${esc(vm.state)}</td>` +
    `<td><code>${esc(vm.ssh || "-")}</code></td><td>` +
    `<button data-act="terminal" data-vm="${esc(vm.name)}">terminal</button> ` +
    `<button data-act="reset" data-vm="${esc(vm.name)}">reset</button> ` +
    `<button data-act="save" data-vm="${esc(vm.name)}">save snapshot</button> ` +
    (vm.snapshots || []).map((s) => `<button data-act="restore" data-vm="${esc(vm.name)}" data-name="${esc(s)}">restore ${esc(s)}</button>`).join(" ") +
    `</td></tr>`).join("") || `<tr><td colspan="4" class="muted">no VMs</td></tr>`;
  const latest = state.attempts.length ? state.attempts[state.attempts.length - 1] : null;
  $("#checks tbody").innerHTML = state.checks.map((c) => {
    const o = latest && latest.outcomes.find((x) => x.check === c.name);
    const mark = o ? `<span class="${esc(o.status)}" title="${esc(o.reason)}">${SYMBOL[o.status] || "?"} ${esc(o.status)}</span>` : `<span class="muted">not yet</span>`;
    return `<tr data-check="${esc(c.name)}"><td>${esc(c.name)}<div class="stage">${esc(c.description)}</div></td><td>${c.points}</td><td>${mark}</td></tr>`;
  }).join("") || `<tr><td colspan="3" class="muted">no checks to run yourself</td></tr>`;
  $("#attempts").innerHTML = state.attempts.slice().reverse().map((a) =>
    `<li>${esc(a.created)}: <b>${a.earned} / ${a.total}</b></li>`).join("");
}

async function refresh() {
  const response = await fetch("student/api/state");
  if (!response.ok) { $("#live").textContent = "not allowed"; $("#live").className = "off"; return; }
  $("#live").textContent = "live"; $("#live").className = "on";
  render(await response.json());
}

$("#containers").addEventListener("click", async () => {
  const data = await post("student/api/containers", {}, null, "containers listed");
  if (!data) return;
  $("#containerlist tbody").innerHTML = data.containers.map((c) =>
    `<tr><td>${esc(c.vm)}/${esc(c.name)}</td><td class="${c.state === "running" ? "running" : "off"}">${esc(c.state)}</td>` +
    `<td>${esc(c.image)}</td><td>${esc((c.ports || []).join(" "))}</td></tr>`).join("") ||
    `<tr><td class="muted">none</td></tr>`;
});
$("#check").addEventListener("click", () => post("student/api/check", {}, null, "checked"));
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-act]");
  if (!button) return;
  const {act, vm, name} = button.dataset;
  if (act === "terminal") openTerminal($("#terminal"), `student/terminal?vm=${encodeURIComponent(vm)}`, vm);
  if (act === "reset") await post("student/api/reset", {vm}, `Reset ${vm}? Everything in it is lost.`,
                                  `reset ${vm}: done`);
  if (act === "save") {
    const chosen = prompt("A name for the snapshot (e.g. before-nginx):");
    if (chosen) await post("student/api/snapshot", {vm, name: chosen, action: "save"}, null,
                           `snapshot ${chosen} of ${vm}: saved`);
  }
  if (act === "restore") await post("student/api/snapshot", {vm, name, action: "restore"},
                                    `Put ${vm} back to snapshot ${name}?`, `${vm}: back to ${name}`);
});
refresh();
setInterval(() => { if (!busy) refresh(); }, 2000);
