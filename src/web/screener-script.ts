/**
 * The Screener's keyboard shortcuts, served as a same-origin script (a module
 * holding the text, like style.ts, so the production build in dist/ carries
 * it; the CSP allows scripts from this origin only, and there is no inline
 * handler). Everything it does is a click on a button of the page, so the
 * page works the same without it:
 *
 *   j / k  next / previous request (focused, outlined)
 *   x      select or unselect it for the bulk form
 *   a / d  approve / deny the selected requests, or the focused one
 *
 * While requests are selected, the list's htmx polling is paused (a swap
 * would drop the selection); after a swap the focus goes back to the same
 * place in the list.
 */
export const SCREENER_SCRIPT = `'use strict';
(function () {
  var index = -1;
  function items() { return Array.prototype.slice.call(document.querySelectorAll('#requests li.request')); }
  function typing(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT') return true;
    return el.tagName === 'INPUT' && ['checkbox', 'radio', 'submit', 'button', 'hidden'].indexOf(el.type) < 0;
  }
  function current() {
    var list = items();
    var el = document.activeElement;
    var li = el && el.closest ? el.closest('#requests li.request') : null;
    if (li) index = list.indexOf(li);
    return index >= 0 && index < list.length ? list[index] : null;
  }
  function move(to) {
    var list = items();
    if (list.length === 0) return;
    index = Math.max(0, Math.min(list.length - 1, to));
    list.forEach(function (li, i) { li.classList.toggle('current', i === index); });
    list[index].focus();
    list[index].scrollIntoView({ block: 'nearest' });
  }
  function act(key) {
    var selected = document.querySelectorAll('#requests input[type=checkbox][form=bulk]:checked');
    var button = selected.length > 0 ? document.querySelector('#bulk button[value=' + key + ']') : null;
    if (!button) {
      var li = current();
      button = li ? li.querySelector('button[data-key=' + key + ']') : null;
    }
    if (button) button.click();
    return button !== null;
  }
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented || typing(e.target)) return;
    var done = true;
    if (e.key === 'j') move(current() ? index + 1 : 0);
    else if (e.key === 'k') move(current() ? index - 1 : 0);
    else if (e.key === 'x') {
      var li = current();
      var box = li ? li.querySelector('input[type=checkbox]') : null;
      if (box) box.checked = !box.checked;
      done = box !== null;
    } else if (e.key === 'a') done = act('approve');
    else if (e.key === 'd') done = act('deny');
    else done = false;
    if (done) e.preventDefault();
  });
  document.addEventListener('htmx:beforeRequest', function (e) {
    var elt = e.detail && e.detail.elt;
    if (elt && elt.id === 'requests' && document.querySelector('#requests input[type=checkbox]:checked')) e.preventDefault();
  });
  document.addEventListener('htmx:afterSettle', function () {
    var el = document.activeElement;
    if (index >= 0 && (!el || el === document.body)) move(index);
  });
})();
`;
