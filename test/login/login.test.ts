// `portcullis login` end to end (issue 14): the real CLI signs in at the real identity provider
// (oidc-provider's own sign-in and consent forms, filled in as a person would), through the
// browser flow (PKCE, loopback redirect) and the device flow; the proxy turns the ID token into a
// session shared by two replicas through a real Redis; the session's fleet kubeconfig works with
// plain kubectl (no plugin) on both replicas, and stops working at logout, after the idle
// timeout and at the maximum lifetime. Bad input changes nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { MEMBER_USER } from '../../core/names.ts';
import { LOGIN_CLIENT_ID } from '../../sandbox/oidc-issuer.ts';
import { ensureBinaries } from '../../sandbox/build.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from '../proxy/harness.ts';
import { signIn } from '../support/oidc-browser.ts';
import { browserLogin, cli, onPort, trustBundle, writeKubeconfig } from '../support/login-cli.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const NS = 'login-sessions';
const SRE_RULES = [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] },
  // What helm needs to install a chart of configmaps: the objects, and its release records (secrets).
  { verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], apiGroups: [''], resources: ['configmaps', 'secrets'] },
];
const SRE_READ = grant('sre-read', [group('oidc:sre')], SRE_RULES, ns(NS), { line: 3 });
// nina and alice are in sre; no grant names either of them: access follows the group.
const RULES = ruleSet('dev', [SRE_READ], { users: [MEMBER_USER] });
const RBAC = manifestsYaml(upstreamRole(NS, 'login-sre-read', [group('oidc:sre')], SRE_RULES));
const PEOPLE = { alice: ['sre'], nina: ['sre'], bob: ['finance'] };

