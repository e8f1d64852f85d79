/**
 * The extension's background (a service worker in Chromium, an event page in
 * Firefox): the only place that holds the app password and talks to the
 * server. Content scripts and the popup send it messages; it writes, reads
 * back and deletes expected-sender cards over CardDAV.
 */
import { getDomain } from 'tldts';
import { bookUrl, createAppPassword, deleteCard, discover, getCard, putCard, Retryable } from './api.js';
import { buildCard, readTerms } from './card.js';
import { readDeclaration } from './detect.js';

const api = globalThis.browser ?? globalThis.chrome;
const store = api.storage.local;
const DEFAULTS = { hours: 2, uses: 3, never: [] };
const RETRY_DELAYS_MS = [2_000, 10_000, 30_000];

/**
 * Automatic mode: the content script on every https site, only while the user has granted the
 * optional host permission (asked for on the options page). Without it the extension works in
 * manual mode: the toolbar button and activeTab.
 */
const ALL_SITES = { origins: ['https://*/*'] };
const SIGN_UP_SCRIPT = { id: 'sign-up-forms', matches: ALL_SITES.origins, js: ['content.js'], runAt: 'document_idle', allFrames: false };

async function syncAutomatic() {
  const on = await api.permissions.contains(ALL_SITES);
  const registered = (await api.scripting.getRegisteredContentScripts({ ids: [SIGN_UP_SCRIPT.id] })).length > 0;
  if (on && !registered) await api.scripting.registerContentScripts([SIGN_UP_SCRIPT]);
  if (!on && registered) await api.scripting.unregisterContentScripts({ ids: [SIGN_UP_SCRIPT.id] });
  return on;
}
api.permissions.onAdded.addListener(() => void syncAutomatic());
api.permissions.onRemoved.addListener(() => void syncAutomatic());
void syncAutomatic();

const registrable = (host) => getDomain(host, { allowPrivateDomains: true });

// The app password stays out of content scripts' reach (Chromium; Firefox has no access levels for
// storage.local, and its content scripts never read it: they only send messages).
void store.setAccessLevel?.({ accessLevel: 'TRUSTED_CONTEXTS' }).catch(() => undefined);

async function load() {
  const { connection = null, settings = {}, entries = [] } = await store.get(['connection', 'settings', 'entries']);
  return { connection, settings: { ...DEFAULTS, ...settings }, entries };
}
const saveEntries = (entries) => store.set({ entries: entries.slice(-50) });

async function updateEntry(uid, patch) {
  const { entries } = await load();
  const e = entries.find((x) => x.uid === uid);
  if (e) Object.assign(e, patch);
  await saveEntries(entries);
  return e;
}

/** Connect: discover the server, sign in once, keep the contacts app password (extension storage only). */
async function connect({ address, password, server }) {
  const addr = String(address).trim().toLowerCase();
  if (!/^[^@\s]+@[^@\s]+$/.test(addr)) throw new Error('Enter your mail address');
  let base;
  try {
    base = await discover(addr, server?.trim() || null);
  } catch (err) {
    throw new Error(`Could not find your server (${err.message}); type its address`);
  }
  const appPassword = await createAppPassword(base, addr, password);
  const connection = { address: addr, server: base, appPassword, connectedAt: new Date().toISOString() };
  await store.set({ connection, connectionError: null });
  return { address: addr, server: base, book: bookUrl(connection) };
}

/** A sign-up seen by the content script, or the toolbar's "Expect mail from this site". */
async function expect({ host, declarations = [], address = null, trigger }) {
  const { connection, settings, entries } = await load();
  if (!connection) return { ok: false, reason: 'not connected' };
  const site = registrable(String(host).toLowerCase());
  if (!site) return { ok: false, reason: `${host} has no registrable domain` };
  if (settings.never.includes(site)) return { ok: false, reason: `never on ${site}` };
  const declared = readDeclaration(declarations, site, registrable);
  if (!declared.ok) {
    // Nothing is created for a site that fakes the declaration; the popup says why.
    entries.push({ uid: null, site, state: 'refused', error: declared.reason, created: new Date().toISOString(), trigger });
    await saveEntries(entries);
    return { ok: false, reason: declared.reason };
  }
  // The same sign-up seen twice (a click and the submit it causes): one entry.
  const live = entries.find((e) => e.site === site && e.from === declared.from && e.state !== 'refused' && Date.now() - Date.parse(e.created) < 10_000);
  if (live) return { ok: true, uid: live.uid, existing: true };
  const uid = `twoway-ext-${crypto.randomUUID()}`;
  const until = new Date(Math.ceil((Date.now() + settings.hours * 3_600_000) / 1000) * 1000);
  const entry = { uid, href: `${uid}.vcf`, site, from: declared.from, address, trigger, until: until.toISOString(), uses: settings.uses, state: 'pending', attempts: 0, created: new Date().toISOString() };
  entry.card = buildCard({ uid, site, from: declared.from, until, uses: settings.uses });
  entries.push(entry);
  await saveEntries(entries);
  await write(uid);
  const done = (await load()).entries.find((e) => e.uid === uid);
  return { ok: done?.state === 'stored', uid, state: done?.state, error: done?.error };
}

