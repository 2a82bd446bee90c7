// The class on one page: state arrives as server-sent events (/api/events);
// actions POST to /api/* and ask for confirmation first. No library, no CDN.
"use strict";
const $ = (sel) => document.querySelector(sel);
const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) =>
  ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const SYMBOL = {pass: "✓", fail: "✗", error: "?"};

async function act(path, body, question) {
  if (!confirm(question)) return;
  note(`${question.replace(/\?$/, "")}…`);
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) alert(`${data.error}${data.hint ? "\n" + data.hint : ""}`);
  return data;
}

function note(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("#activity").prepend(item);
}

function vmCell(vm) {
  const stage = vm.state === "running" && vm.stage ? ` <span class="stage">${esc(vm.stage)}</span>` : "";
  const ready = vm.ready_after != null ? ` <span class="stage">ready ${vm.ready_after.toFixed(1)} s</span>` : "";
  const snaps = vm.snapshots.length ? ` <span class="stage">📷 ${esc(vm.snapshots.join(", "))}</span>` : "";
  return `<div class="vm" data-vm="${esc(vm.name)}"><b>${esc(vm.name)}</b> ` +
    `<span class="${esc(vm.state.split(" ")[0])}">${esc(vm.state)}</span>${stage}${ready} ` +
    `<code>${esc(vm.ssh || "-")}</code>${snaps}</div>`;
}

function containersCell(rows) {
  if (!rows) return `<span class="muted">-</span>`;
  return rows.map((c) => `<div>${esc(c.vm)}/${esc(c.name)} <span class="${c.state === "running" ? "running" : "off"}">` +
    `${esc(c.state)}</span> ${esc((c.ports || []).join(" "))}</div>`).join("") || `<span class="muted">none</span>`;
}

function checksCell(checks, copy) {
  if (!checks) return `<span class="muted">not checked</span>`;
  const mine = checks.copies.find((c) => c.lab === copy.lab);
  if (!mine) return `<span class="muted">-</span>`;
  const marks = mine.outcomes.map((o) => `<span class="${o.status}" title="${esc(o.check)}: ${esc(o.reason)}">` +
    `${SYMBOL[o.status]}</span>`).join("");
  return `<span class="pts">${mine.earned} / ${checks.total_points}</span> ${marks}`;
}

