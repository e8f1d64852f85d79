/** Options: connect to the server (once), and the entry defaults. */
const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);
const send = (m) => api.runtime.sendMessage(m);

// The optional host permission of automatic mode (manifest optional_host_permissions).
const ALL_SITES = { origins: ['https://*/*'] };

async function render() {
  const s = await send({ type: 'status' });
  $('mode-state').textContent = s.automatic ? 'Automatic mode is on: sign-ups on https sites are noticed by themselves.' : 'Manual mode: use the toolbar button before you sign up.';
  $('automatic-on').hidden = s.automatic;
  $('automatic-off').hidden = !s.automatic;
  $('state').textContent = s.connected ? `Connected as ${s.address} to ${s.server}` : 'Not connected';
  if (s.address) $('address').value = s.address;
  $('hours').value = s.settings.hours;
  $('uses').value = s.settings.uses;
  $('never').value = s.settings.never.join('\n');
}

$('connect').onsubmit = async (e) => {
  e.preventDefault();
  $('connect-message').textContent = 'Connecting…';
  const r = await send({ type: 'connect', address: $('address').value, password: $('password').value, server: $('server').value });
  $('password').value = '';
  $('connect-message').textContent = r.ok ? `Connected: cards go to ${r.book}` : `Not connected: ${r.error}`;
  await render();
};

// permissions.request must run in the click itself (a user gesture), here and not in the background.
$('automatic-on').onclick = async () => {
  const granted = await api.permissions.request(ALL_SITES).catch(() => false);
  if (granted) await send({ type: 'automatic' });
  await render();
};
$('automatic-off').onclick = async () => {
  await api.permissions.remove(ALL_SITES);
  await send({ type: 'automatic' });
  await render();
};

$('settings').onsubmit = async (e) => {
  e.preventDefault();
  const never = $('never').value.split(/\s+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
  await send({ type: 'settings', settings: { hours: Number($('hours').value), uses: Number($('uses').value), never } });
  $('settings-message').textContent = 'Saved.';
};

void render();
