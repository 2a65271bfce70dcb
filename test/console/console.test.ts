// The web console (issue 17) end to end in a real headless Chromium: people sign in at the real
// identity provider's form, the proxy (in this process) serves the console against the sandbox
// cluster and a real Redis; every page is used as a person would, and a screenshot of each is
// saved into docs/console/ (the README shows them).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import WebSocket from 'ws';
import { canonicalJson } from '../../core/canonical-json.ts';
import { AUDIT_PATH, LOCKS_PATH, MEMBER_USER } from '../../core/names.ts';
import type { RuleSet } from '../../core/rule-set.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from '../proxy/harness.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { launchChromium, newContext, screenshot } from '../support/browser.ts';

const NS = 'console-e2e';
const ROOT = join(import.meta.dirname, '..', '..');
const READ = [
  { verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] },
  { verbs: ['create', 'get'], apiGroups: [''], resources: ['pods/exec'] },
];
const SRE = grant('sre-read', [group('oidc:sre')], READ, ns(NS), { line: 3 });
const CM = grant('sre-configmaps', [group('oidc:sre')], [{ verbs: ['create', 'delete'], apiGroups: [''], resources: ['configmaps'] }], ns(NS), {
  line: 12,
  conditions: { approval: { approvers: [group('oidc:sec')], maxDurationSeconds: 3600 } },
  activationGroup: 'portcullis:grant:sre-configmaps',
});
const GLASS = grant('sre-break-glass', [group('oidc:sre')], [{ verbs: ['delete'], apiGroups: [''], resources: ['pods'] }], ns(NS), {
  line: 20,
  conditions: { breakGlass: { maxDurationSeconds: 900, notify: [] } },
  activationGroup: 'portcullis:grant:sre-break-glass',
});
const SEC = grant('sec-read', [group('oidc:sec')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }], ns(NS), { line: 30 });
const AUDITORS = grant('auditors', [group('oidc:audit')], [{ nonResourceURLs: [AUDIT_PATH], verbs: ['get'] }], { kind: 'cluster' }, { line: 40 });
const LOCKERS = grant('lockers', [group('oidc:audit')], [{ nonResourceURLs: [LOCKS_PATH], verbs: ['get', 'post', 'delete'] }], { kind: 'cluster' }, { line: 45 });
const RULES: RuleSet = ruleSet('dev', [SRE, CM, GLASS, SEC, AUDITORS, LOCKERS], {
  users: [MEMBER_USER],
  denies: [{ id: 'no-secrets', source: { file: 'policies/test.ts', line: 50 }, subjects: 'everyone', except: [], rules: [{ verbs: ['*'], apiGroups: [''], resources: ['secrets'] }], scope: { kind: 'cluster' } }],
});
const RBAC = manifestsYaml([...upstreamRole(NS, 'console-sre-read', [group('oidc:sre')], READ), ...upstreamRole(NS, 'console-sec-read', [group('oidc:sec')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }])]);
const PEOPLE = { alice: ['sre'], ann: ['sec'], audrey: ['audit'] };

