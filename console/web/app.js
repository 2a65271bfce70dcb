// The console's entry point: who is signed in, the navigation between pages, and the one
// function every call to the proxy goes through (it adds the CSRF token to state changes).
import { el, fill } from './dom.js';
import { renderAccess, renderExplain, renderRequests, renderSession, wireForms } from './pages.js';
import { startActivity, stopActivity } from './activity.js';

// xterm.js makes its own <style> elements; the page's Content-Security-Policy admits only those
// carrying this response's nonce, so every <style> made from here on gets it.
const nonce = document.querySelector('meta[name="portcullis-style-nonce"]')?.getAttribute('content') ?? '';
const createElement = document.createElement.bind(document);
document.createElement = (tag, options) => {
  const e = createElement(tag, options);
  if (String(tag).toLowerCase() === 'style') e.nonce = nonce;
  return e;
};

/** The signed-in person (from /console/api/me), with the CSRF token kept in memory only. */
export const state = { me: undefined };

const PAGES = ['access', 'kubeconfig', 'shell', 'requests', 'activity', 'explain', 'session'];

/** Calls the console API; JSON in and out; throws an Error with the server's message. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-portcullis-csrf'] = state.me?.csrf ?? '';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`/console/api${path}`, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await r.text();
  let data;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (r.status === 401) {
    state.me = undefined;
    show('signin');
  }
  if (!r.ok) throw new Error(data.message ?? `${r.status}`);
  return data;
}

/** Shows a message in the status line (announced to screen readers). */
export function say(message, kind = 'info') {
  const s = document.getElementById('status');
  s.textContent = message;
  s.className = `status ${kind}`;
}

function show(page) {
  for (const p of ['signin', ...PAGES]) document.getElementById(`page-${p}`).hidden = p !== page;
  document.getElementById('nav').hidden = page === 'signin';
  for (const a of document.querySelectorAll('#nav a')) a.setAttribute('aria-current', a.getAttribute('href') === `#${page}` ? 'page' : 'false');
  if (page !== 'activity') stopActivity();
}

async function route() {
  if (!state.me) {
    try {
      state.me = await api('GET', '/me');
    } catch {
      show('signin');
      fill(document.getElementById('who'));
      return;
    }
  }
  const me = state.me;
  fill(document.getElementById('who'), el('span', {}, me.user), ' · ', el('span', { class: 'muted' }, `session until ${new Date(me.expiresAt).toLocaleString()}`));
  document.getElementById('nav-explain').hidden = me.auditorOn.length === 0;
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'access';
  show(page);
  say('');
  try {
    if (page === 'access') await renderAccess();
    if (page === 'requests') await renderRequests();
    if (page === 'activity') startActivity();
    if (page === 'explain') renderExplain();
    if (page === 'session') renderSession();
  } catch (err) {
    say(err.message, 'error');
  }
  document.body.dataset.ready = page;
}

window.addEventListener('hashchange', () => void route());
wireForms(route);
void route();
