// Break-glass end to end: vanilla kubectl plus `portcullis break-glass`, a real
// webhook receiver on loopback, activation shared by two proxy replicas through
// the state directory, and streams closing when the activation ends.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, type Harness } from './harness.ts';

const NS = 'proxy-break-glass';
const BG = grant('bg-ops', [user('oidc:bob')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['secrets'] }], ns(NS), {
  conditions: { breakGlass: { maxDurationSeconds: 600, notify: ['#incidents'] } },
  activationGroup: 'portcullis:grant:bg-ops',
  line: 42,
});
const RULES = ruleSet('dev', [BG], { users: ['oidc:alice'] });
// The compiler binds a conditional grant upstream to its activation group only.
const RBAC = manifestsYaml(upstreamRole(NS, 'bg-ops', [group('portcullis:grant:bg-ops')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['secrets'] }]));

const ROOT = resolve(import.meta.dirname, '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('break-glass', () => {
  let h: Harness;
  let bob: string;
  let alice: string;
  const hooks: Record<string, unknown>[] = [];
  let failHook = false;
  const hook = createServer((req: IncomingMessage, res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString()));
    req.on('end', () => {
      if (failHook) {
        res.writeHead(500).end();
        return;
      }
      hooks.push(JSON.parse(b) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  // Asynchronous on purpose: the proxy runs in this process.
  const cli = (kc: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((res) => {
      const p = spawn(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'break-glass', '--kubeconfig', kc, '--cluster', 'dev', ...args]);
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
      p.on('close', (status) => {
        clearTimeout(t);
        res({ status, stdout, stderr });
      });
    });

  before(async () => {
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    h = await startHarness({
      namespaces: [NS],
      rbac: RBAC,
      impersonable: RULES.impersonable,
      ruleSet: RULES,
      configExtra: { breakGlass: { webhookUrl: url, stateDir: 'break-glass-state' } },
    });
    h.admin(['create', 'secret', 'generic', 'db', '-n', NS, '--from-literal=k=v']);
    bob = h.kubeconfig(await h.token('bob', []));
    alice = h.kubeconfig(await h.token('alice', []));
  });
  after(async () => {
    await h?.stop();
    hook.close();
  });

  it('GIVEN a break-glass grant not invoked WHEN bob lists secrets THEN it is denied', async () => {
    const r = await h.kubectl(bob, ['get', 'secrets', '-n', NS]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Forbidden/);
  });

  it('GIVEN bad invocations WHEN they are sent THEN each is refused and nothing is activated or notified', async () => {
    let r = await cli(bob, ['--grant', 'bg-ops', '--reason', '  ']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /HTTP 400.*reason/);
    r = await cli(bob, ['--grant', 'bg-ops', '--reason', 'x', '--duration', '2h']);
    assert.match(r.stderr, /HTTP 400.*durationSeconds/);
    r = await cli(alice, ['--grant', 'bg-ops', '--reason', 'not mine']);
    assert.match(r.stderr, /HTTP 403/);
    r = await cli(bob, ['--grant', 'no-such-grant', '--reason', 'x']);
    assert.match(r.stderr, /HTTP 403/);
    failHook = true;
    r = await cli(bob, ['--grant', 'bg-ops', '--reason', 'webhook down']);
    failHook = false;
    assert.match(r.stderr, /HTTP 503.*notification failed/);
    assert.equal(hooks.length, 0);
    assert.notEqual((await h.kubectl(bob, ['get', 'secrets', '-n', NS])).status, 0);
  });

  it('GIVEN bob invokes it with a reason WHEN he lists and watches secrets THEN it works, upstream through the activation group, and the watch ends with the activation', async () => {
    const r = await cli(bob, ['--grant', 'bg-ops', '--reason', 'INC-42 database down', '--duration', '4s']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /break-glass grant bg-ops active on dev until/);
    assert.equal(hooks.length, 1);
    assert.equal(hooks[0]?.['grant'], 'bg-ops');
    assert.equal(hooks[0]?.['user'], 'oidc:bob');
    assert.equal(hooks[0]?.['reason'], 'INC-42 database down');
    assert.deepEqual(hooks[0]?.['notify'], ['#incidents']);
    const list = await h.kubectl(bob, ['get', 'secrets', '-n', NS, '-o', 'name']);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /secret\/db/);
    const events = h.auditEvents();
    const activation = events.find((e) => e.annotations['portcullis.dev/break-glass']?.startsWith('activated bg-ops'));
    assert.ok(activation, 'the activation is audited');
    assert.match(activation.annotations['portcullis.dev/break-glass'] ?? '', /INC-42 database down/);
    const listed = events.filter((e) => e.user.username === 'oidc:bob' && e.objectRef?.resource === 'secrets' && e.responseStatus.code === 200).at(-1);
    assert.deepEqual(listed?.impersonatedUser?.groups, ['portcullis:grant:bg-ops']);
    assert.equal(listed?.annotations['portcullis.dev/source'], 'policies/test.ts:42');
    const w = h.spawnKubectl(bob, ['get', 'secrets', '-n', NS, '-w', '-o', 'name']);
    await w.waitFor(/secret\/db/);
    await w.exited;
    await sleep(100);
    const end = h.auditEvents().filter((e) => e.user.username === 'oidc:bob' && e.verb === 'watch' && e.stage === 'ResponseComplete').at(-1);
    assert.equal(end?.annotations['portcullis.dev/stream-end'], 'break-glass-ended');
    const after = await h.kubectl(bob, ['get', 'secrets', '-n', NS]);
    assert.notEqual(after.status, 0, 'expired activation denies again');
  });

  it('GIVEN two replicas sharing the state directory WHEN bob activates through one THEN the other honours it', async () => {
    const replica = await h.extraProxy((c) => ({ ...c, listen: { host: '127.0.0.1', port: 0 }, audit: { ...c.audit, file: { path: join(h.dir, 'audit-replica.log'), maxBytes: 1e6, maxFiles: 1 } } }));
    const tok = await h.token('bob', []);
    const path = `/clusters/dev/api/v1/namespaces/${NS}/secrets`;
    assert.equal((await h.request('GET', path, [['Authorization', `Bearer ${tok}`]], undefined, replica.port)).status, 403);
    assert.equal((await cli(bob, ['--grant', 'bg-ops', '--reason', 'INC-43', '--duration', '60s'])).status, 0);
    await sleep(600);
    assert.equal((await h.request('GET', path, [['Authorization', `Bearer ${tok}`]], undefined, replica.port)).status, 200);
    await replica.proxy.stop();
  });

  it('GIVEN replicas sharing a ConfigMap WHEN two activate at the same moment through different replicas THEN both are recorded and both replicas honour them', async () => {
    const name = `portcullis-break-glass-${Date.now().toString(36)}`;
    assert.equal(h.admin(['apply', '-f', '-'], manifestsYaml([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'portcullis-system' } }])).status, 0);
    const tokenFile = h.configMapAccount(name, 'writer', ['get', 'update']);
    const replica = (i: number) =>
      h.extraProxy((c) => ({
        ...c,
        listen: { host: '127.0.0.1', port: 0 },
        audit: { ...c.audit, file: { path: join(h.dir, `audit-cm-${i}.log`), maxBytes: 1e6, maxFiles: 1 } },
        breakGlass: { ...(c.breakGlass.webhookUrl !== undefined ? { webhookUrl: c.breakGlass.webhookUrl } : {}), configMap: { cluster: 'dev', tokenFile, namespace: 'portcullis-system', name } },
      }));
    const [a, b] = [await replica(1), await replica(2)];
    const bobTok = await h.token('bob', []);
    const path = `/clusters/dev/api/v1/namespaces/${NS}/secrets`;
    const auth: [string, string] = ['Authorization', `Bearer ${bobTok}`];
    assert.equal((await h.request('GET', path, [auth], undefined, b.port)).status, 403);
    const body = (reason: string) => JSON.stringify({ grant: 'bg-ops', reason, durationSeconds: 120 });
    const [ra, rb] = await Promise.all([
      h.request('POST', '/clusters/dev/portcullis/break-glass', [auth, ['Content-Type', 'application/json']], body('INC-50 via a'), a.port),
      h.request('POST', '/clusters/dev/portcullis/break-glass', [auth, ['Content-Type', 'application/json']], body('INC-50 via b'), b.port),
    ]);
    assert.equal(ra.status, 201, ra.body);
    assert.equal(rb.status, 201, rb.body);
    const cm = JSON.parse(h.admin(['get', 'configmap', name, '-n', 'portcullis-system', '-o', 'json']).stdout) as { data: Record<string, string> };
    const reasons = Object.values(cm.data).map((v) => (JSON.parse(v) as { reason: string }).reason).sort();
    assert.deepEqual(reasons, ['INC-50 via a', 'INC-50 via b']);
    await sleep(700);
    for (const r of [a, b]) assert.equal((await h.request('GET', path, [auth], undefined, r.port)).status, 200);
    await a.proxy.stop();
    await b.proxy.stop();
  });
});
