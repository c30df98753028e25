"use strict";
// Every text a person reads, by language (the page's lang, else English).
const TEXT = {
  en: {
    title: "Control room", connecting: "connecting…", live: "live", lost: "connection lost",
    zones: "Zones", gates: "Gates", gate: "Gate", zone: "Zone", state: "State",
    last_seen: "Last seen", readers: "Readers", queue: "Upload queue", version: "Version",
    alarms: "Alarms", conflicts: "Conflicts", log: "Recent decisions", time: "Time",
    direction: "Way", reason: "Decision", code: "Code", online: "online", alone: "alone",
    inside: "inside", of: "of", no_cap: "no capacity set", ago: "s ago", full: "full",
    per_minute: "entries and exits per minute", reading: "reading", lost_reader: "lost",
  },
};
const T = TEXT[document.documentElement.lang] || TEXT.en;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function chart(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${Math.max(points.length - 1, 1)} 10`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", T.per_minute);
  const top = Math.max(1, ...points.map(p => Math.max(p[1], p[2])));
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
  const box = document.getElementById("zones");
  box.replaceChildren(...zones.map(z => {
    const full = z.capacity !== null && z.inside >= z.capacity;
    const card = el("article", {class: "zone" + (full ? " full" : ""), "data-zone": z.id},
      el("h3", {}, z.name),
      el("div", {class: "count", "data-inside": z.inside},
         z.capacity === null ? `${z.inside}` : `${z.inside} / ${z.capacity}`));
    if (z.capacity !== null) {
      card.append(el("meter", {min: 0, max: z.capacity, value: Math.min(z.inside, z.capacity),
                               high: Math.floor(z.capacity * 0.9), optimum: 0,
                               "aria-label": `${z.name}: ${z.inside} ${T.of} ${z.capacity}`}));
    } else {
      card.append(el("div", {}, T.no_cap));
    }
    card.append(chart(z.per_minute || []));
    return card;
  }));
}

function renderGates(gates) {
  const body = document.querySelector("#gates tbody");
  body.replaceChildren(...gates.map(g => el("tr", {"data-gate": g.gate},
    el("td", {}, g.gate), el("td", {}, g.zone),
    el("td", {class: g.state}, T[g.state] || g.state),
    el("td", {}, g.seen_ago === null ? "" : `${Math.round(g.seen_ago)} ${T.ago}`),
    el("td", {}, Object.entries(g.readers).map(([n, ok]) => `${n}: ${ok ? T.reading : T.lost_reader}`).join(", ")),
    el("td", {}, g.queue ?? ""), el("td", {}, g.version ?? ""),
    el("td", {class: g.alarms.length ? "alarm" : ""}, g.alarms.join("; ")))));
}

function render(doc) {
  document.getElementById("clock").textContent = clock(doc.at);
  renderZones(doc.zones);
  renderGates(doc.gates);
  document.getElementById("conflict-count").textContent = doc.conflicts.count;
  document.getElementById("conflicts").replaceChildren(...doc.conflicts.recent.map(c =>
    el("li", {}, `${c.barcode}: ${c.first.gate} ${clock(c.first.at)} / ${c.second.gate} ${clock(c.second.at)}`)));
  document.querySelector("#log tbody").replaceChildren(...doc.log.map(d =>
    el("tr", {class: d.result}, el("td", {}, clock(d.at)), el("td", {}, d.gate),
       el("td", {}, d.zone), el("td", {}, d.direction), el("td", {}, d.reason),
       el("td", {}, d.barcode))));
  document.body.dataset.version = doc.version;
}

function link(state) {
  const badge = document.getElementById("link");
  badge.className = "badge " + state;
  badge.textContent = T[state === "online" ? "live" : state] || state;
}

for (const node of document.querySelectorAll("[data-text]")) {
  node.textContent = T[node.dataset.text] || node.textContent;
}
const stream = new EventSource("/events");
stream.onopen = () => link("online");
stream.onerror = () => link("lost");
stream.onmessage = event => { link("online"); render(JSON.parse(event.data)); };
