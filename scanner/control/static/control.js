// The control room's page: paints what /events pushes, in the words /api/i18n gives.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const probe = { lang: null, frames: 0 };
  window.__control = probe;  // read by the browser tests
  const t = window.pageWords.t;  // the kiosk's words.js

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
    return node;
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString(document.documentElement.lang) : "";
  }

  // A row whose cells carry their column's name: narrow screens show each row as a card.
  function row(table, attrs, values) {
    const heads = [...document.querySelectorAll(`#${table} thead th`)].map((th) => th.textContent);
    return el("tr", attrs, ...values.map(([text, cls], i) =>
      el("td", Object.assign({ "data-label": heads[i] }, cls ? { class: cls } : {}), text)));
  }

  function chart(zone, points) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${Math.max(points.length - 1, 1)} 10`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("zones.chart", { zone: zone.name }));
    const top = Math.max(1, ...points.map((p) => Math.max(p[1], p[2])));
    for (const [index, cls] of [[1, "in"], [2, "out"]]) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("class", cls);
      line.setAttribute("vector-effect", "non-scaling-stroke");
      line.setAttribute("points", points.map((p, x) => `${x},${10 - 10 * p[index] / top}`).join(" "));
      svg.append(line);
    }
    return svg;
  }

  function renderZones(zones) {
    $("zones").replaceChildren(...zones.map((z) => {
      const full = z.capacity !== null && z.inside >= z.capacity;
      const count = el("div", { class: "count", "data-inside": z.inside },
        z.capacity === null ? `${z.inside}` : `${z.inside} / ${z.capacity}`);
      const card = el("article", { class: "zone" + (full ? " full" : ""), "data-zone": z.id },
        el("h3", {}, z.name, full ? el("span", { class: "full-word" }, t("zones.full")) : ""), count);
      if (z.capacity !== null) {
        card.append(el("meter", { min: 0, max: z.capacity, value: Math.min(z.inside, z.capacity),
          high: Math.floor(z.capacity * 0.9), optimum: 0,
          "aria-label": t("zones.meter", { zone: z.name, inside: z.inside, capacity: z.capacity }) }));
      } else {
        card.append(el("div", {}, t("zones.no_capacity")));
      }
      card.append(chart(z, z.per_minute || []));
      return card;
    }));
  }

  function alarm(code) {
    if (code === "fire") return t("alarm.fire");
    if (code.startsWith("reader:")) return t("alarm.reader", { reader: code.slice(7) });
    return code;  // a gate of another version says it in its own words
  }

  function renderGates(gates) {
    document.querySelector("#gates tbody").replaceChildren(...gates.map((g) => row("gates", { "data-gate": g.gate }, [
      [g.gate], [g.zone], [t("state." + g.state), g.state],
      [g.seen_ago === null ? "" : t("gates.seen_ago", { seconds: Math.round(g.seen_ago) })],
      [Object.entries(g.readers).map(([reader, ok]) => t(ok ? "reader.ok" : "reader.lost", { reader })).join(", ")],
      [g.queue ?? ""], [g.version ?? ""],
      [g.alarms.map(alarm).join("; "), g.alarms.length ? "alarm" : ""],
    ])));
  }

  // A word for a code if the catalogue has one under any of ``keys``, else the code.
  function word(code, keys) {
    for (const key of keys) { const w = t(key); if (w !== key) return w; }
    return code;
  }

  // Who made an entry and why: "supervisor · session a1b2 · wrong read · their note ·
  // lifted: unknown"; empty for a scan. An alarm's why is its reason: said once.
  function whoText(who, reason) {
    if (!who) return "";
    const parts = [word(who.role, ["role." + who.role])];
    if (who.session) parts.push(t("who.session", { session: who.session }));
    if (who.why && who.why !== reason) parts.push(word(who.why, ["override.why." + who.why, "why." + who.why, "reason." + who.why + ".label"]));
    if (who.note) parts.push(who.note);
    if (who.denied) parts.push(t("who.denied", { reason: t("reason." + who.denied + ".label") }));
    return parts.join(" · ");
  }

  // Now: every gate's standing alarms (fire, a reader's fault); then the latest passage
  // alarms and manual releases, newest first, with who.
  function renderAlarms(doc) {
    const items = [];
    for (const g of doc.gates) {
      for (const code of g.alarms) items.push(el("li", { class: "alarm", "data-gate": g.gate }, t("alarms.now", { gate: g.gate, what: alarm(code) })));
    }
    for (const a of doc.alarms) {
      const who = whoText(a.who, a.reason);
      items.push(el("li", { class: "alarm", "data-reason": a.reason, "data-gate": a.gate },
        t("alarms.item", { time: clock(a.at), gate: a.gate, what: t("reason." + a.reason + ".label") }) + (who ? " — " + who : "")));
    }
    $("alarms").replaceChildren(...(items.length ? items : [el("li", {}, t("alarms.none"))]));
  }

  function render(doc) {
    $("clock").textContent = clock(doc.at);
    renderAlarms(doc);
    renderZones(doc.zones);
    renderGates(doc.gates);
    $("known-gates").replaceChildren(...doc.gates.map((g) => el("option", { value: g.gate })));
    $("conflict-count").textContent = doc.conflicts.count;
    $("conflicts").replaceChildren(...doc.conflicts.recent.map((c) => el("li", {}, t("conflicts.item", {
      code: c.barcode, first_gate: c.first.gate, first_at: clock(c.first.at),
      second_gate: c.second.gate, second_at: clock(c.second.at) }))));
    document.querySelector("#log tbody").replaceChildren(...doc.log.map((d) => row("log", { class: d.result }, [
      [clock(d.at)], [d.gate], [d.zone], [t("direction." + d.direction)],
      [t("reason." + d.reason + ".label")], [d.barcode, "code"], [whoText(d.who, d.reason), "who"],
    ])));
    document.body.dataset.version = doc.version;
    probe.frames += 1;
  }

  function link(state) {
    const badge = $("link");
    badge.className = "badge " + state;
    badge.textContent = t("link." + state);
  }

  function listen() {
    const stream = new EventSource("/events");
    stream.onopen = () => link("live");
    stream.onerror = () => link("lost");
    stream.onmessage = (event) => { link("live"); render(JSON.parse(event.data)); };
  }

  // -- venue commands: shown only where the control room holds the supervisor's key ------

  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) }).catch(() => null);
    const doc = r ? await r.json().catch(() => ({})) : {};
    return { ok: !!(r && r.ok), status: r ? r.status : 0, doc };
  }

  async function commands() {
    const r = await fetch("/api/commands", { cache: "no-store" }).catch(() => null);
    if (!r || !r.ok) { $("commands").hidden = true; return; }
    const doc = await r.json();
    $("commands").hidden = false;
    $("cmd-zone").replaceChildren(...doc.zones.map((z) => el("option", { value: z.id }, z.name)));
    const supervisor = doc.role === "supervisor";
    $("sup-login").hidden = supervisor;
    $("command-form").hidden = !supervisor;
  }

  function said(text, failed) {
    $("command-said").textContent = text;
    $("command-said").className = failed ? "failed" : "";
  }

  // What a button asks for: its kind, where, and the reason typed.
  function order(button) {
    const kind = button.dataset.kind;
    const reason = $("cmd-reason").value.trim();
    if (kind === "block" || kind === "unblock") {
      const ticket = $("cmd-ticket").value.trim();
      return { kind, scope: "ticket", target: ticket, reason, where: ticket };
    }
    const scope = button.dataset.all ? "venue" : document.querySelector("input[name=scope]:checked").value;
    const target = scope === "zone" ? $("cmd-zone").value : scope === "gate" ? $("cmd-gate").value.trim() : "";
    const where = scope === "venue" ? t("commands.everywhere")
      : t(scope === "zone" ? "commands.zone_named" : "commands.gate_named",
          { zone: $("cmd-zone").selectedOptions[0]?.textContent || target, gate: target });
    return { kind, scope, target, reason, where };
  }

  function confirmed(text) {
    return new Promise((resolve) => {
      const box = $("confirm");
      $("confirm-text").textContent = text;
      box.onclose = () => resolve(box.returnValue === "yes");
      box.returnValue = "";
      box.showModal();
      $("confirm-yes").focus();
    });
  }

  async function send(button) {
    const o = order(button);
    const what = t("kind." + o.kind);
    if (!await confirmed(t("commands.ask", { what, where: o.where }))) return;
    said("", false);
    const answer = await post("/api/commands", { kind: o.kind, scope: o.scope, target: o.target, reason: o.reason });
    if (answer.ok) said(t("commands.sent", { what, where: o.where }), false);
    else {
      if (answer.status === 401) await commands();  // the session ended: ask for the PIN again
      said(t("commands.failed", { error: answer.doc.error || String(answer.status) }), true);
    }
  }

  $("sup-login").onsubmit = async (event) => {
    event.preventDefault();
    const answer = await post("/api/login", { pin: $("sup-pin").value });
    $("sup-pin").value = "";
    if (answer.ok) said("", false); else said(t("commands.refused"), true);
    await commands();
    if (answer.ok && $("command-form").hidden) said(t("commands.refused"), true);
  };
  for (const button of document.querySelectorAll("#command-form button[data-kind]")) {
    button.addEventListener("click", () => send(button));
  }

  // Beyond loopback the venue is shown after the control room's PIN, as the kiosk asks it.
  async function start() {
    probe.lang = await window.pageWords.load();
    document.title = t("page.title");
    const first = await fetch("/api/venue", { cache: "no-store" }).catch(() => null);
    if (first && first.status === 401) {
      $("login").hidden = false;
      $("pin").focus();
      $("login").onsubmit = async (event) => {
        event.preventDefault();
        const answer = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ pin: $("pin").value }) }).catch(() => null);
        $("pin").value = "";
        if (answer && answer.ok) { $("login").hidden = true; $("login-said").textContent = ""; listen(); commands(); }
        else $("login-said").textContent = t("login.refused");
      };
      return;
    }
    listen();
    commands();
  }
  start();
})();
