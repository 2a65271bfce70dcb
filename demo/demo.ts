import { execFile, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { DemoError } from './demo-error.ts';
import { DEFAULT_RENEW_WITHIN } from '../compiler/commands.ts';
import { decodeRuleSet } from '../core/rule-set-codec.ts';
import { createAuthenticator, type AuthnConfig } from '../runtime-proxy/authn/index.ts';
import { loadConfig } from '../runtime-proxy/config.ts';
import { PortcullisProxy } from '../runtime-proxy/server.ts';
import { createLocalCa } from '../sandbox/local-ca.ts';
import { startOidcProvider } from '../sandbox/oidc-issuer.ts';
import { downFleet, readFleet, upFleet, type SandboxFleet } from '../sandbox/fleet.ts';
import { runSandboxPod } from '../sandbox/pods.ts';
import { freePorts } from '../sandbox/processes.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../bin/portcullis.js', import.meta.url));

/** People of the example policy the demo mints tokens for, with their identity-provider groups. */
export const DEMO_PEOPLE = [
  { user: 'alice@acme.example', groups: ['team-payments', 'developers'], note: 'payments engineer' },
  { user: 'frank@acme.example', groups: ['sre'], note: 'on-call SRE (break-glass admin in prod)' },
  { user: 'zoe@contractor.example', groups: [], note: 'contractor, search in staging until 2027-03-31' },
  { user: 'mallory@evil.example', groups: ['platform'], note: 'named by no grant, but in platform: gets what platform-edit gives' },
  { user: 'nina@acme.example', groups: ['sre'], note: 'joined sre today; no pull request names her' },
  { user: 'eve@evil.example', groups: ['coffee-club'], note: 'in no group the policy grants to' },
] as const;

/** Options of `portcullis demo`. */
export interface DemoOptions {
  /** Where the sandbox and the demo's files live. @default '.sandbox' */
  readonly dir: string;
  /** Use the running sandbox in `dir` instead of starting one. */
  readonly reuse?: boolean;
  /** Run the scripted checks, print them, stop everything, and exit (for CI). */
  readonly check?: boolean;
  readonly log?: (line: string) => void;
}

/** What a running demo offers, for the checks and for tests. */
export interface RunningDemo {
  readonly proxyUrl: string;
  readonly kubeconfigs: Readonly<Record<string, string>>;
  readonly auditLog: string;
  readonly notifications: string;
  readonly kubectl: string;
  /** The demo's own generated/ (compiled and signed when it started). */
  readonly generated: string;
  stop(): Promise<void>;
}

/**
 * The newcomer's tour: compile check, a sandbox fleet of real clusters, apply
 * (RBAC plus the signed bundle into each cluster's ConfigMap), a real OIDC
 * issuer, the proxy reading its bundles from those ConfigMaps, a pod on each
 * cluster's fake kubelet, and one kubeconfig per demo person.
 */
