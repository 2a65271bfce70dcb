// Locks (issue 14): `portcullis lock` through one replica is in force on the other within a
// second: a live exec and a live watch there are closed and audited `stream-end: locked`, new
// requests are refused with a Status that says access is locked, the person's sessions end.
// Who may lock is the policy's word (Roles.locker); bad input changes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LOCKS_PATH, MEMBER_USER } from '../../core/names.ts';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from '../proxy/harness.ts';
import { browserLogin, cli, onPort, trustBundle, writeKubeconfig } from '../support/login-cli.ts';
import { signIn } from '../support/oidc-browser.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const NS = 'login-locks';
const SRE_OPS = grant('sre-ops', [group('oidc:sre')], [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] },
  { verbs: ['create'], apiGroups: [''], resources: ['pods/exec'] },
], ns(NS), { line: 4 });
const CONTRACTORS = grant('contractors-read', [group('oidc:contractors')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }], ns(NS), { line: 9 });
// Roles.locker: the right to set, lift and list locks, granted like any other.
const LOCKERS = grant('security-locks', [group('oidc:security')], [{ nonResourceURLs: [LOCKS_PATH], verbs: ['get', 'post', 'delete'] }], { kind: 'cluster' }, { line: 12 });
const RULES = ruleSet('dev', [SRE_OPS, CONTRACTORS, LOCKERS], { users: [MEMBER_USER] });
const RBAC = manifestsYaml([
  ...upstreamRole(NS, 'locks-sre', [group('oidc:sre')], [
    { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] },
    { verbs: ['get', 'create'], apiGroups: [''], resources: ['pods/exec'] },
  ]),
  ...upstreamRole(NS, 'locks-contractors', [group('oidc:contractors')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }]),
]);

