// The console without a browser: a person signs in through the console's own sign-in (the
// identity provider's real forms, filled in by test/support/oidc-browser.ts), opens a terminal
// over a WebSocket and runs a watch; when the session reaches its maximum lifetime, the terminal
// and its kubectl end with it (SECURITY rule 30), and the end is audited.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Agent, fetch } from 'undici';
import WebSocket from 'ws';
import { MEMBER_USER } from '../../core/names.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from '../proxy/harness.ts';
import { signIn } from '../support/oidc-browser.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const NS = 'console-lifetime';
const READ = [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }];
const RULES = ruleSet('dev', [grant('ops-read', [group('oidc:ops')], READ, ns(NS), { line: 7 })], { users: [MEMBER_USER] });
const LIFETIME_MS = 12_000;

describe('a console session reaching its lifetime', { timeout: 180_000 }, () => {
  let redis: TestRedis;
  let h: Harness;
  before(async () => {
    redis = await startRedis();
    h = await startHarness({ namespaces: [NS], rbac: manifestsYaml(upstreamRole(NS, 'console-ops-read', [group('oidc:ops')], READ)), impersonable: RULES.impersonable, ruleSet: RULES, people: { olga: ['ops'] }, sessions: { storeUrl: redis.url, maxLifetimeMs: LIFETIME_MS }, console: {} });
  });
  after(async () => {
    await h?.stop();
    await redis?.stop();
  });

  it('GIVEN olga signed in through the console with a terminal running a watch WHEN her session reaches its lifetime THEN the terminal and its kubectl end, and the end is recorded', async () => {
    const base = `https://127.0.0.1:${h.port}`;
    const agent = new Agent({ connect: { ca: h.proxyCa.caPem } });
    const started = Date.now();
    // The console's sign-in, as a browser follows it.
    const login = await fetch(`${base}/console/login`, { redirect: 'manual', dispatcher: agent });
    assert.equal(login.status, 302);
    const loginCookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    const back = await signIn(login.headers.get('location') ?? '', { login: 'olga', caPem: h.oidc.caPem, stopAt: (u) => u.pathname === '/console/callback' });
    const cb = await fetch(back.url, { headers: { cookie: loginCookie }, redirect: 'manual', dispatcher: agent });
    assert.equal(cb.status, 200, await cb.clone().text());
    const session = (cb.headers.getSetCookie().find((c) => c.startsWith('portcullis_console=')) ?? '').split(';')[0] ?? '';
    assert.match(session, /^portcullis_console=pcs1\./);
    const me = (await (await fetch(`${base}/console/api/me`, { headers: { cookie: session }, dispatcher: agent })).json()) as { user: string; csrf: string };
    assert.equal(me.user, 'oidc:olga');
    // A terminal with a watch running.
    const ws = new WebSocket(`wss://127.0.0.1:${h.port}/console/terminal`, { headers: { cookie: session, origin: base }, ca: h.proxyCa.caPem });
    let out = '';
    ws.on('message', (d) => (out += d.toString()));
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ csrf: me.csrf }));
    ws.send(JSON.stringify({ t: 'i', d: `kubectl get pods -n ${NS} -w\r` }));
    for (let i = 0; i < 200 && h.proxy.console?.terminals()[0]?.running === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    const term = h.proxy.console?.terminals()[0];
    assert.ok(term?.running, `a watch runs: ${out}`);
    const pid = term.running;
    // The lifetime ends it, with nothing else happening.
    const end = await closed;
    const endedAfter = Date.now() - started;
    assert.equal(end.reason, 'session-ended');
    assert.ok(endedAfter >= LIFETIME_MS - 2000 && endedAfter < LIFETIME_MS + 5000, `ended after ${endedAfter} ms`);
    assert.match(out, /terminal ended: session-ended/);
    for (let i = 0; i < 60 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(`/proc/${pid}`), false, 'its kubectl is gone');
    assert.equal(existsSync(term.dir), false);
    const events = await h.auditEventsWhen((es) => es.some((e) => e.requestURI === '/console/terminal' && e.stage === 'ResponseComplete'));
    const record = events.find((e) => e.requestURI === '/console/terminal' && e.stage === 'ResponseComplete');
    assert.equal(record?.user.username, 'oidc:olga');
    assert.match(record?.annotations['portcullis.dev/reason'] ?? '', /console terminal ended \(session-ended\) after 1 kubectl command/);
    await agent.close();
  });
});