describe('the web console in a real browser', { timeout: 600_000 }, () => {
  let redis: TestRedis;
  let h: Harness;
  let browser: Browser;
  const people = new Map<string, { context: BrowserContext; page: Page }>();
  let base: string;

  /** Signs `person` in through the console and the identity provider's own forms; returns their page on My access. */
  async function signIn(person: string, viewport?: { width: number; height: number }): Promise<Page> {
    const context = await newContext(browser, viewport);
    const page = await context.newPage();
    await page.goto(`${base}/console/`);
    await page.waitForSelector('#page-signin:not([hidden])');
    if (person === 'alice') await screenshot(page, '01-sign-in');
    await page.click('#signin');
    const idp = new URL(h.oidc.issuer).origin;
    for (let step = 0; step < 6 && new URL(page.url()).origin === idp; step++) {
      if (await page.$('input[name="login"]')) {
        await page.fill('input[name="login"]', person);
        await page.fill('input[name="password"]', 'any password: the test provider checks none');
      }
      await Promise.all([page.waitForNavigation({ timeout: 15_000 }), page.click('button[type="submit"]')]);
    }
    await page.waitForSelector('body[data-ready="access"]', { timeout: 15_000 });
    people.set(person, { context, page });
    return page;
  }

  before(async () => {
    redis = await startRedis();
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES, people: PEOPLE, sessions: { storeUrl: redis.url }, console: {} });
    base = `https://127.0.0.1:${h.port}`;
    await h.fleet.createPod(h.cluster, NS, { name: 'web-1' });
    browser = await launchChromium([base, h.oidc.issuer]);
  });
  after(async () => {
    for (const p of people.values()) await p.context.close().catch(() => undefined);
    await browser?.close();
    await h?.stop();
    await redis?.stop();
  });

  it('GIVEN alice WHEN she signs in through the identity provider THEN the console holds her session in an HttpOnly, Secure, SameSite=Strict cookie, nothing in the URL or browser storage', async () => {
    const page = await signIn('alice');
    const cookies = await page.context().cookies(`${base}/console/`);
    const c = cookies.find((x) => x.name === 'portcullis_console');
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.secure, true);
    assert.equal(c.sameSite, 'Strict');
    assert.equal(c.path, '/console');
    assert.match(c.value, /^pcs1\./);
    assert.doesNotMatch(page.url(), /pcs1|code=|token/);
    const stored = await page.evaluate('JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, c: document.cookie })');
    assert.equal(stored, '{"l":{},"s":{},"c":""}', 'no credential reachable from script');
    const csp = String((await h.request('GET', '/console/')).headers['content-security-policy'] ?? '');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no eval');
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(await page.textContent('#who') ?? '', /oidc:alice/);
  });

  it('GIVEN alice signed in WHEN she opens My access THEN every row comes from the proxy\'s decision with its policy line, and agrees with `portcullis explain`', async () => {
    const page = people.get('alice')?.page ?? (await signIn('alice'));
    await page.goto(`${base}/console/#access`);
    await page.waitForSelector('#access-body table');
    await screenshot(page, '02-my-access');
    const rows = await page.$$eval('#access-body tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    const row = (grantId: string, what: string) => rows.find((r) => (r[4] ?? '').includes(grantId) && (r[2] ?? '').includes(what));
    // The CLI answers from the same rule set, written where `portcullis explain` reads it.
    const generated = join(h.dir, 'generated');
    mkdirSync(join(generated, 'dev'), { recursive: true });
    writeFileSync(join(generated, 'dev', 'rules.json'), canonicalJson(RULES));
    const explain = async (method: string, path: string) => (await run(process.execPath, [join(ROOT, 'bin/portcullis.js'), 'explain', method, path, '--user', 'oidc:alice', '--group', 'oidc:sre', '--group', 'system:authenticated', '--cluster', 'dev', '--generated', generated])).stdout;
    const pods = row('sre-read', 'pods');
    assert.ok(pods, JSON.stringify(rows));
    assert.match(pods[3] ?? '', /^active/);
    assert.match(pods[4] ?? '', /policies\/test\.ts:3/);
    assert.match(await explain('GET', `/api/v1/namespaces/${NS}/pods`), /ALLOW by grant sre-read \(policies\/test\.ts:3\)/);
    const cm = row('sre-configmaps', 'configmaps');
    assert.ok(cm);
    assert.match(cm[3] ?? '', /^inactive/);
    assert.match(cm[5] ?? '', /requestable/);
    const cliCm = await explain('POST', `/api/v1/namespaces/${NS}/configmaps`);
    assert.match(cliCm, /DENY: no grant allows it/);
    assert.match(cliCm, /grant sre-configmaps \(policies\/test\.ts:12\) would, but/);
    const glass = row('sre-break-glass', 'pods');
    assert.ok(glass);
    assert.match(glass[3] ?? '', /^inactive/);
    assert.match(glass[5] ?? '', /break-glass/);
    assert.match(await explain('DELETE', `/api/v1/namespaces/${NS}/pods/web-1`), /grant sre-break-glass \(policies\/test\.ts:20\) would, but/);
  });

  it('GIVEN alice WHEN she downloads the kubeconfig from the console THEN plain kubectl works with it through the proxy, as her', async () => {
    const page = people.get('alice')?.page ?? (await signIn('alice'));
    await page.goto(`${base}/console/#kubeconfig`);
    await page.waitForSelector('#kubeconfig-link');
    await screenshot(page, '03-kubeconfig');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#kubeconfig-link')]);
    const file = join(h.dir, 'console-kubeconfig.yaml');
    await download.saveAs(file);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /token: pcs1\./);
    const r = await h.kubectl(file, ['get', 'pods', '-n', NS, '-o', 'name']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /pod\/web-1/);
    const who = await h.kubectl(file, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    assert.match(who.stdout, /oidc:alice/);
  });

  it('GIVEN alice in the browser shell WHEN she runs kubectl get pods and kubectl exec -it … -- echo hi THEN she reads both in the terminal, and both are audited as her', async () => {
    const page = people.get('alice')?.page ?? (await signIn('alice'));
    await page.goto(`${base}/console/#shell`);
    await page.click('#shell-open');
    await waitForTerminal(page, /kubectl>/);
    await typeLine(page, `kubectl get pods -n ${NS}`);
    await waitForTerminal(page, /web-1\s+1\/1\s+Running/);
    await typeLine(page, `kubectl exec -it web-1 -n ${NS} -- echo hi-from-the-console`);
    await waitForTerminal(page, /^hi-from-the-console\s*$/m);
    await screenshot(page, '04-shell');
    const events = await h.auditEventsWhen((es) => es.some((e) => e.objectRef?.subresource === 'exec' && e.stage === 'ResponseComplete' && e.user.username === 'oidc:alice'), 5000);
    assert.ok(events.some((e) => e.verb === 'list' && e.objectRef?.resource === 'pods' && e.user.username === 'oidc:alice' && e.userAgent?.startsWith('kubectl')), 'get pods recorded as alice');
    const exec = events.find((e) => e.objectRef?.subresource === 'exec' && e.user.username === 'oidc:alice');
    assert.ok(exec, 'exec recorded as alice');
    assert.match(exec.requestURI, /tty=true/, 'a real TTY');
  });

  it('GIVEN the browser shell WHEN alice tries to escape it THEN other programs, shell metacharacters, files outside its directory, other credentials and other servers are all refused', async () => {
    const page = people.get('alice')?.page ?? (await signIn('alice'));
    await page.goto(`${base}/console/#shell`);
    if (await page.isVisible('#shell-open')) await page.click('#shell-open');
    await waitForTerminal(page, /kubectl>/);
    const attempts: [string, RegExp][] = [
      ['sh -c id', /only kubectl runs here, not sh/],
      ['/bin/bash', /not allowed here|only kubectl/],
      [`kubectl get pods -n ${NS}; id`, /refused: ; not allowed/],
      [`kubectl get pods -n ${NS} | sh`, /refused: \| not allowed/],
      ['kubectl get pods $(id)', /refused: \$ \( \) not allowed/],
      ['kubectl get pods > /tmp/x', /refused: > not allowed/],
      ['kubectl --kubeconfig=/etc/kubernetes/admin.conf get pods', /refused: --kubeconfig/],
      ['kubectl get pods -s https://127.0.0.1:1', /refused: -s/],
      ['kubectl apply -f /etc/passwd', /the path "\/etc\/passwd" does not exist/],
      [`kubectl apply -f ${h.dir}/session.key`, /the path "[^"]*session.key" does not exist/],
      [`kubectl apply -f ${h.config.console?.terminal?.kubectl ?? ''}`, /the path "[^"]*kubectl" does not exist/],
      ['kubectl apply -f /root', /the path "\/root" does not exist/],
      ['kubectl plugin list', /unable to find any kubectl plugins/],
    ];
    // Another person's terminal, open now: its kubeconfig (her session) is not in alice's file system.
    const ann = await signIn('ann');
    await ann.goto(`${base}/console/#shell`);
    await ann.click('#shell-open');
    await waitForTerminal(ann, /kubectl>/);
    const annDir = h.proxy.console?.terminals().find((t) => t.user === 'oidc:ann')?.dir;
    assert.ok(annDir && existsSync(join(annDir, 'kubeconfig')));
    attempts.push([`kubectl apply -f ${annDir}/kubeconfig`, /the path "[^"]*kubeconfig" does not exist/]);
    for (const [line, want] of attempts) {
      const before = countOf(await terminalText(page), want);
      await typeLine(page, line);
      await waitForTerminal(page, want, before);
    }
    await screenshot(page, '05-shell-refusals');
    // Every refused line is logged with who typed it and the terminal's audit ID: escape attempts are seen.
    const refused = h.logs().filter((l) => l['msg'] === 'console shell: line refused' && l['user'] === 'oidc:alice').map((l) => l['line']);
    for (const line of ['sh -c id', `kubectl get pods -n ${NS}; id`, 'kubectl get pods $(id)']) assert.ok(refused.includes(line), `${line} logged`);
    assert.ok(h.logs().some((l) => l['msg'] === 'console shell: kubectl' && l['line'] === 'kubectl apply -f /etc/passwd'));
  });

  it('GIVEN alice and ann in two browsers WHEN alice requests access with a reason and ann approves it THEN the grant is active for alice, and she can end it; break-glass with a reason activates and ends too', async () => {
    const alice = people.get('alice')?.page ?? (await signIn('alice'));
    const ann = people.get('ann')?.page ?? (await signIn('ann'));
    await alice.goto(`${base}/console/#requests`);
    await alice.waitForSelector('body[data-ready="requests"]');
    await alice.selectOption('#request-grant', 'dev/sre-configmaps');
    await alice.fill('#request-duration', '600');
    await alice.fill('#request-reason', 'INC-42: rotate the web config <img src=x onerror=alert(1)>');
    await alice.click('#request-form button[type="submit"]');
    await alice.waitForSelector('#status.ok');
    const id = /req-[0-9a-f]{12}/.exec((await alice.textContent('#status')) ?? '')?.[0];
    assert.ok(id, 'the request has an id');
    await ann.goto(`${base}/console/#requests`);
    await ann.waitForSelector(`button[data-approve="${id}"]`);
    // All text escaped: the markup in the reason is shown as text, never parsed.
    assert.match((await ann.textContent('#requests-body')) ?? '', /rotate the web config <img src=x onerror=alert\(1\)>/);
    assert.equal(await ann.$('#requests-body img'), null);
    await screenshot(ann, '06-requests-approver');
    await ann.click(`button[data-approve="${id}"]`);
    await ann.waitForSelector('#status.ok');
    assert.match((await ann.textContent('#status')) ?? '', /approved/);
    await alice.goto(`${base}/console/#access`);
    await alice.reload();
    await alice.waitForSelector('#access-body table');
    const cm = await alice.$$eval('#access-body tbody tr', (trs) => trs.map((tr) => tr.textContent ?? '').filter((t) => t.includes('sre-configmaps')));
    assert.match(cm[0] ?? '', /active until/);
    // A plain kubectl with her session now may create a configmap (the proxy decides; upstream RBAC is not the point here).
    await alice.goto(`${base}/console/#requests`);
    await alice.waitForSelector('button[data-end="dev/sre-configmaps"]');
    await alice.selectOption('#breakglass-grant', 'dev/sre-break-glass');
    await alice.fill('#breakglass-reason', 'INC-43: web-1 wedged, deleting it');
    await alice.click('#breakglass-form button[type="submit"]');
    await alice.waitForSelector('button[data-end="dev/sre-break-glass"]');
    await screenshot(alice, '07-requests-and-break-glass');
    assert.ok(h.proxy.activations.active('dev', 'oidc:alice').has('sre-break-glass'));
    await alice.click('button[data-end="dev/sre-break-glass"]');
    await alice.waitForSelector('button[data-end="dev/sre-break-glass"]', { state: 'detached' });
    await alice.click('button[data-end="dev/sre-configmaps"]');
    await alice.waitForSelector('button[data-end="dev/sre-configmaps"]', { state: 'detached' });
    // A second request, denied: it stays inactive.
    await alice.fill('#request-reason', 'INC-44: once more');
    await alice.click('#request-form button[type="submit"]');
    await alice.waitForSelector('#status.ok');
    const second = /req-[0-9a-f]{12}/.exec((await alice.textContent('#status')) ?? '')?.[0] ?? '';
    await ann.reload();
    await ann.click(`button[data-deny="${second}"]`);
    await ann.waitForSelector('#status.ok');
    await alice.reload();
    await alice.waitForSelector(`#requests-body tr:has-text("${second}")`);
    assert.match((await alice.textContent(`#requests-body tr:has-text("${second}")`)) ?? '', /denied by oidc:ann/);
    assert.equal(h.proxy.activations.active('dev', 'oidc:alice').has('sre-configmaps'), false);
    assert.equal(h.proxy.activations.active('dev', 'oidc:alice').size, 0, 'both ended');
    const recorded = h.auditEvents().filter((e) => e.requestURI.startsWith('/portcullis/v1/requests') || e.requestURI.includes('/portcullis/break-glass'));
    assert.ok(recorded.some((e) => e.user.username === 'oidc:ann' && e.requestURI.endsWith(`${id}/approve`) && e.responseStatus.code === 200), 'the approval is recorded as ann, by the proxy\'s own endpoint');
  });

  it('GIVEN audrey, an auditor by the policy, on Live activity WHEN requests are denied elsewhere through plain kubectl THEN each appears in her feed within a second with the deny or missing grant and its policy line; alice sees only her own', async () => {
    const audrey = people.get('audrey')?.page ?? (await signIn('audrey'));
    const alice = people.get('alice')?.page ?? (await signIn('alice'));
    await audrey.goto(`${base}/console/#activity`);
    await audrey.waitForSelector('#activity-scope:has-text("Auditor view")');
    await alice.goto(`${base}/console/#activity`);
    await alice.waitForSelector('#activity-scope:has-text("Your own")');
    // A stranger with a real token of the identity provider, no grant.
    const stranger = h.kubeconfig(await h.token('mallory', ['nobody']));
    let r = await h.kubectl(stranger, ['get', 'configmaps', '-n', NS]);
    assert.notEqual(r.status, 0);
    let t = Date.now();
    await audrey.waitForSelector('#activity-feed li[data-user="oidc:mallory"][data-decision="deny"]', { timeout: 1000 });
    const seenIn = Date.now() - t;
    assert.ok(seenIn <= 1000, `seen in ${seenIn} ms`);
    // alice's session, denied by a deny rule: the feed names the deny and its policy line.
    const kc = await sessionKubeconfig(alice, h.dir);
    r = await h.kubectl(kc, ['get', 'secrets', '-n', NS]);
    assert.match(r.stderr, /forbidden/i);
    t = Date.now();
    const li = await audrey.waitForSelector('#activity-feed li[data-user="oidc:alice"][data-decision="deny"]:has-text("no-secrets")', { timeout: 1000 });
    assert.ok(Date.now() - t <= 1000);
    assert.match((await li.textContent()) ?? '', /denied by no-secrets \(policies\/test\.ts:50\)/);
    await alice.waitForSelector('#activity-feed li[data-decision="deny"]:has-text("no-secrets")', { timeout: 1000 });
    // A refusal for want of an active grant names the grant that would allow it, and its line.
    r = await h.kubectl(kc, ['create', 'configmap', 'from-console', '-n', NS]);
    assert.match(r.stderr, /forbidden/i);
    const missing = await audrey.waitForSelector('#activity-feed li[data-user="oidc:alice"][data-decision="deny"]:has-text("sre-configmaps")', { timeout: 1000 });
    assert.match((await missing.textContent()) ?? '', /no active grant: sre-configmaps \(policies\/test\.ts:12\) no approved request/);
    assert.match((await audrey.textContent('#activity-feed li[data-user="oidc:mallory"]')) ?? '', /no grant allows it/);
    assert.equal(await alice.$('#activity-feed li[data-user="oidc:mallory"]'), null, 'alice does not see another person\'s requests');
    // The auditor's filters: only alice's denials.
    await audrey.fill('#f-user', 'oidc:alice');
    await audrey.selectOption('#f-decision', 'deny');
    await audrey.click('#activity-filter button[type="submit"]');
    await audrey.waitForSelector('#activity-feed[data-filter="user=oidc%3Aalice&decision=deny"] li[data-user="oidc:alice"]');
    const users = await audrey.$$eval('#activity-feed li', (lis) => [...new Set(lis.map((l) => `${l.getAttribute('data-user')}/${l.getAttribute('data-decision')}`))]);
    assert.deepEqual(users, ['oidc:alice/deny']);
    await audrey.fill('#f-user', '');
    await audrey.selectOption('#f-decision', '');
    await audrey.click('#activity-filter button[type="submit"]');
    await audrey.waitForSelector('#activity-feed[data-filter=""] li[data-user="oidc:mallory"]');
    // The chart counts what the feed holds, denials among them.
    const counts = /(\d+) requests, (\d+) denied/.exec((await audrey.textContent('#activity-counts')) ?? '');
    assert.ok(counts && Number(counts[1]) >= 3 && Number(counts[2]) >= 3, `chart: ${counts?.[0] ?? 'none'}`);
    assert.ok((await audrey.$$('#activity-chart rect.bar-deny')).length === 10);
    await screenshot(audrey, '08-live-activity');
  });

  it('GIVEN two proxy replicas sharing the store WHEN a request is denied through the other replica THEN it appears in the auditor\'s feed here within a second', async () => {
    const audrey = people.get('audrey')?.page ?? (await signIn('audrey'));
    const other = await h.extraProxy((c) => ({ ...c, audit: { ...c.audit, file: { path: join(h.dir, 'audit-other.log'), maxBytes: 1 << 20, maxFiles: 1 } } }));
    await audrey.goto(`${base}/console/#activity`);
    await audrey.reload();
    await audrey.waitForSelector('#activity-scope:has-text("Auditor view")');
    const stranger = h.kubeconfig(await h.token('mallet', ['nobody']));
    const onOther = stranger.replace(/\.yaml$/, '-other.yaml');
    writeFileSync(onOther, readFileSync(stranger, 'utf8').replaceAll(`127.0.0.1:${h.port}`, `127.0.0.1:${other.port}`));
    const r = await h.kubectl(onOther, ['get', 'pods', '-n', NS]);
    assert.notEqual(r.status, 0);
    const t = Date.now();
    await audrey.waitForSelector('#activity-feed li[data-user="oidc:mallet"][data-decision="deny"]', { timeout: 1000 });
    assert.ok(Date.now() - t <= 1000);
    assert.equal(h.auditEvents().some((e) => e.user.username === 'oidc:mallet'), false, 'the record is the other replica\'s, not this one\'s');
  });

  it('GIVEN audrey on Explain THEN explain and who-can answer from the signed bundle exactly as the CLI does; alice, no auditor, is refused', async () => {
    const audrey = people.get('audrey')?.page ?? (await signIn('audrey'));
    await audrey.goto(`${base}/console/#explain`);
    await audrey.waitForSelector('body[data-ready="explain"]');
    await audrey.fill('#x-user', 'oidc:alice');
    await audrey.fill('#x-groups', 'oidc:sre,system:authenticated');
    await audrey.selectOption('#x-method', 'DELETE');
    await audrey.fill('#x-path', `/api/v1/namespaces/${NS}/pods/web-1`);
    await audrey.click('#explain-form button[type="submit"]');
    await audrey.waitForSelector('#explain-out:not(:empty)');
    const shown = (await audrey.textContent('#explain-out')) ?? '';
    const generated = join(h.dir, 'generated');
    mkdirSync(join(generated, 'dev'), { recursive: true });
    writeFileSync(join(generated, 'dev', 'rules.json'), canonicalJson(RULES));
    const cli = await run(process.execPath, [join(ROOT, 'bin/portcullis.js'), 'explain', 'DELETE', `/api/v1/namespaces/${NS}/pods/web-1`, '--user', 'oidc:alice', '--group', 'oidc:sre', '--group', 'system:authenticated', '--cluster', 'dev', '--generated', generated]);
    // The one line that may differ: the proxy's index also holds kube's built-in discovery grant
    // (runtime-proxy/discovery.ts), which names system:authenticated; rules.json alone does not.
    const decisionLines = (text: string) => text.split('\n').filter((l) => !l.startsWith('groups not named by a grant'));
    assert.deepEqual(decisionLines(shown), decisionLines(cli.stdout.trimEnd()));
    assert.match(shown, /DENY: no grant allows it\n {2}grant sre-break-glass \(policies\/test\.ts:20\) would, but break-glass not invoked/);
    await audrey.fill('#w-namespace', NS);
    await audrey.click('#whocan-form button[type="submit"]');
    await audrey.waitForSelector('#whocan-out table');
    const rows = await audrey.$$eval('#whocan-out tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    const cliWho = await run(process.execPath, [join(ROOT, 'bin/portcullis.js'), 'who-can', 'get', 'pods', '--namespace', NS, '--cluster', 'dev', '--generated', generated]);
    const cliRows = cliWho.stdout.trim().split('\n');
    assert.equal(rows.length, cliRows.length, cliWho.stdout);
    for (const line of cliRows) {
      const [subject = '', via = ''] = line.split('\t');
      assert.ok(rows.some((row) => row.includes(subject) && row.includes(via.replace(/^via /, '').split('  ')[0] ?? '')), `${line} in ${rows.join(' | ')}`);
    }
    await screenshot(audrey, '09-explain');
    const alice = people.get('alice')?.page ?? (await signIn('alice'));
    const status = await alice.evaluate(`fetch('/console/api/explain?cluster=dev&user=x&path=/api').then((r) => r.status)`);
    assert.equal(status, 403);
  });

  it('GIVEN a signed-in page WHEN a state-changing call comes without the CSRF token, or from another origin, or a WebSocket from another origin THEN each is refused and changes nothing', async () => {
    const alice = people.get('alice')?.page ?? (await signIn('alice'));
    await alice.goto(`${base}/console/#session`);
    await alice.waitForSelector('body[data-ready="session"]');
    await screenshot(alice, '10-session');
    // The page's own origin, no token: refused.
    assert.equal(await alice.evaluate(`fetch('/console/api/logout', { method: 'POST' }).then((r) => r.status)`), 403);
    const cookie = (await alice.context().cookies(`${base}/console/`)).find((c) => c.name === 'portcullis_console')?.value ?? '';
    const csrf = (await alice.evaluate(`fetch('/console/api/me').then((r) => r.json()).then((m) => m.csrf)`)) as string;
    // The right token from another origin (a forged form or fetch elsewhere): refused.
    const forged = await h.request('POST', '/console/api/logout', [['cookie', `portcullis_console=${cookie}`], ['x-portcullis-csrf', csrf], ['origin', 'https://evil.example']]);
    assert.equal(forged.status, 403);
    const noOrigin = await h.request('POST', '/console/api/logout', [['cookie', `portcullis_console=${cookie}`], ['x-portcullis-csrf', csrf]]);
    assert.equal(noOrigin.status, 403);
    // A cross-site WebSocket with the victim's cookie (CSWSH): refused before any upgrade.
    const ws = await new Promise<number>((resolve) => {
      const s = new WebSocket(`wss://127.0.0.1:${h.port}/console/terminal`, { headers: { cookie: `portcullis_console=${cookie}`, origin: 'https://evil.example' }, ca: h.proxyCa.caPem });
      s.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      s.on('open', () => resolve(101));
      s.on('error', () => resolve(-1));
    });
    assert.equal(ws, 403);
    // The same from a real page of another origin in the browser (the identity provider's): refused.
    const other = await alice.context().newPage();
    await other.goto(`${h.oidc.issuer}/.well-known/openid-configuration`);
    const code = await other.evaluate(`new Promise((resolve) => { const s = new WebSocket('wss://127.0.0.1:${h.port}/console/terminal'); s.onopen = () => resolve('open'); s.onclose = (e) => resolve('closed ' + e.code); })`);
    assert.equal(code, 'closed 1006', 'the handshake was refused');
    await other.close();
    // Right origin, wrong CSRF hello: the socket is closed before anything runs.
    const hello = await new Promise<number>((resolve) => {
      const s = new WebSocket(`wss://127.0.0.1:${h.port}/console/terminal`, { headers: { cookie: `portcullis_console=${cookie}`, origin: `https://127.0.0.1:${h.port}` }, ca: h.proxyCa.caPem });
      s.on('open', () => s.send(JSON.stringify({ csrf: 'wrong' })));
      s.on('close', (c) => resolve(c));
      s.on('error', () => resolve(-1));
    });
    assert.equal(hello, 1008);
    // Still signed in: nothing above changed anything.
    assert.equal(await alice.evaluate(`fetch('/console/api/me').then((r) => r.status)`), 200);
  });

  it('GIVEN ann\'s terminal running a watch WHEN a locker locks ann THEN her kubectl is killed within a second and her terminal\'s directory removed', async () => {
    const ann = await signIn('ann');
    await ann.goto(`${base}/console/#shell`);
    await ann.click('#shell-open');
    await waitForTerminal(ann, /kubectl>/);
    await typeLine(ann, `kubectl get pods -n ${NS} -w`);
    await waitForTerminal(ann, /web-1/);
    const term = h.proxy.console?.terminals().find((t) => t.user === 'oidc:ann' && t.running !== undefined);
    assert.ok(term?.running, 'the watch runs');
    const audrey = people.get('audrey')?.page ?? (await signIn('audrey'));
    const cookie = (await audrey.context().cookies(`${base}/console/`)).find((c) => c.name === 'portcullis_console')?.value ?? '';
    const lock = await h.request('POST', '/portcullis/v1/locks', [['authorization', `Bearer ${cookie}`], ['content-type', 'application/json']], JSON.stringify({ kind: 'user', subject: 'oidc:ann', reason: 'console test: suspected stolen laptop', expiresInSeconds: 120 }));
    assert.equal(lock.status, 201, lock.body);
    const t = Date.now();
    while (existsSync(`/proc/${term.running}`) && Date.now() - t < 1000) await new Promise((r) => setTimeout(r, 25));
    assert.equal(existsSync(`/proc/${term.running}`), false, `killed within ${Date.now() - t} ms of the lock`);
    assert.equal(existsSync(term.dir), false);
    await waitForTerminal(ann, /terminal ended: session-ended/);
    const id = (JSON.parse(lock.body) as { id: string }).id;
    const lifted = await h.request('DELETE', `/portcullis/v1/locks/${id}`, [['authorization', `Bearer ${cookie}`]]);
    assert.equal(lifted.status, 200, lifted.body);
  });

  it('GIVEN no sign-in in progress, no session, or the console cookie on a cluster path THEN each is refused, and each answer has its audit record', async () => {
    const cb = await h.request('GET', '/console/callback?code=stolen&state=guessed');
    assert.equal(cb.status, 401);
    assert.match(cb.body, /no sign-in in progress in this browser/);
    assert.match(String(cb.headers['content-security-policy']), /default-src 'none'/);
    const me = await h.request('GET', '/console/api/me');
    assert.equal(me.status, 401);
    // The browser's files: xterm.js exactly as the npm package ships it, with its content type; nothing else under assets.
    const xterm = await h.request('GET', '/console/assets/xterm.mjs');
    assert.equal(xterm.status, 200);
    assert.equal(xterm.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(xterm.body, readFileSync(join(ROOT, 'node_modules', '@xterm', 'xterm', 'lib', 'xterm.mjs'), 'utf8'));
    assert.equal(xterm.headers['x-content-type-options'], 'nosniff');
    // Only the names in the asset table are served (read once at start): no path ever reaches the disk.
    assert.equal((await h.request('GET', '/console/assets/../../session.key')).status, 404);
    assert.equal((await h.request('GET', '/console/assets/%2e%2e%2fsession.key')).status, 404);
    assert.equal((await h.request('GET', '/console/assets/package.json')).status, 404);
    const audrey = people.get('audrey')?.page ?? (await signIn('audrey'));
    const cookie = (await audrey.context().cookies(`${base}/console/`)).find((c) => c.name === 'portcullis_console')?.value ?? '';
    // The cookie is the console's: kubectl's paths take bearer tokens only, so no browser can be made to act there.
    const cluster = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/pods`, [['cookie', `portcullis_console=${cookie}`]]);
    assert.equal(cluster.status, 401);
    const unknown = await h.request('GET', '/console/api/nothing-here', [['cookie', `portcullis_console=${cookie}`]]);
    assert.equal(unknown.status, 404);
    // Live streams per session are bounded: past the limit, 429; a closed one frees its place.
    const streams: ClientRequest[] = [];
    const openStream = () =>
      new Promise<number>((resolve, reject) => {
        const rq = httpsRequest({ host: '127.0.0.1', port: h.port, path: '/console/api/activity', headers: { cookie: `portcullis_console=${cookie}` }, ca: h.proxyCa.caPem, agent: false }, (res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
        rq.on('error', (err) => (rq.destroyed ? undefined : reject(err)));
        rq.end();
        streams.push(rq);
      });
    const statuses: number[] = [];
    for (let i = 0; i < 12 && !statuses.includes(429); i++) statuses.push(await openStream());
    assert.ok(statuses.includes(429), `statuses ${statuses.join(',')}`);
    assert.ok(statuses.filter((x) => x === 200).length <= 8);
    for (const rq of streams.splice(0)) rq.destroy();
    let again = 0;
    for (let i = 0; i < 40 && again !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = await openStream();
    }
    assert.equal(again, 200, 'closed streams free their places');
    for (const rq of streams.splice(0)) rq.destroy();
    const events = await h.auditEventsWhen((es) => es.some((e) => e.requestURI === '/console/api/nothing-here'));
    const find = (uri: string, code: number) => events.find((e) => e.requestURI === uri && e.responseStatus.code === code);
    assert.equal(find('/console/callback?code=stolen&state=guessed', 401)?.annotations['portcullis.dev/decision'], 'deny');
    assert.ok(find('/console/api/me', 401));
    assert.equal(find('/console/api/nothing-here', 404)?.user.username, 'oidc:audrey');
  });

  it('GIVEN a phone-sized screen THEN My access reads without sideways scrolling', async () => {
    const page = await signIn('audrey', { width: 390, height: 844 });
    await page.goto(`${base}/console/#access`);
    await page.waitForSelector('#access-body table');
    await screenshot(page, '11-my-access-phone');
    const width = (await page.evaluate('document.scrollingElement.scrollWidth')) as number;
    assert.ok(width <= 390, `page is ${width}px wide`);
    // Accessible: every form field has a label, the first Tab reaches the skip link, the navigation is reachable by keyboard.
    const unlabelled = (await page.evaluate(`[...document.querySelectorAll('input, select')].filter((e) => !document.querySelector('label[for="' + e.id + '"]')).map((e) => e.id || e.name)`)) as string[];
    assert.deepEqual(unlabelled, []);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to content');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForSelector('body[data-ready="kubeconfig"]');
  });

  it('GIVEN a running kubectl in alice\'s terminal, confined as an unprivileged uid WHEN she logs out THEN it is killed, its directory and credential removed, and her session refused everywhere', async () => {
    const alice = people.get('alice')?.page ?? (await signIn('alice'));
    await alice.goto(`${base}/console/#shell`);
    if (await alice.isVisible('#shell-open')) await alice.click('#shell-open');
    await waitForTerminal(alice, /kubectl>/);
    const seen = countOf(await terminalText(alice), /web-1/);
    await typeLine(alice, `kubectl get pods -n ${NS} -w`);
    await waitForTerminal(alice, /web-1/, seen);
    const term = h.proxy.console?.terminals().find((t) => t.user === 'oidc:alice' && t.running !== undefined);
    assert.ok(term?.running, 'a kubectl runs');
    const pid = term.running;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65534\s+65534/m, 'the sandbox runs as the unprivileged uid');
    assert.match(status, /^Groups:\s*$/m, 'with no supplementary groups');
    assert.match(status, /^NoNewPrivs:\s+1/m);
    const kc = await sessionKubeconfig(alice, h.dir);
    await alice.goto(`${base}/console/#session`);
    await alice.waitForSelector('body[data-ready="session"]');
    await alice.click('#logout');
    await alice.waitForSelector('#page-signin:not([hidden])');
    const t = Date.now();
    while (existsSync(`/proc/${pid}`) && Date.now() - t < 3000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(`/proc/${pid}`), false, 'kubectl killed at logout');
    assert.equal(existsSync(term.dir), false, 'its directory (and the credential in it) removed');
    const r = await h.kubectl(kc, ['get', 'pods', '-n', NS]);
    assert.notEqual(r.status, 0, 'the session is over for kubectl too');
    const cookies = await alice.context().cookies(`${base}/console/`);
    assert.equal(cookies.find((c) => c.name === 'portcullis_console'), undefined, 'the cookie is cleared');
  });
});

/** The page's session kubeconfig (fetched by the page itself), written into `dir`. */
async function sessionKubeconfig(page: Page, dir: string): Promise<string> {
  const text = (await page.evaluate(`fetch('/console/api/kubeconfig').then((r) => r.text())`)) as string;
  const file = join(dir, `session-${Date.now()}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Types a line into the page's terminal and presses Enter. */
async function typeLine(page: Page, line: string): Promise<void> {
  await page.click('#terminal');
  await page.keyboard.type(line, { delay: 2 });
  await page.keyboard.press('Enter');
}

/** The terminal's text, as its buffer holds it. */
function terminalText(page: Page): Promise<string> {
  return page.evaluate('window.portcullisShellText ? window.portcullisShellText() : ""') as Promise<string>;
}

/** How often `re` matches in `text`. */
function countOf(text: string, re: RegExp): number {
  return (text.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`)) ?? []).length;
}

/** Waits (at most 20 s) until `re` matches the terminal's text more than `seen` times. */
async function waitForTerminal(page: Page, re: RegExp, seen = 0): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const text = await terminalText(page);
    if (countOf(text, re) > seen) return;
    if (Date.now() > deadline) throw new Error(`terminal never showed ${re}; it shows:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a program asynchronously (the proxy under test is in this process). */
function run(file: string, args: readonly string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(file, [...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

