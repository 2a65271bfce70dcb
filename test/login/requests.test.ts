// Access requests with a second person (issue 14): request → approve → access on every replica →
// ends at its duration, or early; the requester cannot approve their own request; a request
// beyond the grant's maxDuration, or an approval by someone the grant does not name, changes
// nothing. The real CLI, the real provider's forms, a real Redis, two replicas, real kubectl.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MEMBER_USER } from '../../core/names.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from '../proxy/harness.ts';
import { browserLogin, cli, onPort, writeKubeconfig } from '../support/login-cli.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const NS = 'login-requests';
const WRITE = [{ verbs: ['create', 'delete'], apiGroups: [''], resources: ['configmaps'] }];
const READ = grant('sre-read', [group('oidc:sre')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }], ns(NS), { line: 3 });
const REQUESTABLE = grant('sre-write', [group('oidc:sre')], WRITE, ns(NS), {
  conditions: { approval: { approvers: [group('oidc:security')], maxDurationSeconds: 3600 } },
  activationGroup: 'portcullis:grant:sre-write',
  line: 6,
});
const RULES = ruleSet('dev', [READ, REQUESTABLE], { users: [MEMBER_USER] });
const RBAC = manifestsYaml([
  ...upstreamRole(NS, 'requests-read', [group('oidc:sre')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }]),
  ...upstreamRole(NS, 'requests-write', [group('portcullis:grant:sre-write')], WRITE),
]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('access requests', () => {
  let redis: TestRedis;
  let h: Harness;
  let otherPort: number;
  const homes: Record<string, string> = {};
  let ninaKc: string;
  before(async () => {
    redis = await startRedis();
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES, people: { nina: ['sre'], sid: ['sre', 'security'], sam: ['security'], carl: ['contractors'] }, sessions: { storeUrl: redis.url } });
    otherPort = (await h.extraProxy((c) => c)).port;
    for (const p of ['nina', 'sid', 'sam', 'carl']) homes[p] = await browserLogin(h, p);
    ninaKc = await writeKubeconfig(homes['nina'] ?? '');
  });
  after(async () => {
    await h?.stop();
    await redis?.stop();
  });

  const run = async (person: string, args: readonly string[]) => {
    const c = cli(homes[person] ?? '', args);
    return { code: await c.exited, out: c.output() };
  };
  const mayWrite = async (kubeconfig: string, name: string) => (await h.kubectl(kubeconfig, ['create', 'configmap', name, '-n', NS])).status === 0;
  /** Polls for up to `ms` until `f` holds (activations reach every replica within about half a second). */
  const eventually = async (f: () => Promise<boolean>, ms = 2000) => {
    const end = Date.now() + ms;
    for (;;) {
      if (await f()) return true;
      if (Date.now() > end) return false;
      await sleep(150);
    }
  };

  it('GIVEN a requestable grant WHEN nina requests it THEN she cannot approve it herself, nor can someone it does not name, nor may she ask beyond its maximum; WHEN sam approves THEN she may write on both replicas until it ends', async () => {
    assert.equal(await mayWrite(ninaKc, 'before-approval'), false);
    const over = await run('nina', ['request', '--grant', 'sre-write', '--cluster', 'dev', '--reason', 'too long', '--duration', '2h']);
    assert.equal(over.code, 1);
    assert.match(over.out, /durationSeconds must be an integer between 1 and 3600/);
    const asked = await run('nina', ['request', '--grant', 'sre-write', '--cluster', 'dev', '--reason', 'INC-7: rotate the config', '--duration', '6s']);
    assert.equal(asked.code, 0, asked.out);
    const id = /req-[0-9a-f]{12}/.exec(asked.out)?.[0] ?? '';
    const own = await run('nina', ['approve', id]);
    assert.equal(own.code, 1);
    assert.match(own.out, /the requester cannot approve or deny their own request/);
    const stranger = await run('carl', ['approve', id]);
    assert.equal(stranger.code, 1);
    assert.match(stranger.out, /oidc:carl is not an approver of sre-write/);
    assert.equal(await mayWrite(ninaKc, 'still-pending'), false, 'nothing changed');
    const pending = await run('sam', ['requests']);
    assert.match(pending.out, new RegExp(`${id}\\s+pending\\s+sre-write\\s+on dev\\s+for oidc:nina`));
    const ok = await run('sam', ['approve', id]);
    assert.equal(ok.code, 0, ok.out);
    const approvedAt = Date.now();
    assert.ok(await eventually(() => mayWrite(onPort(h, ninaKc, otherPort), `approved-${Date.now()}`)), 'approved access reaches the other replica');
    assert.equal(await mayWrite(ninaKc, `approved-here-${Date.now()}`), true);
    assert.match((await run('nina', ['activations'])).out, /sre-write\s+on dev\s+for oidc:nina\s+until \S+\s+request .* approved by oidc:sam: INC-7/);
    await sleep(Math.max(0, 6500 - (Date.now() - approvedAt)));
    assert.equal(await mayWrite(ninaKc, 'after-the-duration'), false, 'it ended at its duration');
    const audit = h.auditEvents().filter((e) => e.requestURI.startsWith('/portcullis/v1/requests') && e.stage === 'ResponseComplete');
    assert.ok(audit.some((e) => e.responseStatus.code === 200 && /approved by oidc:sam/.test(e.annotations['portcullis.dev/reason'] ?? '')), 'the approval is audited');
    assert.ok(audit.some((e) => e.responseStatus.code === 403 && e.user.username === 'oidc:nina'), 'the self-approval is audited as refused');
  });

  it('GIVEN an approver who is also a subject WHEN sid requests THEN he cannot approve his own; GIVEN an approved hour WHEN the approver ends it early THEN access stops on both replicas', async () => {
    const sidAsk = await run('sid', ['request', '--grant', 'sre-write', '--cluster', 'dev', '--reason', 'self-serve?']);
    assert.equal(sidAsk.code, 0, sidAsk.out);
    const selfApprove = await run('sid', ['approve', /req-[0-9a-f]{12}/.exec(sidAsk.out)?.[0] ?? '']);
    assert.match(selfApprove.out, /cannot approve or deny their own request/);
    const asked = await run('nina', ['request', '--grant', 'sre-write', '--cluster', 'dev', '--reason', 'INC-8', '--duration', '1h']);
    const id = /req-[0-9a-f]{12}/.exec(asked.out)?.[0] ?? '';
    assert.equal((await run('sid', ['approve', id])).code, 0, 'sid may approve nina');
    assert.ok(await eventually(() => mayWrite(ninaKc, `hour-${Date.now()}`)));
    // Ended through the other replica: the replica that approved it lets go too.
    const samThere = mkdtempSync(join(tmpdir(), 'portcullis-home-sam-other-'));
    mkdirSync(join(samThere, 'portcullis'));
    writeFileSync(join(samThere, 'portcullis', 'session.json'), readFileSync(join(homes['sam'] ?? '', 'portcullis', 'session.json'), 'utf8').replace(`127.0.0.1:${h.port}`, `127.0.0.1:${otherPort}`));
    const endThere = cli(samThere, ['end', '--cluster', 'dev', '--grant', 'sre-write', '--user', 'oidc:nina']);
    assert.equal(await endThere.exited, 0, endThere.output());
    assert.ok(await eventually(async () => !(await mayWrite(ninaKc, `ended-${Date.now()}`))), 'ended on the approving replica too');
    assert.equal(await mayWrite(onPort(h, ninaKc, otherPort), `ended-there-${Date.now()}`), false);
    assert.equal((await run('nina', ['activations'])).out.trim(), 'no activations');
    const again = await run('sam', ['end', '--cluster', 'dev', '--grant', 'sre-write', '--user', 'oidc:nina']);
    assert.equal(again.code, 1);
    assert.match(again.out, /has no active sre-write on dev/);
  });
});
