// The browser kubectl shell: xterm.js on a WebSocket to the proxy. The server runs no shell:
// it edits the line, and runs each accepted kubectl line confined, on a pseudo-terminal.
import { Terminal } from './xterm.mjs';
import { FitAddon } from './addon-fit.mjs';
import { state, say } from './app.js';

let current;

/** Opens a terminal in `host` (one at a time on this page). */
export function openShell(host) {
  if (current) return current.term.focus();
  const term = new Terminal({ cursorBlink: true, fontSize: 14, convertEol: false, scrollback: 2000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();
  const ws = new WebSocket(`wss://${location.host}/console/terminal`);
  current = { term, ws, fit };
  document.getElementById('shell-open').hidden = true;
  document.getElementById('shell-close').hidden = false;
  ws.onopen = () => {
    // First the session's CSRF token: the server runs nothing before it.
    ws.send(JSON.stringify({ csrf: state.me?.csrf ?? '' }));
    ws.send(JSON.stringify({ t: 'r', c: term.cols, r: term.rows }));
    term.focus();
  };
  ws.onmessage = (ev) => term.write(typeof ev.data === 'string' ? ev.data : '');
  ws.onclose = (ev) => {
    term.write(`\r\n[disconnected${ev.reason ? `: ${ev.reason}` : ''}]\r\n`);
    document.getElementById('shell-open').hidden = false;
    document.getElementById('shell-close').hidden = true;
    if (current?.ws === ws) current = { ...current, ws: undefined, closed: true };
  };
  ws.onerror = () => say('The terminal connection failed.', 'error');
  term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ t: 'i', d })));
  term.onResize(({ cols, rows }) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ t: 'r', c: cols, r: rows })));
  window.addEventListener('resize', () => current?.fit.fit());
}

/** Closes the terminal (its kubectl is ended by the server). */
export function closeShell() {
  if (!current) return;
  current.ws?.close();
  current.term.dispose();
  current = undefined;
  document.getElementById('terminal').replaceChildren();
  document.getElementById('shell-open').hidden = false;
  document.getElementById('shell-close').hidden = true;
}

/** The terminal's text (what a person sees), for tests and screen readers' "copy all". */
export function shellText() {
  if (!current) return '';
  const b = current.term.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n');
}
window.portcullisShellText = shellText;
