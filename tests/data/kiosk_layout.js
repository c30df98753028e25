(tall) => {
  // ``tall``: a page that may grow downwards (the control room's lists): only its width
  // must fit the viewport; the kiosk's page must fit whole.
  const vw = innerWidth, vh = tall ? Infinity : innerHeight, bad = [];
  const name = (el) => el.id ? '#' + el.id : el.tagName.toLowerCase() + '.' + el.className;
  const shown = (el) => el.getClientRects().length > 0 && !el.closest('dialog:not([open])')
                        && !el.closest('.defs') && getComputedStyle(el).visibility !== 'hidden';
  const root = document.documentElement;
  if (root.scrollWidth > vw + 1 || root.scrollHeight > vh + 1) bad.push('page scrolls');
  for (const el of document.body.querySelectorAll('*')) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (tall && (r.bottom < 0 || r.top > innerHeight)) continue;  // below the fold: scrolled to
    if (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1)
      bad.push(name(el) + ' outside: ' + [r.left, r.top, r.right, r.bottom].map(Math.round));
    // Clipped: content beyond a box that hides it, or text wider than its own box.
    const st = getComputedStyle(el);
    if (el instanceof SVGElement || el.tagName === 'INPUT' || st.display === 'inline'
        || el.closest('.vh')) continue;
    const hides = st.overflowX !== 'visible' || st.overflowY !== 'visible';
    if (el.scrollWidth > el.clientWidth + 1
        || (hides && el.scrollHeight > el.clientHeight + 1))
      bad.push(name(el) + ' clips its content');
  }
  const modal = document.querySelector('dialog[open]');  // covers the page, by design
  for (const el of document.querySelectorAll('button, input, [role=group]')) {
    if (!shown(el) || el.hidden || (modal && !modal.contains(el))) continue;
    const r = el.getBoundingClientRect();
    if (tall && (r.top < 0 || r.bottom > innerHeight)) continue;  // not on screen now
    const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!top || !(el === top || el.contains(top) || top.contains(el)))
      bad.push(name(el) + ' covered by ' + (top ? name(top) : 'nothing'));
  }
  return bad;
}
