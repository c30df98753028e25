() => {
  const bad = [];
  if (!/^[a-z]{2}$/.test(document.documentElement.lang)) bad.push('no lang');
  const shown = (el) => el.getClientRects().length > 0 && !el.closest('dialog:not([open])');
  for (const el of document.querySelectorAll('button, input, [role=group], dialog[open]')) {
    if (!shown(el)) continue;
    const label = el.labels && el.labels.length ? el.labels[0].textContent : '';
    const by = el.getAttribute('aria-labelledby');
    const named = (el.getAttribute('aria-label') || '').trim() || el.textContent.trim()
      || label.trim() || (by && document.getElementById(by).textContent.trim());
    if (!named) bad.push((el.id || el.tagName) + ' has no name');
  }
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.body.querySelectorAll('*')) {
    if (!shown(el) || el.closest('.defs')) continue;
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text) continue;
    const st = getComputedStyle(el), size = parseFloat(st.fontSize), bold = +st.fontWeight >= 700;
    const a = lum(rgb(st.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push((el.id || el.tagName) + ' contrast ' + ratio.toFixed(2));
  }
  if (!document.querySelector('#result')) return bad;  // the kiosk's result panel, below
  if (!document.querySelector('#word').textContent.trim()) bad.push('a colour without a word');
  if (!document.querySelector('#icon').getAttribute('href')) bad.push('a colour without an icon');
  if (document.querySelector('#result').getAttribute('aria-live') !== 'assertive') bad.push('result not announced');
  return bad;
}
