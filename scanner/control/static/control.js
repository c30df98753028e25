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

  function render(doc) {
    $("clock").textContent = clock(doc.at);
    renderZones(doc.zones);
    renderGates(doc.gates);
    $("conflict-count").textContent = doc.conflicts.count;
    $("conflicts").replaceChildren(...doc.conflicts.recent.map((c) => el("li", {}, t("conflicts.item", {
      code: c.barcode, first_gate: c.first.gate, first_at: clock(c.first.at),
      second_gate: c.second.gate, second_at: clock(c.second.at) }))));
    document.querySelector("#log tbody").replaceChildren(...doc.log.map((d) => row("log", { class: d.result }, [
      [clock(d.at)], [d.gate], [d.zone], [t("direction." + d.direction)],
      [t("reason." + d.reason + ".label")], [d.barcode, "code"],
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
        if (answer && answer.ok) { $("login").hidden = true; $("login-said").textContent = ""; listen(); }
        else $("login-said").textContent = t("login.refused");
      };
      return;
    }
    listen();
  }
  start();
})();