export async function startDemo(o: DemoOptions): Promise<RunningDemo> {
  const say = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const dir = resolve(o.dir);
  const demoDir = join(dir, 'demo');
  const cleanups: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    let fleet: SandboxFleet;
    if (o.reuse) fleet = readFleet(dir);
    else {
      say('1/7 starting a sandbox fleet: etcd, kube-apiserver and a fake kubelet per cluster (first run builds them: minutes)');
      fleet = await upFleet({ dir, clusters: 3, log: (l) => say(`    ${l}`), ownerPid: process.pid });
      cleanups.push(() => downFleet(dir).then(() => undefined));
    }
    const kubectl = fleet.bin.kubectl;
    // The demo compiles and signs its own copy at the time it runs, so it never depends on the
    // committed signatures (or on grants of the example that have expired since).
    say('2/7 compiling policies/ into the demo\'s own generated/, signed now with the example\'s demo key');
    const generated = signDemoBundles(demoDir, say);

    say(`3/7 applying the demo's copy of generated/, signed just now (${generated}), to every cluster: RBAC, then the signed bundle into portcullis-system/portcullis-bundle`);
    await cli(['apply', '--kubeconfigs', join(dir, 'fleet.json'), '--generated', generated]);

    say('4/7 starting a real OIDC issuer on loopback');
    const ca = createLocalCa('portcullis demo CA');
    cleanups.push(() => ca.remove());
    const idp = await startOidcProvider({ ca });
    cleanups.push(() => idp.stop());

    say('5/7 minting the proxy credentials: its impersonate-only ServiceAccount and the read-only bundle reader');
    const clusters = [];
    for (const c of fleet.clusters) {
      const token = async (sa: string) => {
        const r = await run(kubectl, ['--kubeconfig', c.adminKubeconfig, 'create', 'token', sa, '-n', 'portcullis-system', '--duration', '24h']);
        const file = join(demoDir, `${c.name}.${sa}.token`);
        writeFileSync(file, r.stdout.trim(), { mode: 0o600 });
        return file;
      };
      clusters.push({
        name: c.name,
        upstream: { url: c.server, caFile: c.caFile, tokenFile: await token('portcullis-proxy') },
        bundle: { configMap: { tokenFile: await token('portcullis-bundle-reader') }, pollIntervalMs: 500 },
        trustedKeyFiles: readdirSync(join(generated, 'keys')).map((k) => join(generated, 'keys', k)),
      });
    }

    say('6/7 starting the proxy (its log: demo/proxy.log; break-glass notifications: demo/notifications.log)');
    const notifications = join(demoDir, 'notifications.log');
    const hook = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (b: Buffer) => (body += b.toString()));
      req.on('end', () => {
        appendFileSync(notifications, `${body}\n`);
        res.end('ok');
      });
    });
    await new Promise<void>((done) => hook.listen(0, '127.0.0.1', done));
    cleanups.push(() => new Promise<void>((done) => hook.close(() => done())));
    const hookPort = (hook.address() as AddressInfo).port;
    const [port] = (await freePorts(1)) as [number];
    const tls = ca.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const auditLog = join(demoDir, 'audit.log');
    // Each demo's proxy starts with no break-glass activation (one from an earlier run would still be in force).
    rmSync(join(demoDir, 'break-glass'), { recursive: true, force: true });
    const configFile = join(demoDir, 'proxy.yaml');
    writeFileSync(
      configFile,
      stringify({
        listen: { host: '127.0.0.1', port },
        tls: { certFile: tls.certFile, keyFile: tls.keyFile },
        authn: { issuers: [{ issuer: idp.issuer, audiences: ['portcullis'], usernamePrefix: 'oidc:', groupsClaim: 'groups', groupsPrefix: 'oidc:', caFile: idp.caFile }] },
        clusters,
        audit: { file: { path: auditLog, maxBytes: 50_000_000, maxFiles: 3 }, stdout: false, flushIntervalMs: 100, onFailure: 'deny' },
        breakGlass: { stateDir: join(demoDir, 'break-glass'), webhookUrl: `http://127.0.0.1:${hookPort}/break-glass` },
        revisionFloor: { stateDir: join(demoDir, 'revisions') },
      }),
    );
    const config = loadConfig(configFile);
    const logger = pino({ name: 'portcullis-proxy' }, pino.destination({ dest: join(demoDir, 'proxy.log'), sync: true }));
    const proxy = new PortcullisProxy({ config, authenticator: createAuthenticator(config.authn as unknown as AuthnConfig), logger });
    await proxy.start();
    cleanups.push(() => proxy.stop());
    const proxyUrl = `https://127.0.0.1:${port}`;
    await waitReady(`${proxyUrl}/readyz`, ca.caFile);

    say('7/7 a pod on each fake kubelet, and a kubeconfig per person');
    for (const c of fleet.clusters) await runSandboxPod({ kubectl, cluster: c, namespace: 'payments', name: 'web-0' });
    const kubeconfigs: Record<string, string> = {};
    for (const p of DEMO_PEOPLE) {
      const token = await idp.token({ sub: p.user, groups: [...p.groups], ttlSeconds: 8 * 3600 });
      const file = join(demoDir, `${p.user.split('@')[0]}.kubeconfig`);
      writeFileSync(file, tokenKubeconfig(proxyUrl, ca.caPem, fleet.clusters.map((c) => c.name), p.user, token), { mode: 0o600 });
      kubeconfigs[p.user.split('@')[0] ?? p.user] = file;
    }
    return { proxyUrl, kubeconfigs, auditLog, notifications, kubectl, generated, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** `portcullis demo`: start everything, print what to try, run until Ctrl-C (or, with --check, run the checks and exit). */
export async function runDemo(o: DemoOptions): Promise<void> {
  const demo = await startDemo(o);
  try {
    if (o.check) {
      const failures = await demoChecks(demo, o.log ?? ((l) => process.stdout.write(`${l}\n`)));
      if (failures) throw new DemoError('CHECKS_FAILED', `demo: ${failures} check(s) failed`);
      return;
    }
    process.stdout.write(tour(demo));
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
  } finally {
    await demo.stop();
  }
}

/** Scripted kubectl sessions through the proxy, each with the outcome the example policy must give. */
export async function demoChecks(demo: RunningDemo, say: (l: string) => void): Promise<number> {
  const k = (who: string, args: string[]) =>
    run(demo.kubectl, ['--kubeconfig', demo.kubeconfigs[who] ?? '', ...args], { timeout: 30_000 }).then(
      (r) => ({ ok: true, out: r.stdout + r.stderr }),
      (e: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    );
  // The contractor's grant is time-bound: allowed while the compiled staging bundle holds it unexpired.
  const zoeGrant = decodeRuleSet(readFileSync(join(demo.generated, 'staging', 'rules.json'), 'utf8')).grants.find((g) => g.id === 'contractor-search-staging');
  const zoeUntil = zoeGrant?.conditions.expires;
  const zoe = zoeUntil !== undefined && Date.now() < Date.parse(zoeUntil) ? zoeUntil : undefined;
  const cases: [string, string, string[], boolean][] = [
    ['alice lists pods of her team in dev', 'alice', ['--context', 'dev', 'get', 'pods', '-n', 'payments'], true],
    ['alice execs into her pod in dev', 'alice', ['--context', 'dev', 'exec', '-n', 'payments', 'web-0', '--', 'echo', 'hello'], true],
    ['alice reads logs in prod', 'alice', ['--context', 'prod-eu', 'logs', '-n', 'payments', 'web-0'], true],
    ['alice cannot exec in prod', 'alice', ['--context', 'prod-eu', 'exec', '-n', 'payments', 'web-0', '--', 'echo', 'hi'], false],
    ['alice cannot read secrets in prod (deny)', 'alice', ['--context', 'prod-eu', 'get', 'secrets', '-n', 'payments'], false],
    ['frank cannot delete pods in prod without break-glass', 'frank', ['--context', 'prod-eu', 'delete', 'pod', '-n', 'payments', 'web-0', '--dry-run=server'], false],
    [`zoe reads search in staging (her grant ${zoe ? `runs until ${zoe}` : 'has expired'})`, 'zoe', ['--context', 'staging', 'get', 'pods', '-n', 'search'], zoe !== undefined],
    ['mallory (named by no grant, in platform) lists pods in dev as platform-edit allows', 'mallory', ['--context', 'dev', 'get', 'pods', '-n', 'payments'], true],
    ...['dev', 'staging', 'prod-eu'].map((c): [string, string, string[], boolean] => [`nina (new in sre, named nowhere) lists pods in ${c} as sre-view allows`, 'nina', ['--context', c, 'get', 'pods', '-n', 'payments'], true]),
    ['eve (in no granted group) gets nothing', 'eve', ['--context', 'dev', 'get', 'pods', '-n', 'payments'], false],
  ];
  let failures = 0;
  const check = (name: string, r: { ok: boolean; out: string }, want: boolean) => {
    const pass = r.ok === want;
    if (!pass) failures++;
    say(`${pass ? 'ok  ' : 'FAIL'} ${name}: ${r.ok ? 'allowed' : 'refused'}${pass ? '' : `\n     ${r.out.trim().split('\n').join('\n     ')}`}`);
  };
  for (const [name, who, args, want] of cases) check(name, await k(who, args), want);
  // Break-glass: invoked with a reason, notified, audited; then the same request goes through.
  const bg = await run(process.execPath, [BIN, 'break-glass', '--kubeconfig', demo.kubeconfigs.frank ?? '', '--cluster', 'prod-eu', '--grant', 'sre-break-glass-prod', '--reason', 'INC-42: web is down', '--duration', '15m'], { timeout: 30_000 }).then(
    (r) => ({ ok: true, out: r.stdout }),
    (e: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
  );
  check('frank invokes break-glass with a reason', bg, true);
  check('frank deletes a pod in prod under break-glass', await k('frank', ['--context', 'prod-eu', 'delete', 'pod', '-n', 'payments', 'web-0', '--dry-run=server']), true);
  const notified = readFileSync(demo.notifications, 'utf8').includes('INC-42: web is down');
  check('the break-glass webhook was told, with the reason', { ok: notified, out: 'no notification received' }, true);
  await new Promise((r) => setTimeout(r, 300)); // one audit flush interval
  const audited = readFileSync(demo.auditLog, 'utf8').split('\n').filter((l) => l.includes('no-secrets-in-prod')).length > 0;
  check('the audit log names the deny that refused alice', { ok: audited, out: 'no audit record names no-secrets-in-prod' }, true);
  return failures;
}

function tour(d: RunningDemo): string {
  const kc = (who: string) => `kubectl --kubeconfig ${d.kubeconfigs[who]}`;
  return `
Portcullis is running at ${d.proxyUrl} in front of dev, staging and prod-eu.
Every request below is authenticated by a real OIDC token, decided from the
signed bundle, impersonated upstream and written to ${d.auditLog}.

  ${kc('alice')} --context dev get pods -n payments
  ${kc('alice')} --context dev exec -n payments web-0 -- echo hello
  ${kc('alice')} --context dev port-forward -n payments pod/web-0 8080:80
  ${kc('alice')} --context prod-eu get secrets -n payments        # denied: no-secrets-in-prod
  ${kc('alice')} --context prod-eu auth can-i --list -n payments
  ${kc('frank')} --context prod-eu delete pod -n payments web-0 --dry-run=server   # denied until:
  node bin/portcullis.js break-glass --kubeconfig ${d.kubeconfigs.frank} --cluster prod-eu --grant sre-break-glass-prod --reason "INC-42: web is down" --duration 15m
  ${kc('mallory')} --context dev get pods -n payments              # named by no grant: platform-edit, through her group
  ${kc('mallory')} auth whoami                                        # who she is, though upstream she is portcullis:member
  ${kc('eve')} --context dev get pods -n payments                  # in no granted group: refused
  node bin/portcullis.js explain --cluster prod-eu --user oidc:alice@acme.example --group oidc:platform -- GET /api/v1/namespaces/payments/secrets
  tail -f ${d.auditLog}
  cat ${d.notifications}                                              # break-glass notifications

Ctrl-C stops the proxy, the issuer and the sandbox.
`;
}

function tokenKubeconfig(proxyUrl: string, caPem: string, clusters: readonly string[], user: string, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: clusters.map((name) => ({ name, cluster: { server: `${proxyUrl}/clusters/${name}`, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } })),
    users: [{ name: user, user: { token } }],
    contexts: clusters.map((name) => ({ name, context: { cluster: name, user } })),
    'current-context': clusters[0] ?? '',
  });
}

/**
 * The demo's own copy of generated/, signed now with the example's demo key (policies/index.ts),
 * in DIR/generated. A fresh copy starts from the committed tree with every bundle renewed; a
 * copy kept from an earlier run (a reused sandbox has its revisions live) follows policy changes
 * and renews what is due, so its revisions only move forward.
 */
function signDemoBundles(demoDir: string, say: (l: string) => void): string {
  const out = join(demoDir, 'generated');
  const fresh = !existsSync(join(out, 'fleet.json'));
  mkdirSync(demoDir, { recursive: true });
  if (fresh) cpSync('generated', out, { recursive: true });
  else cpSync('generated/catalog', join(out, 'catalog'), { recursive: true });
  const r = spawnSync(process.execPath, [BIN, 'compile', '--out', out, '--no-typecheck', ...(fresh ? ['--renew'] : ['--renew-within', DEFAULT_RENEW_WITHIN])], { encoding: 'utf8' });
  if (r.status !== 0) throw new DemoError('STEP_FAILED', `demo: signing the demo's bundles in ${out} failed (exit ${r.status}):\n${r.stderr}`);
  for (const l of r.stderr.trim().split('\n').filter(Boolean)) say(`    ${l}`);
  return out;
}

async function cli(args: string[], ok: readonly number[] = [0]): Promise<void> {
  await new Promise<void>((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', fail);
    child.on('exit', (code) => (code !== null && ok.includes(code) ? done() : fail(new DemoError('STEP_FAILED', `demo: portcullis ${args.join(' ')} failed (exit ${code})`))));
  });
}

async function waitReady(url: string, caFile: string): Promise<void> {
  const ca = readFileSync(caFile);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await new Promise<number>((done) => {
      const req = request(url, { ca }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.on('error', () => done(0));
      req.end();
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new DemoError('STEP_FAILED', `demo: the proxy did not become ready at ${url} (last status ${status})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

