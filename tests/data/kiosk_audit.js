// What axe-core (tests/test_kiosk_layout.py) does not check: that the result's colour
// never stands alone (a word and an icon beside it), and that a new result is announced.
() => {
  const bad = [];
  if (!document.querySelector('#result')) return bad;  // the kiosk's result panel, below
  if (!document.querySelector('#word').textContent.trim()) bad.push('a colour without a word');
  if (!document.querySelector('#icon').getAttribute('href')) bad.push('a colour without an icon');
  if (document.querySelector('#result').getAttribute('aria-live') !== 'assertive') bad.push('result not announced');
  return bad;
}
