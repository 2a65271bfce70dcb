// The web console (issue 17) end to end in a real headless Chromium: people sign in at the real
// identity provider's form, the proxy (in this process) serves the console against the sandbox
// cluster and a real Redis; every page is used as a person would, and a screenshot of each is
// saved into docs/console/ (the README shows them).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import WebSocket from 'ws';
import { canonicalJson } from '../../core/canonical-json.ts';
import { AUDIT_PATH, MEMBER_USER } from '../../core/names.ts';
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
const SEC = grant('sec-read', [group('oidc:sec')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }], ns(NS), { line: 30 });
const AUDITORS = grant('auditors', [group('oidc:audit')], [{ nonResourceURLs: [AUDIT_PATH], verbs: ['get'] }], { kind: 'cluster' }, { line: 40 });
const RULES: RuleSet = ruleSet('dev', [SRE, CM, GLASS, SEC, AUDITORS], {
  users: [MEMBER_USER],
  denies: [{ id: 'no-secrets', source: { file: 'policies/test.ts', line: 50 }, subjects: 'everyone', except: [], rules: [{ verbs: ['*'], apiGroups: [''], resources: ['secrets'] }], scope: { kind: 'cluster' } }],
});
const RBAC = manifestsYaml([...upstreamRole(NS, 'console-sre-read', [group('oidc:sre')], READ), ...upstreamRole(NS, 'console-sec-read', [group('oidc:sec')], [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }])]);
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
});

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

export { httpsRequest, WebSocket, existsSync };