describe('portcullis login, sessions and the fleet kubeconfig', () => {
  let redis: TestRedis;
  let h: Harness;
  let other: { port: number; proxy: { reload(cluster: string): Promise<unknown> }; logs: () => Record<string, unknown>[] };
  let ca: string;

  before(async () => {
    redis = await startRedis();
    h = await startHarness({
      namespaces: [NS],
      rbac: RBAC,
      impersonable: RULES.impersonable,
      ruleSet: RULES,
      people: PEOPLE,
      deviceCodeTtlSeconds: 8,
      sessions: { storeUrl: redis.url, idleTimeoutMs: 6000, touchIntervalMs: 300, storeGraceMs: 2000 },
    });
    other = await h.extraProxy((c) => c);
    ca = trustBundle(h);
    await h.fleet.createPod(h.cluster, NS, { name: 'seen-by-sre' });
  });
  after(async () => {
    await h?.stop();
    await redis?.stop();
  });

  it('GIVEN nina, a member of sre no grant names WHEN she logs in through the browser THEN her kubeconfig has a plain token (no plugin), works with kubectl on both replicas, and gives exactly what sre is granted', async () => {
    const home = await browserLogin(h, 'nina');
    const session = JSON.parse(readFileSync(join(home, 'portcullis', 'session.json'), 'utf8')) as { user: string; groups: string[]; credential: string };
    assert.equal(session.user, 'oidc:nina');
    assert.deepEqual(session.groups, ['oidc:sre']);
    assert.equal(statSync(join(home, 'portcullis', 'session.json')).mode & 0o777, 0o600);
    const kc = await writeKubeconfig(home);
    const config = parse(readFileSync(kc, 'utf8')) as { contexts: { name: string }[]; users: { user: Record<string, unknown> }[] };
    assert.deepEqual(config.contexts.map((c) => c.name), ['dev']);
    assert.deepEqual(Object.keys(config.users[0]?.user ?? {}), ['token'], 'no exec plugin: a plain bearer token');
    for (const file of [kc, onPort(h, kc, other.port)]) {
      const r = await h.kubectl(file, ['get', 'pods', '-n', NS, '-o', 'name']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /pod\/seen-by-sre/);
      const del = await h.kubectl(file, ['delete', 'pod', 'seen-by-sre', '-n', NS, '--dry-run=server']);
      assert.notEqual(del.status, 0, 'sre may not delete');
      assert.match(del.stderr, /forbidden/i);
    }
    const who = await h.kubectl(kc, ['auth', 'whoami', '-o', 'json']);
    assert.match(who.stdout, /oidc:nina/);
  });

  it('GIVEN the session kubeconfig WHEN helm installs, upgrades and uninstalls a chart with it THEN it works as it is, with no plugin, and every call is audited as the person', async () => {
    const { helm } = await ensureBinaries({ log: () => undefined });
    const home = await browserLogin(h, 'nina');
    const kc = await writeKubeconfig(home);
    const chart = join(home, 'chart');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: portcullis-demo\nversion: 0.1.0\n');
    writeFileSync(join(chart, 'templates', 'config.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  colour: {{ .Values.colour | default "teal" | quote }}\n');
    const release = `demo-${Date.now() % 100000}`;
    // Asynchronously: the proxy under test runs in this very process.
    const run = (args: readonly string[]) =>
      new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const p = spawn(helm, ['--kubeconfig', kc, '-n', NS, ...args], { env: { ...process.env, HOME: home, HELM_CACHE_HOME: join(home, '.helm-cache'), HELM_CONFIG_HOME: join(home, '.helm-config'), HELM_DATA_HOME: join(home, '.helm-data') } });
        let stderr = '';
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        p.stdout.resume();
        p.on('close', (status) => resolve({ status, stderr }));
      });
    let r = await run(['install', release, chart]);
    assert.equal(r.status, 0, r.stderr);
    assert.match((await h.kubectl(kc, ['get', 'configmap', `${release}-config`, '-n', NS, '-o', 'jsonpath={.data.colour}'])).stdout, /teal/);
    r = await run(['upgrade', release, chart, '--set', 'colour=red']);
    assert.equal(r.status, 0, r.stderr);
    assert.match((await h.kubectl(kc, ['get', 'configmap', `${release}-config`, '-n', NS, '-o', 'jsonpath={.data.colour}'])).stdout, /red/);
    r = await run(['uninstall', release]);
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual((await h.kubectl(kc, ['get', 'configmap', `${release}-config`, '-n', NS])).status, 0, 'gone');
    const helmCalls = h.auditEvents().filter((e) => e.userAgent?.startsWith('Helm/') && e.user.username === 'oidc:nina');
    assert.ok(helmCalls.some((e) => e.verb === 'create' && e.objectRef?.resource === 'secrets'), 'helm recorded its release, audited as nina');
  });

  it('GIVEN a session WHEN its owner logs out on one replica THEN the kubeconfig stops working on the other within a second', async () => {
    const home = await browserLogin(h, 'alice');
    const kc = await writeKubeconfig(home);
    const onOther = onPort(h, kc, other.port);
    assert.equal((await h.kubectl(onOther, ['get', 'pods', '-n', NS])).status, 0);
    const out = cli(home, ['logout']);
    assert.equal(await out.exited, 0, out.output());
    const t = Date.now();
    let r = await h.kubectl(onOther, ['get', 'pods', '-n', NS]);
    while (r.status === 0 && Date.now() - t < 1000) r = await h.kubectl(onOther, ['get', 'pods', '-n', NS]);
    assert.notEqual(r.status, 0, 'refused within 1 s on the other replica');
    assert.match(r.stderr, /Unauthorized|must be logged in/);
    const again = cli(home, ['kubeconfig']);
    assert.notEqual(await again.exited, 0);
    assert.match(again.output(), /not logged in/);
  });

  it('GIVEN a kubeconfig whose user is portcullis credential (exec plugin) WHEN kubectl needs a token THEN the person signs in once at the provider; the ID token is cached for the next call', async () => {
    const home = mkdtempSync(join(tmpdir(), 'portcullis-home-exec-'));
    const kc = join(home, 'exec.yaml');
    writeFileSync(
      kc,
      readFileSync(h.kubeconfig('unused'), 'utf8').replace(
        /users:[\s\S]*?contexts:/,
        `users:\n  - name: u\n    user:\n      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: ${process.execPath}\n        args: [${join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js')}, credential, --proxy, "https://127.0.0.1:${h.port}", --ca, ${ca}]\n        interactiveMode: Never\n        env: [{ name: XDG_CONFIG_HOME, value: ${home} }]\ncontexts:`,
      ),
    );
    const run = () => {
      const p = spawn(h.kubectlBin, ['--kubeconfig', kc, 'get', 'pods', '-n', NS, '-o', 'name'], { env: { ...process.env, HOME: home } });
      let out = '';
      let err = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      return { err: () => err, done: new Promise<{ code: number | null; out: string }>((r) => p.on('close', (code) => r({ code, out }))) };
    };
    const first = run();
    const deadline = Date.now() + 15_000;
    while (!/Sign in through your browser: \S+/.test(first.err()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const url = /Sign in through your browser: (\S+)/.exec(first.err())?.[1] ?? '';
    await fetch((await signIn(url, { login: 'nina', caPem: h.oidc.caPem })).url);
    const r1 = await first.done;
    assert.equal(r1.code, 0, first.err());
    assert.match(r1.out, /pod\/seen-by-sre/);
    const second = run();
    const r2 = await second.done;
    assert.equal(r2.code, 0, second.err());
    assert.doesNotMatch(second.err(), /Sign in/, 'the cached token served');
    assert.equal(statSync(join(home, 'portcullis', 'id-tokens.json')).mode & 0o777, 0o600);
  });

  it('GIVEN the device flow WHEN bob signs in on another device THEN he gets a session; with no grant anywhere his kubeconfig lists no cluster', async () => {
    const home = mkdtempSync(join(tmpdir(), 'portcullis-home-bob-'));
    const c = cli(home, ['login', '--device', '--proxy', `https://127.0.0.1:${h.port}`, '--ca', ca]);
    const [, , , complete] = await c.waitFor(/open (\S+) on any device and enter the code (\S+) \(or open (\S+)\)/);
    await signIn(complete ?? '', { login: 'bob', caPem: h.oidc.caPem });
    assert.equal(await c.exited, 0, c.output());
    const kc = await writeKubeconfig(home);
    assert.deepEqual((parse(readFileSync(kc, 'utf8')) as { contexts: unknown[] }).contexts, []);
  });

  it('GIVEN a device code nobody enters WHEN it expires THEN login fails saying so, and no session is written', async () => {
    const home = mkdtempSync(join(tmpdir(), 'portcullis-home-late-'));
    const c = cli(home, ['login', '--device', '--proxy', `https://127.0.0.1:${h.port}`, '--ca', ca]);
    assert.equal(await c.exited, 1, c.output());
    assert.match(c.output(), /the device code expired before sign-in finished/);
    assert.throws(() => statSync(join(home, 'portcullis', 'session.json')));
  });

  it('GIVEN an authorization code already redeemed WHEN it is replayed at the provider THEN refused; the proxy takes no code at all, only a verified ID token', async () => {
    const home = mkdtempSync(join(tmpdir(), 'portcullis-home-replay-'));
    const c = cli(home, ['login', '--proxy', `https://127.0.0.1:${h.port}`, '--ca', ca, '--no-browser']);
    const [, url] = await c.waitFor(/Sign in through your browser: (\S+)/);
    const back = await signIn(url ?? '', { login: 'nina', caPem: h.oidc.caPem });
    await fetch(back.url);
    assert.equal(await c.exited, 0, c.output());
    const u = new URL(back.url);
    const tokenEndpoint = `${h.oidc.issuer}/token`;
    const { Agent, fetch: uf } = await import('undici');
    const r = await uf(tokenEndpoint, {
      method: 'POST',
      dispatcher: new Agent({ connect: { ca: h.oidc.caPem } }),
      body: new URLSearchParams({ grant_type: 'authorization_code', code: u.searchParams.get('code') ?? '', redirect_uri: `${u.origin}/callback`, client_id: LOGIN_CLIENT_ID, code_verifier: 'x'.repeat(43) }),
    });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { error: string }).error, 'invalid_grant');
  });

  it('GIVEN forged and altered session credentials WHEN kubectl uses them THEN 401 every time; a session credential cannot make another session', async () => {
    const home = await browserLogin(h, 'alice');
    const kc = await writeKubeconfig(home);
    const credential = JSON.parse(readFileSync(join(home, 'portcullis', 'session.json'), 'utf8')).credential as string;
    const [, id, mac] = /^pcs1\.([^.]+)\.(.+)$/.exec(credential) ?? [];
    const flip = (s: string) => (s[0] === 'A' ? `B${s.slice(1)}` : `A${s.slice(1)}`);
    for (const bad of [`pcs1.${id}.${flip(mac ?? '')}`, `pcs1.${flip(id ?? '')}.${mac}`, `pcs1.${'A'.repeat(22)}.${'A'.repeat(43)}`, `pcs1.${id}`]) {
      const file = join(home, 'bad.yaml');
      writeFileSync(file, readFileSync(kc, 'utf8').replace(credential, bad));
      const r = await h.kubectl(file, ['get', 'pods', '-n', NS]);
      assert.notEqual(r.status, 0, bad);
      assert.match(r.stderr, /Unauthorized|must be logged in/, bad);
    }
    const r = await h.request('POST', '/portcullis/v1/sessions', [['authorization', `Bearer ${credential}`]]);
    assert.equal(r.status, 401);
    // Nor does a token the proxy accepts for requests but that is no login (another audience, as a CI job's).
    const ci = await h.request('POST', '/portcullis/v1/sessions', [['authorization', `Bearer ${await h.token('nina', ['sre'])}`]]);
    assert.equal(ci.status, 401);
    assert.equal((await h.kubectl(kc, ['get', 'pods', '-n', NS])).status, 0, 'the real credential still works');
    const records = h.auditEvents().filter((e) => e.requestURI === '/portcullis/v1/sessions' && e.responseStatus.code === 401);
    assert.ok(records.length >= 1, 'the refused session request is audited');
  });

  it('GIVEN an idle timeout of 6 s WHEN a session is not used for longer THEN it is refused; used often, it lives on', async () => {
    const home = await browserLogin(h, 'nina');
    const kc = await writeKubeconfig(home);
    for (let i = 0; i < 4; i++) {
      assert.equal((await h.kubectl(i % 2 ? onPort(h, kc, other.port) : kc, ['get', 'pods', '-n', NS])).status, 0, `use ${i}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    await new Promise((r) => setTimeout(r, 7000));
    const r = await h.kubectl(onPort(h, kc, other.port), ['get', 'pods', '-n', NS]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Unauthorized|must be logged in/);
  });

  it('GIVEN a replica whose sessions last at most 6 s WHEN a session is used past that THEN refused, however busy', async () => {
    const short = await h.extraProxy((c) => ({ ...c, sessions: { ...(c.sessions as NonNullable<typeof c.sessions>), maxLifetimeMs: 6000 } }));
    // The lifetime runs from the sign-in: on a loaded machine the sign-in alone can take seconds.
    const t = Date.now();
    const home = await browserLogin(h, 'nina', short.port);
    // The session was made before this moment: 6 s after it, it is over.
    const made = Date.now();
    const kc = await writeKubeconfig(home);
    assert.equal((await h.kubectl(kc, ['get', 'pods', '-n', NS])).status, 0, `in use ${Date.now() - t} ms after the sign-in began`);
    while (Date.now() - made < 6200) {
      await h.kubectl(kc, ['get', 'pods', '-n', NS]);
      await new Promise((r) => setTimeout(r, 300));
    }
    const r = await h.kubectl(kc, ['get', 'pods', '-n', NS]);
    assert.notEqual(r.status, 0);
  });

  it('GIVEN the policy limits sessions on dev to 3 s (SessionLimits) WHEN an older session asks THEN dev refuses it, saying why; WHEN the limit goes THEN the same session works again (it was never revoked)', async () => {
    const home = await browserLogin(h, 'nina');
    const kc = await writeKubeconfig(home);
    assert.equal((await h.kubectl(kc, ['get', 'pods', '-n', NS])).status, 0);
    await h.publish({ ...RULES, sessionLimits: { maxLifetimeSeconds: 3 } }, 2);
    await other.proxy.reload('dev');
    await new Promise((r) => setTimeout(r, 3200));
    const r = await h.kubectl(onPort(h, kc, other.port), ['get', 'pods', '-n', NS]);
    assert.notEqual(r.status, 0);
    assert.ok(other.logs().some((l) => /session is older than cluster dev allows \(3s\)/.test(String(l['detail']))), 'the refusal says why (in the log and the audit record, not to the client)');
    await h.publish(RULES, 3);
    await other.proxy.reload('dev');
    assert.equal((await h.kubectl(kc, ['get', 'pods', '-n', NS])).status, 0, 'without the limit, the session is good again');
  });

  it('GIVEN the store stops answering (stalled, not gone) WHEN someone logs in THEN a 503 saying so within the store deadline, not a hang; WHEN it answers again THEN the login works', async () => {
    redis.pause();
    try {
      const home = mkdtempSync(join(tmpdir(), 'portcullis-home-stalled-'));
      const c = cli(home, ['login', '--proxy', `https://127.0.0.1:${h.port}`, '--ca', ca, '--no-browser']);
      const [, url] = await c.waitFor(/Sign in through your browser: (\S+)/);
      await fetch((await signIn(url ?? '', { login: 'nina', caPem: h.oidc.caPem })).url);
      const t0 = Date.now();
      const held = new Promise<'held open'>((r) => setTimeout(() => r('held open'), 10_000).unref());
      assert.equal(await Promise.race([c.exited, held]), 1, 'the login ends with a refusal, not held open by the store');
      assert.match(c.output(), /503 the session store is unreachable/);
      assert.ok(Date.now() - t0 < 2000 + 3000, `answered ${Date.now() - t0} ms after the sign-in, not held open`);
      // The refusal's detail (log and audit record) says the store stopped answering, not that it is down.
      assert.ok(h.logs().some((l) => /the session store did not answer within 2 s/.test(String(l['detail']))), 'the detail names the deadline');
    } finally {
      redis.resume();
    }
    const home = await browserLogin(h, 'nina');
    assert.equal((await h.kubectl(await writeKubeconfig(home), ['get', 'pods', '-n', NS])).status, 0, 'the store answers again: a login works');
  });

  it('GIVEN the store goes away WHEN someone logs in THEN a clear 503; established sessions work within the grace (2 s), then stop', async () => {
    const home = await browserLogin(h, 'alice');
    const kc = await writeKubeconfig(home);
    await redis.kill();
    try {
      assert.equal((await h.kubectl(kc, ['get', 'pods', '-n', NS])).status, 0, 'within the grace');
      const late = mkdtempSync(join(tmpdir(), 'portcullis-home-down-'));
      const c = cli(late, ['login', '--proxy', `https://127.0.0.1:${h.port}`, '--ca', ca, '--no-browser']);
      const [, url] = await c.waitFor(/Sign in through your browser: (\S+)/);
      await fetch((await signIn(url ?? '', { login: 'nina', caPem: h.oidc.caPem })).url);
      assert.equal(await c.exited, 1);
      assert.match(c.output(), /503 the session store is unreachable/);
      await new Promise((r) => setTimeout(r, 3500));
      const r = await h.kubectl(kc, ['get', 'pods', '-n', NS]);
      assert.notEqual(r.status, 0, 'past the grace, fail closed');
    } finally {
      await redis.restart();
    }
  });
});
