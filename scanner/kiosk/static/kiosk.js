// The kiosk page: paints what /events pushes, in the words /api/i18n gives. No framework.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const probe = { latencies: [], state: null, connected: false, lang: null, alarms: [], info: null };
  window.__kiosk = probe;  // read by the browser tests
  const RECENT = 20;
  let state = null, stateAt = 0, resetTimer = 0, shown = null, audio = null, pending = null;
  let recent = [];
  let infoMode = false, overrideReasons = [];
  // Held tickets wait for the steward; alarms, releases and overrides are journal entries too.
  const NOT_OVERRIDABLE = ["ACTION_REQUIRED", "MALFORMED_READ"];

  const t = window.pageWords.t;  // words.js

  // -- feedback: beeps from WebAudio and a vibration, as /me allows --------------------------
  function feedback(granted) {
    const fb = (state && state.feedback) || { sound: true, haptic: true };
    if (fb.haptic && navigator.vibrate) navigator.vibrate(granted ? 120 : [90, 60, 90, 60, 90]);
    if (!fb.sound) return;
    try {
      audio = audio || new AudioContext();
      const tones = granted ? [[880, 0, 0.12]] : [[330, 0, 0.12], [330, 0.18, 0.12], [330, 0.36, 0.12]];
      for (const [hz, at, len] of tones) {
        const osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = hz; gain.gain.value = 0.2;
        osc.connect(gain).connect(audio.destination);
        const start = audio.currentTime + at;
        osc.start(start); osc.stop(start + len);
      }
    } catch (e) { /* no audio device: the screen still says it */ }
  }
  // Chromium plays nothing before someone has touched the page (its autoplay policy; only
  // the gate's own kiosk browser is started without it): a context made at a decision
  // nobody touched for stays suspended and every beep is silent. The first touch, click or
  // key makes or resumes it; each one tries again until it runs.
  const GESTURES = ["pointerdown", "pointerup", "touchend", "keydown"];
  function wakeAudio() {
    const fb = (state && state.feedback) || { sound: true, haptic: true };
    if (!fb.sound) return;
    try {
      audio = audio || new AudioContext();
      audio.resume().then(() => {
        if (audio.state === "running") for (const kind of GESTURES) removeEventListener(kind, wakeAudio, true);
      }, () => {});
    } catch (e) { /* no audio device: the screen still says it */ }
  }
  for (const kind of GESTURES) addEventListener(kind, wakeAudio, true);

  // -- fitting: the word first, then the rest of the result (--k) until nothing overflows --
  // The word is read from across the lane: 18 vh, never under 15 vh on a kiosk screen. A
  // word still too wide at 15 vh is narrowed (scaleX), not shrunk, down to SQUEEZE (a Dutch
  // GEANNULEERD on a 480 px portrait screen needs 0.59); only a screen narrower than any
  // kiosk's (a phone) gets smaller letters after that. Returns [size, floor] in px.
  const WORD_VH = 18, WORD_FLOOR_VH = 15, SQUEEZE = 0.58;
  function fitWord() {
    const head = $("head"), word = $("word"), vh = innerHeight / 100;
    word.style.transform = ""; word.style.width = ""; word.style.maxWidth = ""; word.style.flex = "";
    let size = Math.min(Math.max(30, WORD_VH * vh), 210);
    const floor = Math.min(size, WORD_FLOOR_VH * vh);
    const set = (px) => { size = px; word.style.fontSize = px.toFixed(1) + "px"; };
    // scrollWidth: the longest part between spaces (a phrase wraps there, a word never does).
    const over = () => word.scrollWidth / head.clientWidth;
    set(size);
    while (size > floor && over() > 1.002) set(Math.max(floor, size / Math.min(over(), 1.05)));
    while (size > 12 && over() > 1 / SQUEEZE) set(size * 0.95);
    const wide = over();
    if (wide > 1.002) {
      const squeeze = 0.995 / wide;  // a hair inside: sub-pixel text must not touch the edge
      word.style.maxWidth = "none"; word.style.flex = "none";  // wider than its line, on purpose
      word.style.width = (head.clientWidth / squeeze).toFixed(1) + "px";
      word.style.transform = "scaleX(" + squeeze.toFixed(3) + ")";
    }
    return [size, floor];
  }
  function fit() {
    const box = $("result"), root = document.documentElement.style;
    root.setProperty("--k", "1");
    const [size, floor] = fitWord();
    let k = 1;
    const wide = () => [...box.children].some((el) => el.scrollWidth > el.clientWidth + 1);
    while (k > 0.3 && (box.scrollHeight > box.clientHeight + 1 || box.scrollWidth > box.clientWidth + 1 || wide())) {
      k -= 0.06; root.setProperty("--k", k.toFixed(2));
      // A crowded result takes the word down with the rest, but never under its floor.
      $("word").style.fontSize = Math.max(Math.min(size, floor), size * k).toFixed(1) + "px";
    }
  }

  // -- the result ----------------------------------------------------------------------------
  function paint(cls, icon, word, fields) {
    $("result").className = cls;
    $("icon").setAttribute("href", "#icon-" + icon);
    $("word").textContent = word;
    for (const key of ["holder", "ticket", "seat", "message", "next", "hint"]) $(key).textContent = fields[key] || "";
    const mark = $("offline-mark");
    mark.hidden = !fields.offline; mark.textContent = fields.offline || "";
    const bar = $("sync-bar");
    bar.hidden = fields.progress == null;
    if (fields.progress != null) bar.value = fields.progress;
    fit();
  }

  function idle() {
    // What the gate can do now, in place of READY when it cannot read or decide from a whole store.
    if (!probe.connected) return ["down", "cross", t("word.no_gate"), { message: t("idle.no_gate") }];
    const s = state || {};
    if (s.syncing) {
      const sy = s.syncing;
      const fields = { message: sy.total ? t("idle.syncing", { done: sy.done, total: sy.total })
                                          : t("idle.syncing_unknown", { done: sy.done }),
                       hint: t("idle.syncing_hint"), progress: sy.total ? sy.done / sy.total : null };
      if (sy.eta_s != null) fields.next = t("idle.time_left", { minutes: Math.max(1, Math.ceil(sy.eta_s / 60)) });
      return ["syncing", "sync", t("word.syncing"), fields];
    }
    if (s.reader_connected === false) return ["warn", "unplugged", t("word.no_reader"), { message: t("idle.reader_lost") }];
    return ["ready", "ready", t("word.ready"), { message: t("idle.scan"), offline: state && state.online === false ? linkText() : null }];
  }

  function ready() {
    shown = null;
    $("annul").hidden = true;
    $("held").hidden = true;
    $("override").hidden = true;
    paint(...idle());
  }

  function seatText(parts) {
    if (!parts) return "";
    return [parts.area, parts.row && t("seat.row", { row: parts.row }), parts.seat && t("seat.seat", { seat: parts.seat })]
      .filter(Boolean).join(" · ");
  }

  function decisionFields(m) {
    // Overrides and confirmations are grants a person made: they say so.
    const said = !m.granted || m.reason === "OVERRIDDEN" || m.reason === "CONFIRMED";
    const args = { gate: m.use_gate, check: m.check };
    return {
      holder: m.holder, ticket: m.ticket_type, seat: seatText(m.seat_parts),
      message: said ? t("reason." + m.reason + ".detail", args) : "",
      next: said ? t("reason." + m.reason + ".next", args) : "",
      offline: m.decided_offline ? t("offline.decision", { age: age(dataAge()) }) : null,
    };
  }

  function showDecision(m) {
    const recv = performance.now();
    shown = m;
    remember(m);
    // The buttons first: the fit that paint ends with must see them.
    $("annul").hidden = !m.opened;
    const held = m.reason === "ACTION_REQUIRED";
    $("held").hidden = !held;
    $("override").hidden = m.granted || NOT_OVERRIDABLE.includes(m.reason);
    paint(m.colour, m.icon, t(m.word_key), decisionFields(m));
    clearTimeout(resetTimer);
    // A held ticket stays until its answer arrives (the confirmation or refusal replaces it).
    if (!held) resetTimer = setTimeout(ready, 1000 * ((state && state.reveal_s) || 3) * ($("override").hidden ? 1 : 3));
    // rAF runs just before the frame is painted; the task after it runs once it was.
    requestAnimationFrame(() => setTimeout(() => {
      const painted = performance.now();
      probe.latencies.push({ scan_id: m.scan_id, colour: m.colour, recv_ms: recv, painted_ms: painted,
                             painted_epoch_ms: performance.timeOrigin + painted, sent_at: m.sent_at });
    }, 0));
    feedback(m.granted);
  }

  // -- alarms and information scans -------------------------------------------------------
  function showAlarm(m) {
    probe.alarms.push(m);
    shown = m;
    const release = m.reason === "MANUAL_RELEASE";
    $("annul").hidden = true; $("held").hidden = true; $("override").hidden = true;
    paint(release ? "blue" : "red", release ? "exit" : "cross", t(m.word_key),
          { message: t("reason." + m.reason + ".detail"), next: t("reason." + m.reason + ".next") });
    clearTimeout(resetTimer);
    resetTimer = setTimeout(ready, 1000 * ((state && state.reveal_s) || 3) * (release ? 1 : 3));
    if (!release) feedback(false);
  }
  function showInfo(m) {
    probe.info = m;
    shown = m;
    $("annul").hidden = true; $("held").hidden = true; $("override").hidden = true;
    paint("info", m.icon, t("word.info") + " · " + t(m.word_key), decisionFields(m));
    clearTimeout(resetTimer);
    resetTimer = setTimeout(ready, 2000 * ((state && state.reveal_s) || 3));
  }
  function setInfoMode(on) {
    infoMode = on;
    $("info-mode").setAttribute("aria-pressed", String(on));
    $("info-on").hidden = !on;
    fit();
  }

  // -- recent scans: kept from the stream, replaced by the gate's own list when opened -------
  function remember(m) {
    recent = [Object.assign({ passed: null, annulled: false }, m), ...recent.filter((r) => r.scan_id !== m.scan_id)].slice(0, RECENT);
    if ($("recent").open) renderRecent();
  }
  function renderRecent() {
    $("recent-title").textContent = t("recent.title", { n: RECENT });
    const list = $("recent-list");
    if (!recent.length) { const li = document.createElement("li"); li.textContent = t("recent.empty"); list.replaceChildren(li); return; }
    list.replaceChildren(...recent.map((r) => {
      const li = document.createElement("li");
      const when = new Date(r.sent_at).toLocaleTimeString(probe.lang || undefined);
      const word = document.createElement("b");
      word.className = r.granted && !r.annulled ? "ok" : "no";
      word.textContent = (r.granted && !r.annulled ? "✔ " : "✖ ") + (r.annulled ? t("word.annulled") : t(r.word_key));
      const rest = [r.holder, r.ticket_type, r.granted ? "" : t("reason." + r.reason + ".label")].filter(Boolean).join(" · ");
      li.append(when + " ", word, rest ? " " + rest : "");
      return li;
    }));
  }
  async function openRecent() {
    try {
      const r = await fetch("/api/recent", { cache: "no-store" });
      if (r.ok) recent = await r.json();
    } catch (e) { /* the list from the stream is shown */ }
    renderRecent();
    if (!$("recent").open) $("recent").showModal();
  }

  // -- state: badge, queue, switch, counters, banners ----------------------------------------
  function age(seconds) {
    if (seconds == null) return t("age.none");
    if (seconds < 90) return t("age.seconds", { n: Math.round(seconds) });
    if (seconds < 5400) return t("age.minutes", { n: Math.round(seconds / 60) });
    return t("age.hours", { n: Math.round(seconds / 3600) });
  }
  function dataAge() {
    return state && state.data_age_s != null ? state.data_age_s + (Date.now() - stateAt) / 1000 : null;
  }
  function linkText() {
    const word = state.online === true ? "badge.online" : state.online === false ? "badge.offline" : "badge.not_synced";
    return t(word) + " · " + age(dataAge());
  }

  function paintLink() {
    const link = $("link");
    if (!probe.connected) { link.className = "badge down"; $("link-text").textContent = t("badge.not_responding"); return; }
    if (!state) return;
    link.className = "badge " + (state.online === true ? "online" : state.online === false ? "offline" : "unknown");
    $("link-text").textContent = linkText();
  }

  function applyState(s) {
    const before = state;
    state = s; stateAt = Date.now(); probe.state = s;
    $("gate").textContent = t("page.title", { gate: s.gate });
    document.title = $("gate").textContent;
    $("queue").textContent = t("queue", { n: s.queue_depth });
    $("queue").title = t("queue.label");
    $("switch").hidden = s.directions.length < 2;
    for (const b of document.querySelectorAll("#switch button")) b.setAttribute("aria-pressed", String(b.dataset.direction === s.direction));
    $("c-in").textContent = s.counters.in;
    $("c-out").textContent = s.counters.out;
    $("c-inside").textContent = s.counters.inside;
    $("c-denied").textContent = s.counters.denied.map((d) => t("reason." + d.reason + ".label") + " " + d.count).join(" · ");
    $("c-venue").hidden = !s.venue;
    if (s.venue) { $("v-in").textContent = s.venue.in; $("v-out").textContent = s.venue.out; $("v-inside").textContent = s.venue.inside; }
    $("banners").replaceChildren(...s.banners.map((b) => {
      const div = document.createElement("div");
      div.className = b.kind; div.textContent = t(b.key, b.args); return div;
    }));
    paintLink();
    if (!shown && JSON.stringify(idle()) !== JSON.stringify(before ? idleOf(before) : null)) ready();
    else fit();
  }
  function idleOf(s) { const keep = state; state = s; const out = idle(); state = keep; return out; }

  async function fetchState() {
    try {
      const r = await fetch("/api/state", { cache: "no-store" });
      if (r.ok) applyState(await r.json());
    } catch (e) { /* the stream's own state message follows */ }
  }

  // -- the stream: EventSource reconnects by itself; a refused stream is retried here --------
  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("open", () => { probe.connected = true; paintLink(); if (!shown) ready(); fetchState(); });
    es.addEventListener("state", (e) => applyState(JSON.parse(e.data)));
    es.addEventListener("decision", (e) => showDecision(JSON.parse(e.data)));
    es.addEventListener("annulled", (e) => {
      const m = JSON.parse(e.data);
      recent = recent.map((r) => (r.scan_id === m.scan_id ? Object.assign({}, r, { annulled: true, passed: false }) : r));
      $("annul").hidden = true;
      if (shown && shown.scan_id === m.scan_id) paint("red", "cross", t("word.annulled"), { holder: shown.holder, message: t("annulled") });
    });
    es.addEventListener("fire_alarm", () => fetchState());
    es.addEventListener("alarm", (e) => showAlarm(JSON.parse(e.data)));
    es.addEventListener("error", () => {
      probe.connected = false; paintLink();
      if (!shown) ready();
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
  }

  // -- actions: POST JSON; a 401 asks for the steward's PIN, then retries once ---------------
  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify(body), credentials: "same-origin" });
    if (r.status === 401 && path !== "/api/login") {
      pending = [path, body];
      $("login-why").textContent = path === "/api/override" ? t("override.title") : t("login.why");
      $("login-error").textContent = "";
      $("pin").value = "";
      $("login").showModal();
      return null;
    }
    const doc = await r.json().catch(() => ({}));
    if (!r.ok) { const err = new Error(doc.error || ("HTTP " + r.status)); err.status = r.status; err.retry = r.headers.get("Retry-After"); throw err; }
    return doc;
  }

  async function act(path, body) {
    try {
      const doc = await post(path, body);
      if (doc && path === "/api/info") showInfo(doc);
    } catch (e) { paint("red", "cross", t("word.error"), { message: e.message }); }
  }

  $("manual").addEventListener("submit", (e) => {
    e.preventDefault();
    const code = $("barcode").value.trim();
    if (!code) return;
    $("barcode").value = "";
    act(infoMode ? "/api/info" : "/api/scan", { barcode: code });
  });
  $("confirm").addEventListener("click", () => shown && act("/api/confirm", { scan_id: shown.scan_id, confirm: true }));
  $("refuse").addEventListener("click", () => shown && act("/api/confirm", { scan_id: shown.scan_id, confirm: false }));
  $("override").addEventListener("click", () => {
    if (!shown) return;
    clearTimeout(resetTimer);
    $("override-why").replaceChildren(...overrideReasons.map((code) => {
      const o = document.createElement("option"); o.value = code; o.textContent = t("override.why." + code); return o;
    }));
    $("override-note").value = "";
    $("override-dialog").dataset.scan = shown.scan_id;
    $("override-dialog").showModal();
  });
  $("override-cancel").addEventListener("click", () => { $("override-dialog").close(); ready(); });
  $("override-form").addEventListener("submit", (e) => {
    e.preventDefault();
    $("override-dialog").close();
    act("/api/override", { scan_id: $("override-dialog").dataset.scan, why: $("override-why").value,
                           note: $("override-note").value });
  });
  $("tools-open").addEventListener("click", () => $("tools").showModal());
  $("tools-close").addEventListener("click", () => $("tools").close());
  $("info-mode").addEventListener("click", () => { setInfoMode(!infoMode); $("tools").close(); });
  $("release").addEventListener("click", () => { $("tools").close(); act("/api/release", {}); });
  for (const b of document.querySelectorAll("#switch button"))
    b.addEventListener("click", () => act("/api/direction", { direction: b.dataset.direction }));
  $("annul").addEventListener("click", () => shown && act("/api/annul", { scan_id: shown.scan_id }));
  $("recent-open").addEventListener("click", openRecent);
  $("recent-close").addEventListener("click", () => $("recent").close());
  $("login-cancel").addEventListener("click", () => { pending = null; $("login").close(); });
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await post("/api/login", { pin: $("pin").value });
      $("login").close();
      if (pending) { const [path, body] = pending; pending = null; act(path, body); }
    } catch (err) {
      $("login-error").textContent = err.status === 403 ? t("login.no_pin")
        : err.status === 429 ? t("login.locked", { s: err.retry || "?" })
        : err.status === 401 ? t("login.wrong") : err.message;
    }
  });
  window.addEventListener("resize", fit);

  async function start() {
    probe.lang = await window.pageWords.load();
    try {
      const r = await fetch("/api/desk", { cache: "no-store" });
      if (r.ok) overrideReasons = (await r.json()).override_reasons;
    } catch (e) { /* no desk: the override dialog lists nothing */ }
    setInterval(paintLink, 1000);
    ready();
    connect();
  }
  start();
})();
