// The console's pages: each renders from the API's JSON with text nodes only.
import { el, fill, table } from './dom.js';
import { api, say, state } from './app.js';

// The terminal (xterm.js, the largest file) loads only when a terminal is opened.
let shell;
const loadShell = async () => (shell ??= await import('./shell.js'));

const byId = (id) => document.getElementById(id);

/** My access: per cluster, each rule of each grant that names me, decided now. */
export async function renderAccess() {
  const { clusters } = await api('GET', '/access');
  state.access = clusters;
  fill(
    byId('access-body'),
    clusters.map((c) =>
      el(
        'section',
        { class: 'cluster', 'aria-label': `cluster ${c.cluster}` },
        el('h2', {}, c.cluster),
        !c.valid
          ? el('p', { class: 'error' }, 'no valid policy bundle: every request is refused')
          : c.rows.length === 0
            ? el('p', {}, 'No grant names you here.')
            : table(
                `What ${state.me.user} may do on ${c.cluster}`,
                ['Namespace', 'Verbs', 'Resources', 'State', 'Grant (policy line)', 'Conditions'],
                c.rows.map((r) => [
                  r.namespace || '(cluster-wide)',
                  r.verbs.join(', '),
                  r.what.join(', ') + (r.resourceNames ? ` (only ${r.resourceNames.join(', ')})` : ''),
                  el('span', { class: `state ${r.state}`, 'data-state': r.state }, r.state + (r.why ? `: ${r.why}` : '') + (r.activeUntil ? ` until ${new Date(r.activeUntil).toLocaleString()}` : '')),
                  el('span', {}, el('code', {}, r.grant), ' ', el('span', { class: 'muted' }, r.source)),
                  r.conditions.join('; ') || 'none',
                ]),
              ),
      ),
    ),
  );
}

/** Grants I could request or break the glass for, from my access. */
function activatable(kind) {
  const seen = new Map();
  for (const c of state.access ?? []) for (const r of c.rows) if (r.activation === kind) seen.set(`${c.cluster}/${r.grant}`, { cluster: c.cluster, grant: r.grant });
  return [...seen.values()];
}

/** Requests and break-glass: the forms, the requests I made or may decide, the active activations. */
export async function renderRequests() {
  if (!state.access) state.access = (await api('GET', '/access')).clusters;
  for (const [id, kind] of [['request-grant', 'request'], ['breakglass-grant', 'break-glass']]) {
    const opts = activatable(kind);
    fill(byId(id), opts.length ? opts.map((o) => el('option', { value: `${o.cluster}/${o.grant}` }, `${o.grant} on ${o.cluster}`)) : [el('option', { value: '' }, 'none for you')]);
  }
  const [{ items: requests }, { items: activations }] = await Promise.all([api('GET', '/requests'), api('GET', '/activations')]);
  fill(
    byId('requests-body'),
    requests.length === 0
      ? el('p', {}, 'No requests.')
      : table(
          'Access requests: yours, and those you may decide',
          ['Request', 'Who', 'Grant', 'Cluster', 'Reason', 'State', 'Decide'],
          requests.map((r) => [
            el('code', {}, r.id),
            r.user,
            r.grant,
            r.cluster,
            r.reason,
            el('span', { class: `state ${r.state}` }, r.state + (r.decidedBy ? ` by ${r.decidedBy}` : '')),
            r.state === 'pending' && r.user !== state.me.user
              ? el('span', { class: 'actions' }, el('button', { type: 'button', 'data-approve': r.id, onclick: () => decideRequest(r.id, 'approve') }, 'Approve'), el('button', { type: 'button', class: 'danger', 'data-deny': r.id, onclick: () => decideRequest(r.id, 'deny') }, 'Deny'))
              : '',
          ]),
        ),
  );
  fill(
    byId('activations-body'),
    activations.length === 0
      ? el('p', {}, 'No active access.')
      : table(
          'Active activations (break-glass and approved requests)',
          ['Who', 'Grant', 'Cluster', 'Until', 'Reason', 'End'],
          activations.map((a) => [a.user, a.grant, a.cluster, new Date(a.expiresAt).toLocaleString(), a.reason, el('button', { type: 'button', class: 'danger', 'data-end': `${a.cluster}/${a.grant}`, onclick: () => endActivation(a) }, 'End now')]),
        ),
  );
}