/** PUT the card; a network failure or 5xx is retried (and shown in the popup), a refusal is final. */
async function write(uid) {
  const { connection, entries } = await load();
  const e = entries.find((x) => x.uid === uid);
  if (e?.state !== 'pending' || !connection) return;
  const attempts = (e.attempts ?? 0) + 1;
  try {
    await putCard(connection, e.href, e.card);
    await updateEntry(uid, { state: 'stored', attempts, error: null, storedAt: new Date().toISOString() });
    await refresh(uid);
  } catch (err) {
    if (err instanceof Retryable && attempts <= RETRY_DELAYS_MS.length + 10) {
      await updateEntry(uid, { attempts, error: `${err.message}; retrying` });
      const delay = RETRY_DELAYS_MS[Math.min(attempts - 1, RETRY_DELAYS_MS.length - 1)];
      setTimeout(() => write(uid), delay);
      api.alarms?.create(`retry:${uid}`, { delayInMinutes: 0.5 });
    } else {
      await updateEntry(uid, { state: 'failed', attempts, error: err.message });
    }
  }
}

/** Reads the card back: the remaining time and uses as the server rewrote them. */
async function refresh(uid) {
  const { connection, entries } = await load();
  const e = entries.find((x) => x.uid === uid);
  if (e?.state !== 'stored' || !connection) return;
  try {
    const text = await getCard(connection, e.href);
    if (text === null) return void (await updateEntry(uid, { state: 'gone', usesLeft: 0 }));
    const terms = readTerms(text);
    await updateEntry(uid, { usesLeft: terms?.uses ?? null, until: terms?.until?.toISOString() ?? e.until, checkedAt: new Date().toISOString() });
  } catch (err) {
    await updateEntry(uid, { error: `could not read the card back: ${err.message}` });
  }
}

async function remove({ uid }) {
  const { connection, entries } = await load();
  const e = entries.find((x) => x.uid === uid);
  if (e?.href && connection && e.state !== 'refused') await deleteCard(connection, e.href);
  await saveEntries(entries.filter((x) => x.uid !== uid));
}

async function never({ site }) {
  const { settings } = await load();
  await store.set({ settings: { ...settings, never: [...new Set([...settings.never, site])] } });
}

async function status() {
  const { connection, settings, entries } = await load();
  for (const e of entries) if (e.state === 'stored') await refresh(e.uid);
  const fresh = (await load()).entries;
  return {
    connected: connection !== null,
    automatic: await syncAutomatic(),
    address: connection?.address ?? null,
    server: connection?.server ?? null,
    settings,
    entries: fresh.map(({ card, ...rest }) => rest).reverse(),
  };
}

/** The toolbar path: the active tab only (activeTab), its host and declaration read by a one-off script. */
async function expectActiveTab() {
  const [tab] = await api.tabs.query({ active: true, currentWindow: true });
  if (!tab?.id) return { ok: false, reason: 'no active tab' };
  const [result] = await api.scripting.executeScript({
    target: { tabId: tab.id },
    func: () => ({
      host: location.hostname,
      declarations: [...document.querySelectorAll('meta[name="twoway-confirmation-from"]')].map((m) => m.getAttribute('content') ?? ''),
    }),
  });
  return expect({ ...result.result, trigger: 'toolbar' });
}

const handlers = {
  connect,
  expect: (m) => expect({ ...m, trigger: m.trigger ?? 'form' }),
  expectActiveTab,
  remove,
  never,
  automatic: async () => ({ automatic: await syncAutomatic() }),
  status,
  addresses: async () => ({ addresses: (await load()).connection ? [(await load()).connection.address] : [] }),
  settings: async ({ settings }) => {
    const current = (await load()).settings;
    await store.set({ settings: { ...current, ...settings } });
    return { ok: true };
  },
  disconnect: async () => store.remove(['connection']),
};

api.runtime.onMessage.addListener((message, _sender, sendResponse) => {
  const h = handlers[message?.type];
  if (!h) return false;
  h(message)
    .then((r) => sendResponse({ ok: true, ...(r ?? {}) }))
    .catch((err) => sendResponse({ ok: false, error: err?.message ?? String(err) }));
  return true; // the answer comes asynchronously
});

api.alarms?.onAlarm.addListener(async (alarm) => {
  if (alarm.name.startsWith('retry:')) await write(alarm.name.slice('retry:'.length));
});

// First run: open the options page so the user can connect (nothing works before that).
api.runtime.onInstalled.addListener((details) => {
  if (details.reason === 'install') void api.runtime.openOptionsPage();
});
