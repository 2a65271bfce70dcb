// Live activity: audit events as server-sent events, a feed and a per-minute chart.
import { el, fill, svg } from './dom.js';

let source;
const items = [];

/** Opens the event stream with the filters in the form (an auditor's; others see their own only). */
export function startActivity() {
  stopActivity();
  items.length = 0;
  const form = new FormData(document.getElementById('activity-filter'));
  const q = new URLSearchParams();
  for (const [k, v] of form) if (String(v).trim() !== '') q.set(k, String(v).trim());
  // The old feed goes at once, and the feed says which filter it now holds, so nothing on screen mixes two filters.
  const feed = document.getElementById('activity-feed');
  feed.dataset.filter = q.toString();
  render();
  source = new EventSource(`/console/api/activity?${q}`);
  source.addEventListener('hello', (ev) => {
    const h = JSON.parse(ev.data);
    document.getElementById('activity-scope').textContent = h.auditor ? `Auditor view: every person's requests on ${h.clusters.join(', ')}.` : 'Your own requests (auditors see the whole fleet).';
    document.getElementById('activity-filter').hidden = !h.auditor;
    render();
  });
  source.addEventListener('audit', (ev) => {
    items.unshift(JSON.parse(ev.data));
    if (items.length > 500) items.length = 500;
    render();
  });
}

/** Closes the stream (leaving the page). */
export function stopActivity() {
  source?.close();
  source = undefined;
}

function render() {
  const feed = document.getElementById('activity-feed');
  fill(
    feed,
    items.slice(0, 200).map((i) =>
      el(
        'li',
        { class: `event ${i.decision}`, 'data-audit-id': i.auditID, 'data-decision': i.decision, 'data-user': i.user },
        el('time', { datetime: i.at }, new Date(i.at).toLocaleTimeString()),
        ' ',
        el('strong', {}, i.decision || '?'),
        ` ${i.code} `,
        el('span', { class: 'who' }, i.user || '(anonymous)'),
        ` ${i.verb} `,
        el('code', {}, i.target),
        i.cluster ? ` on ${i.cluster}` : '',
        el('br'),
        el('span', { class: 'muted' }, explanation(i)),
      ),
    ),
  );
  chart();
}

/** What decided it: the deny and its policy line, the grant that allowed it, or the grant that was missing. */
function explanation(i) {
  const line = (src) => (src ? ` (${src})` : '');
  if (i.deny) return `denied by ${i.deny}${line(i.source)}`;
  if (i.missing?.length) return `no active grant: ${i.missing.map((m) => `${m.grant}${line(m.source)} ${m.why}`).join('; ')}`;
  if (i.decision === 'deny') return i.detail?.startsWith('no active grant') ? 'no grant allows it (the policy names no grant for this)' : `${i.reason}${i.detail ? `: ${i.detail}` : ''}`;
  if (i.grant) return `granted by ${i.grant}${line(i.source)}`;
  return i.reason;
}

/** Bars per minute for the last 10 minutes: requests, and denials over them. */
function chart() {
  const now = Date.now();
  const minutes = Array.from({ length: 10 }, () => ({ all: 0, denied: 0 }));
  for (const i of items) {
    const m = Math.floor((now - Date.parse(i.at)) / 60_000);
    if (m >= 0 && m < 10) {
      minutes[9 - m].all++;
      if (i.decision === 'deny') minutes[9 - m].denied++;
    }
  }
  const max = Math.max(1, ...minutes.map((m) => m.all));
  const w = 300;
  const h = 80;
  const bw = w / 10;
  const bars = minutes.flatMap((m, k) => [
    svg('rect', { x: k * bw + 2, y: h - (m.all / max) * h, width: bw - 4, height: (m.all / max) * h, class: 'bar-all' }),
    svg('rect', { x: k * bw + 2, y: h - (m.denied / max) * h, width: bw - 4, height: (m.denied / max) * h, class: 'bar-deny' }),
  ]);
  const total = minutes.reduce((a, m) => a + m.all, 0);
  const denied = minutes.reduce((a, m) => a + m.denied, 0);
  fill(document.getElementById('activity-chart'), svg('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': `${total} requests, ${denied} denied in the last 10 minutes` }, bars));
  document.getElementById('activity-counts').textContent = `${total} requests, ${denied} denied.`;
}

document.getElementById('activity-filter').addEventListener('submit', (ev) => {
  ev.preventDefault();
  startActivity();
});