async function decideRequest(id, how) {
  try {
    await api('POST', `/requests/${id}/${how}`);
    say(`Request ${id}: ${how === 'approve' ? 'approved' : 'denied'}.`, 'ok');
    state.access = undefined;
    await renderRequests();
  } catch (err) {
    say(err.message, 'error');
  }
}

async function endActivation(a) {
  try {
    await api('POST', '/activations/end', { cluster: a.cluster, grant: a.grant, user: a.user });
    say(`${a.grant} ended for ${a.user} on ${a.cluster}.`, 'ok');
    state.access = undefined;
    await renderRequests();
  } catch (err) {
    say(err.message, 'error');
  }
}

/** Explain and who-can: the cluster choices (those I audit). */
export function renderExplain() {
  for (const id of ['x-cluster', 'w-cluster']) fill(byId(id), state.me.auditorOn.map((c) => el('option', { value: c }, c)));
}

/** My session: who, groups, until when. */
export function renderSession() {
  const me = state.me;
  fill(byId('session-body'), el('dt', {}, 'User'), el('dd', {}, me.user), el('dt', {}, 'Groups'), el('dd', {}, me.groups.join(', ') || '(none)'), el('dt', {}, 'Session ends'), el('dd', { id: 'session-expires' }, new Date(me.expiresAt).toLocaleString()), el('dt', {}, 'Auditor of'), el('dd', {}, me.auditorOn.join(', ') || '(no cluster)'));
}

/** The forms' submit handlers (once). */
export function wireForms(reroute) {
  const value = (id) => byId(id).value.trim();
  byId('request-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const [cluster, grant] = value('request-grant').split('/');
    try {
      const r = await api('POST', '/requests', { cluster, grant, reason: value('request-reason'), durationSeconds: Number(value('request-duration')) });
      say(`Requested ${grant} on ${cluster}: ${r.id}, waiting for an approver.`, 'ok');
      byId('request-reason').value = '';
      await renderRequests();
    } catch (err) {
      say(err.message, 'error');
    }
  });
  byId('breakglass-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const [cluster, grant] = value('breakglass-grant').split('/');
    try {
      await api('POST', '/break-glass', { cluster, grant, reason: value('breakglass-reason') });
      say(`Break-glass ${grant} active on ${cluster}. This is recorded and announced.`, 'ok');
      byId('breakglass-reason').value = '';
      state.access = undefined;
      await renderRequests();
    } catch (err) {
      say(err.message, 'error');
    }
  });
  byId('explain-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ cluster: value('x-cluster'), user: value('x-user'), groups: value('x-groups'), method: value('x-method'), path: value('x-path') });
    try {
      const r = await api('GET', `/explain?${q}`);
      byId('explain-out').textContent = r.lines.join('\n');
    } catch (err) {
      byId('explain-out').textContent = err.message;
    }
  });
  byId('whocan-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ cluster: value('w-cluster'), verb: value('w-verb'), resource: value('w-resource'), namespace: value('w-namespace') });
    try {
      const r = await api('GET', `/who-can?${q}`);
      fill(byId('whocan-out'), r.rows.length === 0 ? el('p', {}, 'Nobody.') : table('Who can', ['Subject', 'Via grant', 'Note'], r.rows.map((x) => [x.subject, `${x.grant} (${x.source})`, x.deniedBy ? `DENIED by ${x.deniedBy} (${x.denySource})` : (x.inactive ?? '')])));
    } catch (err) {
      fill(byId('whocan-out'), el('p', { class: 'error' }, err.message));
    }
  });
  byId('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/logout');
    } catch (err) {
      say(err.message, 'error');
      return;
    }
    shell?.closeShell();
    state.me = undefined;
    location.hash = '';
    await reroute();
    say('Logged out: the session is ended everywhere, and its terminals with it.', 'ok');
  });
  byId('shell-open').addEventListener('click', async () => (await loadShell()).openShell(byId('terminal')));
  byId('shell-close').addEventListener('click', () => shell?.closeShell());
}