describe('locks', () => {
  let redis: TestRedis;
  let h: Harness;
  let other: { port: number; proxy: { audit: { flush(): void } } };
  let sam: string;
  let pod: string;
  before(async () => {
    redis = await startRedis();
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES, people: { nina: ['sre'], sam: ['security'], carl: ['contractors'] }, sessions: { storeUrl: redis.url, touchIntervalMs: 500 } });
    other = await h.extraProxy((c) => ({ ...c, audit: { ...c.audit, file: { ...c.audit.file!, path: join(h.dir, 'audit-other.log') } } }));
    pod = await h.fleet.createPod(h.cluster, NS, { name: 'lockable' });
    sam = await browserLogin(h, 'sam');
  });
  after(async () => {
    await h?.stop();
    await redis?.stop();
  });

  const lockCli = async (args: readonly string[]) => {
    const c = cli(sam, args);
    return { code: await c.exited, out: c.output() };
  };

  it('GIVEN nina watching and exec-ing through one replica WHEN sam locks her through the other THEN both streams end within a second (audited: locked), her session ends, and her identity provider token gets a Status saying access is locked', async () => {
    const nina = await browserLogin(h, 'nina');
    const kc = onPort(h, await writeKubeconfig(nina), other.port);
    const watch = h.spawnKubectl(kc, ['get', 'pods', '-n', NS, '-w']);
    const exec = h.spawnKubectl(kc, ['exec', '-i', pod, '-n', NS, '--', 'cat'], { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true' });
    try {
      await watch.waitFor(/lockable/);
      exec.write('still here\n');
      await exec.waitFor(/still here/);
      const r = await lockCli(['lock', '--user', 'oidc:nina', '--reason', 'laptop stolen']);
      const locked = Date.now();
      assert.equal(r.code, 0, r.out);
      const [lockId] = /lock-[0-9a-f]{12}/.exec(r.out) ?? [];
      const within = (p: Promise<number | null>) => Promise.race([p.then(() => Date.now() - locked), new Promise<number>((res) => setTimeout(() => res(Infinity), 3000))]);
      const [w, e] = await Promise.all([within(watch.exited), within(exec.exited)]);
      assert.ok(w <= 1000 && e <= 1000, `watch ended after ${w} ms, exec after ${e} ms`);
      // An exec's last record follows its recording's close: poll briefly for both.
      const lockedEnds = (): AuditEvent[] => {
        other.proxy.audit.flush();
        return readFileSync(join(h.dir, 'audit-other.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent).filter((x) => x.stage === 'ResponseComplete' && x.annotations['portcullis.dev/stream-end'] === 'locked');
      };
      for (let i = 0; i < 60 && lockedEnds().length < 2; i++) await new Promise((res) => setTimeout(res, 50));
      const ends = lockedEnds();
      assert.deepEqual(ends.map((x) => x.objectRef?.subresource ?? x.verb).sort(), ['exec', 'watch']);
      // Her session ended on every replica: the credential itself is refused (401), not only the lock's 403.
      const gone = await h.kubectl(kc, ['get', 'pods', '-n', NS]);
      assert.notEqual(gone.status, 0);
      assert.match(gone.stderr, /Unauthorized|must be logged in/);
      // Locked, she cannot sign in again either.
      const again = cli(mkdtempSync(join(tmpdir(), 'portcullis-home-locked-')), ['login', '--proxy', `https://127.0.0.1:${h.port}`, '--ca', trustBundle(h), '--no-browser']);
      const [, url] = await again.waitFor(/Sign in through your browser: (\S+)/);
      await fetch((await signIn(url ?? '', { login: 'nina', caPem: h.oidc.caPem })).url);
      assert.equal(await again.exited, 1);
      assert.match(again.output(), /access is locked: laptop stolen/);
      // Signed in another way (the identity provider's own token), she is refused by the lock, and told so.
      const direct = h.kubeconfig(await h.token('nina', ['sre']));
      const refused = await h.kubectl(direct, ['get', 'pods', '-n', NS]);
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /access is locked: laptop stolen/);
      const list = await lockCli(['locks']);
      assert.match(list.out, new RegExp(`${lockId}\\s+user\\s+oidc:nina\\s+by oidc:sam at \\S+\\s+until lifted\\s+laptop stolen`));
      assert.equal((await lockCli(['unlock', lockId ?? ''])).code, 0);
      assert.equal((await h.kubectl(direct, ['get', 'pods', '-n', NS])).status, 0, 'lifted');
    } finally {
      watch.kill();
      exec.kill();
    }
  });

  it('GIVEN a group lock that expires by itself, and a grant lock WHEN their subjects ask THEN refused while in force, served after', async () => {
    const carl = h.kubeconfig(await h.token('carl', ['contractors']));
    const r = await lockCli(['lock', '--group', 'oidc:contractors', '--reason', 'audit week', '--expires', '3s']);
    assert.equal(r.code, 0, r.out);
    assert.match((await h.kubectl(carl, ['get', 'pods', '-n', NS])).stderr, /access is locked: audit week/);
    await new Promise((res) => setTimeout(res, 3200));
    assert.equal((await h.kubectl(carl, ['get', 'pods', '-n', NS])).status, 0, 'expired');
    const nina = h.kubeconfig(await h.token('nina', ['sre']));
    const g = await lockCli(['lock', '--grant', 'sre-ops', '--reason', 'rotating credentials']);
    assert.equal(g.code, 0, g.out);
    assert.match((await h.kubectl(nina, ['get', 'pods', '-n', NS])).stderr, /access is locked: rotating credentials/);
    assert.equal((await h.kubectl(carl, ['get', 'pods', '-n', NS])).status, 0, 'another grant is not locked');
    assert.equal((await lockCli(['unlock', /lock-[0-9a-f]{12}/.exec(g.out)?.[0] ?? ''])).code, 0);
  });

  it('GIVEN the store stops answering (stalled, not gone) WHEN sam sets a lock THEN a 503 within the store deadline, not a hang, and the log says the store did not answer', async () => {
    redis.pause();
    try {
      const t0 = Date.now();
      const c = cli(sam, ['lock', '--user', 'oidc:carl', '--reason', 'stalled store']);
      const held = new Promise<'held open'>((r) => setTimeout(() => r('held open'), 10_000).unref());
      assert.equal(await Promise.race([c.exited, held]), 1, `the lock command ends with a refusal, not held open: ${c.output()}`);
      assert.match(c.output(), /503/);
      assert.ok(Date.now() - t0 < 2000 + 4000, `answered after ${Date.now() - t0} ms`);
      assert.ok(h.logs().some((l) => /the lock store did not answer within 2 s/.test(String(l['detail']))), 'the detail names the deadline');
    } finally {
      redis.resume();
    }
    // What was sent may still take effect once the store answers: lift whatever it set.
    const m = /lock-[0-9a-f]{12}/.exec((await lockCli(['locks'])).out.split('\n').find((l) => l.includes('stalled store')) ?? '');
    if (m) assert.equal((await lockCli(['unlock', m[0]])).code, 0);
  });

  it('GIVEN bad locks WHEN asked for THEN each is refused with a clear error and nothing is locked', async () => {
    const before = (await lockCli(['locks'])).out;
    for (const [args, code, why] of [
      [['lock', '--group', 'oidc:nobody-knows'], 1, /no grant or deny names group oidc:nobody-knows/],
      [['lock', '--user', 'alice'], 1, /alice carries no identity provider's prefix/],
      [['lock', '--grant', 'no-such-grant'], 1, /no grant no-such-grant in the policy/],
      [['lock', '--cluster', 'moon'], 1, /no cluster moon behind this proxy/],
      [['lock', '--user', 'oidc:nina', '--group', 'oidc:sre'], 2, /exactly one of --user, --group, --cluster or --grant/],
      [['lock', '--user', 'oidc:nina', '--expires', 'soon'], 2, /a duration such as 30m/],
      [['unlock', 'lock-000000000000'], 1, /no lock lock-000000000000 is in force/],
    ] as const) {
      const r = await lockCli(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.out}`);
      assert.match(r.out, why);
    }
    // nina is no locker: the policy names only security.
    const nina = await browserLogin(h, 'nina');
    const c = cli(nina, ['lock', '--user', 'oidc:sam']);
    assert.equal(await c.exited, 1);
    assert.match(c.output(), /oidc:nina may not lock user oidc:sam/);
    assert.equal((await lockCli(['locks'])).out, before);
  });
});
