// The pages' words (the kiosk's and the control room's), from /api/i18n once: "{name}"
// fields filled from args; a missing key shows the key, never nothing. No framework.
"use strict";
window.pageWords = (() => {
  let words = {};
  function t(key, args) {
    const text = words[key] || key;
    return text.replace(/\{(\w+)\}/g, (m, name) => (args && args[name] != null ? String(args[name]) : m));
  }
  function translateStatic() {
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    for (const el of document.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t(el.dataset.tLabel));
    for (const el of document.querySelectorAll("[data-t-placeholder]")) el.placeholder = t(el.dataset.tPlaceholder);
  }
  // The page's words and its language (null when they could not be had: keys stand in for
  // words until a reload), then every static text painted.
  async function load() {
    let lang = null;
    try {
      const r = await fetch("/api/i18n", { cache: "no-store" });
      const doc = await r.json();
      words = doc.messages; lang = doc.lang;
      document.documentElement.lang = doc.lang;
    } catch (e) { /* as said above */ }
    translateStatic();
    return lang;
  }
  return { t, load };
})();
