/** The web app's stylesheet (a module, not a file beside it, so the production build in dist/ carries it). */
export const STYLESHEET = `
/* twoway web app: one small stylesheet, phone first, dark scheme from the system. */
:root {
  color-scheme: light dark;
  --bg: #fdfdfc; --fg: #1b1b1f; --muted: #55575f; --line: #d6d7dc; --card: #ffffff;
  --accent: #0b57d0; --accent-fg: #ffffff; --ok: #146c2e; --danger: #b3261e; --focus: #e37400;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  line-height: 1.45;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #141518; --fg: #e7e8ec; --muted: #a9abb3; --line: #3a3c43; --card: #1d1f23;
    --accent: #a8c7fa; --accent-fg: #0b1d3a; --ok: #8fd6a0; --danger: #ffb4ab; --focus: #ffb870;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 0.5rem; top: 0.5rem; background: var(--card); padding: 0.5rem; z-index: 1; }
header.top { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: center; padding: 0.75rem 1rem; border-bottom: 1px solid var(--line); }
header.top .brand { font-weight: 700; margin-right: auto; }
header.top nav ul { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; list-style: none; margin: 0; padding: 0; }
header.top nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 0.5rem; }
.muted { color: var(--muted); }
.notice { border-left: 4px solid var(--ok); padding: 0.5rem 0.75rem; background: var(--card); margin: 0 0 1rem; }
.error { border-left: 4px solid var(--danger); padding: 0.5rem 0.75rem; background: var(--card); margin: 0 0 1rem; }
.secret { font-family: ui-monospace, monospace; word-break: break-all; font-size: 1.05rem; }
ol.requests, ul.plain { list-style: none; margin: 0; padding: 0; }
.request { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 0.75rem 1rem; margin: 0 0 0.75rem; }
.request h2 { margin: 0 0 0.25rem; font-size: 1.05rem; word-break: break-all; }
.request dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.75rem; margin: 0.25rem 0 0.5rem; }
.request dt { color: var(--muted); }
.request dd { margin: 0; overflow-wrap: anywhere; }
.intro { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0 0.5rem; padding: 0.5rem; border-left: 3px solid var(--line); }
.actions { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.actions form { margin: 0; }
.request.current { outline: 3px solid var(--focus); outline-offset: 2px; }
.request-head { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; }
.request-head input[type="checkbox"] { width: 1.35rem; height: 1.35rem; margin: 0; }
.request-head h2 { margin: 0; }
.tag { font-size: 0.85rem; padding: 0.05rem 0.5rem; border-radius: 999px; border: 1px solid var(--danger); color: var(--danger); }
form.bulk { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; margin: 0 0 0.75rem; }
kbd { font-family: ui-monospace, monospace; border: 1px solid var(--line); border-radius: 4px; padding: 0 0.3rem; }
button, .button { font: inherit; padding: 0.45rem 0.9rem; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--fg); cursor: pointer; min-height: 44px; }
button.primary { background: var(--accent); color: var(--accent-fg); border-color: var(--accent); }
button.danger { color: var(--danger); border-color: var(--danger); }
label { display: block; font-weight: 600; margin: 0.75rem 0 0.25rem; }
input[type="text"], input[type="email"], input[type="password"], select { font: inherit; width: 100%; max-width: 24rem; padding: 0.45rem; border: 1px solid var(--muted); border-radius: 6px; background: var(--bg); color: var(--fg); min-height: 44px; }
a.button { display: inline-flex; align-items: center; text-decoration: none; }
textarea { font: inherit; width: 100%; padding: 0.45rem; border: 1px solid var(--muted); border-radius: 6px; background: var(--bg); color: var(--fg); }
fieldset { border: 1px solid var(--line); border-radius: 8px; margin: 0 0 1rem; padding: 0.75rem 1rem; }
fieldset label.choice { display: flex; gap: 0.5rem; font-weight: 400; align-items: baseline; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.4rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
nav.pages { display: flex; gap: 1rem; align-items: center; margin: 1rem 0; }
.signin { max-width: 26rem; margin: 2rem auto; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
nav.folders ul { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; list-style: none; margin: 0 0 1rem; padding: 0; }
nav.folders a[aria-current="page"] { font-weight: 700; }
form.search { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; margin: 0 0 1rem; }
form.search label, label.inline { display: inline; margin: 0; }
tr.unread td { font-weight: 700; }
.headers { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.75rem; }
.headers dt { color: var(--muted); }
.headers dd { margin: 0; overflow-wrap: anywhere; }
.mail-text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: inherit; background: var(--card); padding: 0.75rem; border: 1px solid var(--line); }
iframe.mail-body { width: 100%; height: 60vh; border: 1px solid var(--line); background: #ffffff; margin-top: 1rem; }
ol.timeline { list-style: none; margin: 0.25rem 0 0; padding: 0 0 0 1rem; border-left: 3px solid var(--line); }
ol.timeline li { margin: 0 0 0.5rem; position: relative; }
ol.timeline li::before { content: ""; position: absolute; left: calc(-1rem - 7px); top: 0.45rem; width: 11px; height: 11px; border-radius: 50%; background: var(--line); }
ol.timeline li:last-child::before { background: var(--fg); }
.step-detail { margin: 0.15rem 0 0; }
.step-detail.bad { border-left: 3px solid var(--danger); padding-left: 0.5rem; }
.now { margin: 0.25rem 0 0.5rem; }
.status { font-weight: 700; }
.status-failed, .status-declined, .status-expired { color: var(--danger); }
.status-delivered { color: var(--ok); }
.detail { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 0.9rem; }
@media (max-width: 40rem) {
  main { padding: 0.75rem; }
  table, thead, tbody, tr, th, td { display: block; }
  thead { position: absolute; left: -999px; }
  tr { border-bottom: 1px solid var(--line); padding: 0.5rem 0; }
  td { border: 0; padding: 0.15rem 0; }
}
/* Contacts */
header.top nav ul { flex-wrap: wrap; }
textarea { font: 0.9rem/1.4 ui-monospace, monospace; width: 100%; padding: 0.5rem; border: 1px solid var(--muted); border-radius: 6px; background: var(--bg); color: var(--fg); }
input[type="number"], input[type="file"] { font: inherit; max-width: 24rem; min-height: 44px; }
.card-name, table.contacts td, table.expected td, dl.clients dd { overflow-wrap: anywhere; }
table.contacts form.actions { flex-wrap: nowrap; }
`;