function render(state) {
  const labs = state.labs.map((lab) => {
    const rows = lab.copies.map((copy) => {
      const vms = copy.vms.map(vmCell).join("") || `<span class="muted">no VMs</span>`;
      const resets = copy.vms.map((vm) => `<button data-act="reset" data-lab="${esc(lab.name)}" ` +
        `data-copy="${esc(copy.copy)}" data-vm="${esc(vm.name)}">reset ${esc(vm.name)}</button> ` +
        `<button data-act="terminal" data-lab="${esc(copy.lab)}" data-vm="${esc(vm.name)}">terminal ${esc(vm.name)}</button>`).join(" ");
      const check = `<button data-act="check" data-lab="${esc(lab.name)}" data-copy="${esc(copy.copy)}">check</button>`;
      const list = `<button data-act="containers" data-lab="${esc(copy.lab)}">containers</button>`;
      // the copy's own per-copy values, for the instructor (a student never sees this page)
      const own = Object.entries(copy.values || {}).map(([k, v]) =>
        `<div class="stage values">${esc(k)} = <code>${esc(v)}</code></div>`).join("") +
        ((copy.attempts || []).length ? `<div class="stage attempts">${copy.attempts.length} own check(s), last ` +
          `${copy.attempts[copy.attempts.length - 1].earned} / ${copy.attempts[copy.attempts.length - 1].total}</div>` : "");
      return `<tr data-copy="${esc(copy.copy || copy.lab)}"><th>${esc(copy.copy || copy.lab)}${own}</th><td>${vms}</td>` +
        `<td>${containersCell(copy.containers)}</td><td>${checksCell(lab.checks, copy)}</td>` +
        `<td>${check} ${resets} ${list}</td></tr>`;
    }).join("");
    const when = lab.checks ? ` · last check ${esc(lab.checks.created)}` : "";
    const sum = lab.summary;
    const glance = `<p class="summary">${sum.running} of ${sum.vms} VMs running · ${sum.ready} of ` +
      `${sum.copies} copies ready` + (lab.checks ? ` · full marks ${sum.full_marks} of ${sum.checked}` +
      (sum.could_not_run ? ` · <span class="error">${sum.could_not_run} could not be checked</span>` : "") : "") +
      `</p>`;
    return `<div class="lab" data-lab="${esc(lab.name)}"><h2>${esc(lab.name)} <small>${lab.is_class ? "class of " +
      lab.copies.length + " copies" : "lab"}${when}</small></h2>` +
      `<div class="actions"><button data-act="check-all" data-lab="${esc(lab.name)}">check ${lab.is_class ? "the class" : "the lab"}</button>` +
      `<a href="api/handout.zip?lab=${encodeURIComponent(lab.name)}">hand-outs (zip)</a>` +
      `<a href="api/checks.csv?lab=${encodeURIComponent(lab.name)}">checks (CSV)</a></div>` + glance +
      `<table><thead><tr><th>copy</th><th>VMs</th><th>containers</th><th>checks</th><th></th></tr></thead>` +
      `<tbody>${rows}</tbody></table></div>`;
  }).join("");
  replace("#labs", labs || `<p class="muted">No labs in this data dir yet: <code>labctl up LAB.yaml</code>.</p>`);
  filter();
  replace("#bench tbody", state.bench.map((b) => `<tr><td>${esc(b.run_id)}</td><td>${esc(b.lab)}</td>` +
    `<td>${esc(b.created)}</td><td>${esc(Object.entries(b.headline).map(([rt, r]) => `${rt} ×${r}`).join(", "))}</td></tr>`).join(""));
  replace("#activity", state.activity.slice().reverse().map((a) =>
    `<li>${esc(a.what)}: <b>${esc(a.stage)}</b> ${esc(a.detail)}</li>`).join(""));
}

// A part of the page is rebuilt only when its content changed: a button the
// instructor is about to press stays the same button while other parts update.
const shown = {};
function replace(selector, html) {
  if (shown[selector] === html) return;
  shown[selector] = html;
  $(selector).innerHTML = html;
}

// Thirty copies: show only the rows whose copy (a student's name or number) matches.
function filter() {
  const wanted = $("#filter").value.trim().toLowerCase();
  document.querySelectorAll("tr[data-copy]").forEach((row) => {
    row.hidden = wanted !== "" && !row.dataset.copy.toLowerCase().includes(wanted);
  });
}
$("#filter").addEventListener("input", filter);

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-act]");
  if (!button) return;
  const {act: what, lab, copy, vm} = button.dataset;
  if (what === "terminal") openTerminal($("#terminal"),
    `api/terminal?lab=${encodeURIComponent(lab)}&vm=${encodeURIComponent(vm)}`, `${lab}.${vm}`);
  if (what === "check") await act("api/check", {lab, copy}, `Run the checks of ${copy || lab}?`);
  if (what === "check-all") await act("api/check", {lab}, `Run the checks of every copy of ${lab}?`);
  if (what === "reset") await act("api/reset", {lab, copy, vm},
                                  `Reset VM ${vm} of ${copy || lab}? Everything in it is lost.`);
  if (what === "containers") await act("api/containers", {lab}, `List the containers of ${lab}?`);
});

function connect() {
  const source = new EventSource("api/events");
  source.addEventListener("state", (event) => {
    $("#live").textContent = "live"; $("#live").className = "on";
    render(JSON.parse(event.data));
  });
  source.onerror = () => { $("#live").textContent = "reconnecting…"; $("#live").className = "off"; };
}
connect();
