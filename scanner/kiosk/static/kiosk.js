// The kiosk page: paints what /events pushes. No framework, no files from elsewhere.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const probe = { latencies: [], state: null, connected: false };
  window.__kiosk = probe;  // read by the browser tests
  let state = null, stateAt = 0, resetTimer = 0, shown = null, audio = null, pending = null;

  // -- sound: two beeps from WebAudio, no sound files --------------------------------------
  function beep(granted) {
    try {
      audio = audio || new AudioContext();
      const tones = granted ? [[880, 0, 0.12]] : [[330, 0, 0.12], [330, 0.18, 0.12], [330, 0.36, 0.12]];
      for (const [hz, at, len] of tones) {
        const osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = hz; gain.gain.value = 0.2;
        osc.connect(gain).connect(audio.destination);
        const t = audio.currentTime + at;
        osc.start(t); osc.stop(t + len);
      }
    } catch (e) { /* no audio device: the screen still says it */ }
  }

  // -- the result --------------------------------------------------------------------------
  function paint(cls, icon, word, fields) {
    $("result").className = cls;
    $("icon").setAttribute("href", "#icon-" + icon);
    $("word").textContent = word;
    for (const key of ["holder", "ticket", "seat", "message"]) $(key).textContent = fields[key] || "";
  }

  function ready() {
    shown = null;
    $("annul").hidden = true;
    paint("ready", "ready", "READY", { message: "Scan a ticket" });
  }

  function showDecision(m) {
    const recv = performance.now();
    shown = m;
    paint(m.colour, m.icon, m.word, { holder: m.holder, ticket: m.ticket_type, seat: m.seat, message: m.message });
    $("annul").hidden = !m.opened;
    clearTimeout(resetTimer);
    resetTimer = setTimeout(ready, 1000 * ((state && state.reveal_s) || 3));
    // rAF runs just before the frame is painted; the task after it runs once it was.
    requestAnimationFrame(() => setTimeout(() => {
      const painted = performance.now();
      probe.latencies.push({ scan_id: m.scan_id, colour: m.colour, recv_ms: recv, painted_ms: painted,
                             painted_epoch_ms: performance.timeOrigin + painted, sent_at: m.sent_at });
    }, 0));
    beep(m.granted);
  }

  // -- state: badge, queue, switch, counters, banners ----------------------------------------
  function age(seconds) {
    if (seconds == null) return "no ticket data";
    if (seconds < 90) return "data " + Math.round(seconds) + " s old";
    if (seconds < 5400) return "data " + Math.round(seconds / 60) + " min old";
    return "data " + Math.round(seconds / 3600) + " h old";
  }

  function paintLink() {
    const link = $("link");
    if (!probe.connected) { link.className = "badge down"; link.textContent = "GATE NOT RESPONDING"; return; }
    if (!state) return;
    const dataAge = state.data_age_s == null ? null : state.data_age_s + (Date.now() - stateAt) / 1000;
    const word = state.online === true ? "ONLINE" : state.online === false ? "OFFLINE" : "NOT SYNCED YET";
    link.className = "badge " + (state.online === true ? "online" : state.online === false ? "offline" : "unknown");
    link.textContent = word + " · " + age(dataAge);
  }

  function applyState(s) {
    state = s; stateAt = Date.now(); probe.state = s;
    $("gate").textContent = "Gate " + s.gate;
    $("queue").textContent = "queue " + s.queue_depth;
    const both = s.directions.length > 1;
    $("switch").hidden = !both;
    for (const b of document.querySelectorAll("#switch button")) b.classList.toggle("on", b.dataset.direction === s.direction);
    $("c-in").textContent = s.counters.in;
    $("c-out").textContent = s.counters.out;
    $("c-inside").textContent = s.counters.inside;
    $("c-denied").textContent = s.counters.denied.map((d) => d.label + " " + d.count).join(" · ");
    $("c-venue").hidden = !s.venue;
    if (s.venue) {
      $("v-in").textContent = s.venue.in;
      $("v-out").textContent = s.venue.out;
      $("v-inside").textContent = s.venue.inside;
    }
    const banners = $("banners");
    banners.replaceChildren(...s.banners.map((b) => {
      const div = document.createElement("div");
      div.className = b.kind; div.textContent = b.text; return div;
    }));
    paintLink();
  }

  async function fetchState() {
    try {
      const r = await fetch("/api/state", { cache: "no-store" });
      if (r.ok) applyState(await r.json());
    } catch (e) { /* the stream's own state message follows */ }
  }

  // -- the stream: EventSource reconnects by itself; a refused stream is retried here --------
  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("open", () => { probe.connected = true; paintLink(); fetchState(); });
    es.addEventListener("state", (e) => applyState(JSON.parse(e.data)));
    es.addEventListener("decision", (e) => showDecision(JSON.parse(e.data)));
    es.addEventListener("annulled", (e) => {
      const m = JSON.parse(e.data);
      if (shown && shown.scan_id === m.scan_id) paint("red", "cross", "ANNULLED", { holder: shown.holder, message: "Did not pass: grant annulled" });
      $("annul").hidden = true;
    });
    es.addEventListener("fire_alarm", () => fetchState());
    es.addEventListener("error", () => {
      probe.connected = false; paintLink();
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
  }

  // -- actions: POST JSON; a 401 asks for the PIN, then retries once --------------------------
  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify(body), credentials: "same-origin" });
    if (r.status === 401 && path !== "/api/login") {
      pending = [path, body];
      $("login-error").textContent = "";
      $("pin").value = "";
      $("login").showModal();
      return null;
    }
    const doc = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(doc.error || ("HTTP " + r.status));
    return doc;
  }

  async function act(path, body) {
    try { await post(path, body); }
    catch (e) { paint("red", "cross", "ERROR", { message: e.message }); }
  }

  $("manual").addEventListener("submit", (e) => {
    e.preventDefault();
    const code = $("barcode").value.trim();
    if (!code) return;
    $("barcode").value = "";
    act("/api/scan", { barcode: code });
  });
  for (const b of document.querySelectorAll("#switch button"))
    b.addEventListener("click", () => act("/api/direction", { direction: b.dataset.direction }));
  $("annul").addEventListener("click", () => shown && act("/api/annul", { scan_id: shown.scan_id }));
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await post("/api/login", { pin: $("pin").value });
      $("login").close();
      if (pending) { const [path, body] = pending; pending = null; act(path, body); }
    } catch (err) { $("login-error").textContent = err.message; }
  });

  setInterval(paintLink, 1000);
  ready();
  connect();
})();
