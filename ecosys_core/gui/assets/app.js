"use strict";
// The dashboard page: reads /api/v1, follows /api/v1/events, and sends changes with the session's CSRF token.
let csrf = null;

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

async function api(method, route, body) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const answer = await fetch("/api/v1/" + route, { method, headers, body: body ? JSON.stringify(body) : undefined,
                                                   credentials: "same-origin" });
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || answer.statusText);
  return data;
}

function report(error) { document.getElementById("error").textContent = error ? String(error.message || error) : ""; }

async function act(method, route, body) {
  try { report(null); return await api(method, route, body); } catch (error) { report(error); return null; }
}

function showStatus(status) {
  document.getElementById("me-name").textContent = status.device.name || "";
  document.getElementById("me-id").textContent = status.device.id || "";
  const devices = document.getElementById("devices");
  devices.replaceChildren(...(status.devices || []).map((d) => {
    const row = el("tr");
    row.append(el("td", d.name || "?"), el("td", d.id),
               el("td", (d.linked ? "linked" : "discovered") + (d.connected ? ", connected"
                 : d.last_seen ? ", last seen " + new Date(d.last_seen).toLocaleString() : "")));
    const cell = el("td");
    const button = el("button", d.linked ? "Unlink" : "Link", { type: "button" });
    button.addEventListener("click", () => act("POST", "commands/" + (d.linked ? "unlink" : "link"), { device: d.device_id }));
    cell.append(button);
    row.append(cell);
    return row;
  }));
  const linked = (status.devices || []).filter((d) => d.linked);
  const target = document.getElementById("send-device");
  const chosen = target.value;
  target.replaceChildren(...linked.map((d) => el("option", d.name || d.id, { value: d.device_id })));
  if (chosen) target.value = chosen;
  const tasks = document.getElementById("tasks");
  tasks.replaceChildren(...(status.tasks || []).map((t) => {
    const row = el("tr", null, { "data-task": t.name });
    const live = (t.members || []).filter((m) => m.state !== "removed");
    const members = live.map((m) => (m.state === "this device" ? "this device" : m.name || m.device_id.slice(0, 7))
      + (m.pending ? " (" + m.pending + " pending)" : "")).join(", ");
    const pending = (t.members || []).reduce((a, m) => a + (m.pending || 0), 0);
    row.append(el("td", t.name + (t.backup_mode ? " (backup mode)" : "")), el("td", t.root || ""),
               el("td", t.files, { "class": "files" }),
               el("td", t.last_change ? new Date(t.last_change).toLocaleString() : "never"), el("td", members),
               el("td", pending));
    const conflictCell = el("td", null, { "class": "conflicts" });
    if (t.conflicts) conflictCell.append(button("Review " + t.conflicts, () => showConflicts(t.name, 0)));
    else conflictCell.textContent = "0";
    row.append(conflictCell);
    const cell = el("td");
    const guests = linked.filter((d) => !live.some((m) => m.device_id === d.device_id));
    if (guests.length) {
      const id = "share-" + t.secure_id;
      const choice = el("select", null, { id, "aria-label": "Device to share " + t.name + " with" });
      for (const d of guests) choice.append(el("option", d.name || d.id, { value: d.device_id }));
      const button = el("button", "Share", { type: "button" });
      button.addEventListener("click", () => act("POST", "commands/share", { task: t.name, device: choice.value }));
      cell.append(choice, button);
    }
    row.append(cell);
    return row;
  }));
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes, i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function showOffers(offers) {
  const rows = document.getElementById("offers");
  rows.replaceChildren(...offers.map((o) => {
    const row = el("tr", null, { "data-offer": o.offer_id });
    const names = o.names.join(", ") + (o.count > o.names.length ? " and " + (o.count - o.names.length) + " more" : "");
    const bar = el("progress", null, { max: String(o.total || 1), value: String(o.done || 0),
                                       "aria-label": "Progress of " + names });
    const started = showOffers.started[o.offer_id] || (showOffers.started[o.offer_id] = Date.now());
    const speed = o.done && o.state !== "done" ? " " + size(o.done / Math.max((Date.now() - started) / 1000, 0.001)) + "/s" : "";
    row.append(el("td", o.direction === "send" ? "sent to" : "from"), el("td", o.peer), el("td", names),
               el("td", size(o.total)), el("td"), el("td", o.state + (o.error ? ": " + o.error : ""), { "class": "state" }));
    row.children[4].append(bar, el("span", speed));
    return row;
  }));
}
showOffers.started = {};

async function sendFiles(files, device) {
  const batch = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const bar = document.getElementById("send-progress");
  const total = files.reduce((a, f) => a + f.size, 0) || 1;
  let done = 0;
  bar.hidden = false;
  for (const file of files) {
    const path = file.webkitRelativePath || file.name;
    const answer = await fetch("/api/v1/largage/upload?batch=" + batch + "&path=" + encodeURIComponent(path),
                               { method: "POST", headers: { "X-CSRF-Token": csrf }, body: file, credentials: "same-origin" });
    if (!answer.ok) { report(new Error((await answer.json()).error)); bar.hidden = true; return; }
    done += file.size;
    bar.value = done / total;
  }
  bar.hidden = true;
  await act("POST", "largage/send", { batch, device });
}

const PAGE = 50;

function describe(v) {
  if (!v) return "gone";
  return size(v.size) + ", " + new Date(v.modified_ns / 1e6).toLocaleString() + ", by " + v.by;
}

async function showConflicts(task, offset) {
  const page = await act("POST", "commands/conflicts", { task, offset, limit: PAGE });
  if (!page) return;
  const panel = document.getElementById("conflicts");
  panel.hidden = page.total === 0 && offset === 0;
  document.getElementById("conflicts-title").textContent = "Conflicts in " + task + " (" + page.total + ")";
  document.getElementById("conflict-rows").replaceChildren(...page.conflicts.map((c) => {
    const row = el("tr", null, { "data-copy": c.copy.path });
    const keep = (which) => async () => {
      if (await act("POST", "commands/resolve_conflict", { task, copy: c.copy.path, keep: which })) showConflicts(task, offset);
    };
    const current = el("td", describe(c.current) + " ");
    if (c.current) current.append(button("Keep this", keep("current")));
    const other = el("td", describe(c.copy) + " ");
    other.append(button("Keep this", keep("copy")));
    row.append(el("td", c.current ? c.current.path : c.copy.path), current, other);
    return row;
  }));
  const pages = Math.max(1, Math.ceil(page.total / PAGE));
  document.getElementById("conflicts-page").textContent = "page " + (Math.floor(offset / PAGE) + 1) + " of " + pages;
  const prev = document.getElementById("conflicts-prev"), next = document.getElementById("conflicts-next");
  prev.disabled = offset === 0;
  next.disabled = offset + PAGE >= page.total;
  prev.onclick = () => showConflicts(task, Math.max(0, offset - PAGE));
  next.onclick = () => showConflicts(task, offset + PAGE);
}

function button(label, onClick) {
  const node = el("button", label, { type: "button" });
  node.addEventListener("click", onClick);
  return node;
}

async function magasinRun(verb, args) {
  await act("POST", "commands/magasin." + verb, args);
}

async function showInstalled() {
  const rows = await act("POST", "commands/magasin.installed", {});
  if (!rows) return;
  document.getElementById("magasin-installed").replaceChildren(...rows.map((r) => {
    const row = el("tr", null, { "data-app": r.name });
    const cell = el("td");
    if (r.kind === "app") cell.append(button("Update", () => magasinRun("update", { app: r.name })));
    cell.append(button("Uninstall", () => magasinRun("uninstall", { app: r.name })));
    row.append(el("td", r.name), el("td", r.version || r.kind), cell);
    return row;
  }));
}

async function searchMagasin(term) {
  const hits = await act("POST", "commands/magasin.search", { term });
  if (!hits) return;
  document.getElementById("magasin-results").replaceChildren(...hits.map((h) => {
    const row = el("tr", null, { "data-app": h.name });
    const actions = el("td");
    actions.append(button("Details", () => showDetails(h.name)), button("Install", () => magasinRun("install", { app: h.name })));
    row.append(el("td", h.name), el("td", h.kind), el("td", h.description || ""), actions);
    return row;
  }));
}

async function showDetails(name) {
  const info = await act("POST", "commands/magasin.info", { app: name });
  if (!info) return;
  const box = document.getElementById("magasin-details");
  const lines = [info.name + " (" + info.kind + ")"];
  if (info.description) lines.push(info.description);
  if (info.versions) lines.push("Versions: " + info.versions.join(", ") + "; newest " + info.latest);
  lines.push(info.installed ? "Installed here" + (typeof info.installed === "string" ? ": " + info.installed : "")
             + (info.update ? " (an update is available)" : "") : "Not installed here");
  box.replaceChildren(...lines.map((line) => el("p", line)));
}

function showJobs(jobs) {
  document.getElementById("magasin-jobs").replaceChildren(...jobs.map((j) => {
    const item = el("li", null, { "data-job": j.job_id, "data-state": j.state });
    item.append(el("span", j.action + " " + j.app + ": " + j.state + (j.message ? " — " + j.message : "")));
    if (j.state === "running" && j.total) {
      item.append(el("progress", null, { max: String(j.total), value: String(j.done), "aria-label": j.action + " " + j.app }));
    }
    return item;
  }));
  if (jobs.some((j) => j.state !== "running" && !showJobs.shown.has(j.job_id))) {
    jobs.forEach((j) => { if (j.state !== "running") showJobs.shown.add(j.job_id); });
    showInstalled();
  }
}
showJobs.shown = new Set();

function showPrompts(prompts) {
  const list = document.getElementById("prompts");
  document.getElementById("no-prompts").hidden = prompts.length > 0;
  list.replaceChildren(...prompts.map((p) => {
    const item = el("li");
    item.append(el("strong", p.flag + " "), el("span", p.context || ""));
    const form = el("form");
    if (p.flag === "CHOOSELINKPATH") {
      const label = el("label", "Folder ", { for: "answer-" + p.id });
      const field = el("input", null, { id: "answer-" + p.id, name: "answer", type: "text", required: "" });
      const submit = el("button", "Use this folder", { type: "submit" });
      form.append(label, field, submit);
      form.addEventListener("submit", (e) => { e.preventDefault(); act("POST", "prompts/answer", { prompt: p.id, answer: field.value }); });
    } else {
      const offer = p.flag === "OTDL" || p.flag === "MOTDL";
      for (const [label, value] of offer ? [["Accept", "yes"], ["Decline", "no"]] : [["Yes", "yes"], ["No", "no"]]) {
        const button = el("button", label, { type: "button" });
        button.addEventListener("click", () => act("POST", "prompts/answer", { prompt: p.id, answer: value }));
        form.append(button);
      }
    }
    item.append(form);
    if (window.Notification && Notification.permission === "granted" && !showPrompts.seen.has(p.id)) {
      new Notification("Ecosys: " + p.flag, { body: p.context || "" });
    }
    showPrompts.seen.add(p.id);
    return item;
  }));
}
showPrompts.seen = new Set();

async function start() {
  const state = document.getElementById("connection");
  try {
    csrf = (await api("GET", "session")).csrf;
  } catch (error) {
    state.textContent = "Not signed in: run 'ecosys gui' on this device.";
    return;
  }
  document.getElementById("me-qr").src = "/api/v1/device/qr.svg";
  document.getElementById("add-task").addEventListener("submit", async (e) => {
    e.preventDefault();
    const done = await act("POST", "commands/add_task", { path: document.getElementById("add-path").value,
      name: document.getElementById("add-name").value, backup: document.getElementById("add-backup").checked });
    if (done) e.target.reset();
  });
  if (window.Notification && Notification.permission === "default") Notification.requestPermission();
  const events = new EventSource("/api/v1/events");
  events.onopen = () => { state.textContent = "Live"; };
  events.onerror = () => { state.textContent = "Reconnecting…"; };
  events.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  events.addEventListener("prompts", (e) => showPrompts(JSON.parse(e.data)));
  events.addEventListener("offers", (e) => showOffers(JSON.parse(e.data)));
  const picked = () => [...document.getElementById("send-files").files, ...document.getElementById("send-folder").files];
  document.getElementById("send-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const files = picked();
    if (!files.length) { report(new Error("pick or drop files first")); return; }
    await sendFiles(files, document.getElementById("send-device").value);
    e.target.reset();
  });
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    sendFiles([...e.dataTransfer.files], document.getElementById("send-device").value);
  });
  document.getElementById("open-received").addEventListener("click", () => act("POST", "largage/open", {}));
  try {
    await api("POST", "commands/magasin.installed", {});
    document.getElementById("magasin").hidden = false;
    events.addEventListener("magasin.jobs", (e) => showJobs(JSON.parse(e.data)));
    document.getElementById("magasin-search").addEventListener("submit", (e) => {
      e.preventDefault();
      searchMagasin(document.getElementById("magasin-term").value);
    });
    showInstalled();
    searchMagasin("");
  } catch (error) { /* no Magasin plugin in this daemon */ }
}

document.addEventListener("DOMContentLoaded", start);
