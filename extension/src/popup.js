/** The popup: connection state, the recent entries with their remaining time and uses (read back from the server), remove, "never on this site". */
const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);
const send = (m) => api.runtime.sendMessage(m);

function remaining(e) {
  const ms = Date.parse(e.until) - Date.now();
  if (e.state === 'gone') return 'used up or expired';
  if (ms <= 0) return 'expired';
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const uses = e.usesLeft ?? e.uses;
  return `${h ? `${h} h ` : ''}${m} min left, ${uses} use${uses === 1 ? '' : 's'} left`;
}

function row(e) {
  const li = document.createElement('li');
  li.className = `entry ${e.state}`;
  li.dataset.uid = e.uid ?? '';
  li.dataset.site = e.site;
  const what = document.createElement('div');
  what.className = 'site';
  what.textContent = e.from ? `${e.site} (and ${e.from})` : e.site;
  const how = document.createElement('div');
  how.className = 'terms';
  how.textContent =
    e.state === 'stored' || e.state === 'gone' ? remaining(e)
    : e.state === 'pending' ? `not stored yet (attempt ${e.attempts ?? 0}): ${e.error ?? 'sending'}`
    : e.state === 'refused' ? `nothing created: ${e.error}`
    : `failed: ${e.error}`;
  li.append(what, how);
  if (e.uid) {
    li.append(
      button('Remove', 'remove', async () => {
        await send({ type: 'remove', uid: e.uid });
        await render();
      }),
    );
  }
  li.append(
    button('Never on this site', 'never', async () => {
      await send({ type: 'never', site: e.site });
      if (e.uid) await send({ type: 'remove', uid: e.uid });
      await render();
    }),
  );
  return li;
}

function button(text, className, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.className = className;
  b.onclick = onclick;
  return b;
}

async function render() {
  const s = await send({ type: 'status' });
  $('state').textContent = s.connected ? `connected as ${s.address} (${s.server})` : 'not connected';
  $('state').className = s.connected ? 'ok' : 'off';
  $('connect-hint').hidden = s.connected;
  $('expect-here').disabled = !s.connected;
  $('mode').textContent = s.automatic ? 'Automatic: sign-ups are noticed by themselves.' : 'Manual: click below before you sign up on this site (automatic mode is in the options).';
  const list = $('entries');
  list.replaceChildren(...(s.entries ?? []).map(row));
  if ((s.entries ?? []).length === 0) list.textContent = 'No entries yet.';
  // A card not stored yet is being retried by the background: keep showing its state until it is.
  clearTimeout(again);
  if ((s.entries ?? []).some((e) => e.state === 'pending')) again = setTimeout(render, 1_000);
}
let again;

$('expect-here').onclick = async () => {
  const r = await send({ type: 'expectActiveTab' });
  $('message').textContent = r.ok
    ? 'Expecting mail from this site.'
    : r.state === 'pending' ? `Not stored yet: ${r.error}. The extension keeps trying.`
    : `Nothing created: ${r.reason ?? r.error ?? r.state}`;
  await render();
};

void render();
