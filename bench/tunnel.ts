/**
 * Tunnel benchmark (a script, not a test): `node bin/run-ts.js bench/tunnel.ts [--fleet DIR] [--quick]`.
 *
 * On loopback against one sandbox cluster, side by side in one run, the same Portcullis proxy
 * configuration twice: reaching kube-apiserver itself (direct), and through `portcullis agent`
 * over its reverse HTTP/2 tunnel. GET of one ConfigMap at concurrency 1 and 32 and LIST of 500;
 * p50/p99 per path and what the tunnel adds; CPU time per request of the proxy process, and of
 * the proxy plus the agent (the tunnel's whole cost). Then 2,000 watches through one tunnel: the
 * RSS of the proxy and of the agent. Rounds alternate direct and tunnel, samples pooled; every
 * path is warmed first. Every loop is bounded in count and time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { keyIdOf, type RuleSet } from '../core/index.ts';
import { keyThumbprint, signRegistration } from '../agent/protocol.ts';
import { downFleet } from '../sandbox/fleet.ts';
import { createLocalCa } from '../sandbox/local-ca.ts';
import { startOidcProvider } from '../sandbox/oidc-issuer.ts';
import { benchCluster, quantile, rssMiB, run, signingKey, startProxyChild, treeCpuMs, writeBundle, type RunResult, type Target } from './proxy-support.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const fleetArg = args.includes('--fleet') ? args[args.indexOf('--fleet') + 1] : undefined;
const rounds = quick ? 2 : 4;
const NS = 'portcullis-bench-tunnel';
const OBJECTS = 500;
const WATCHES = 2000;
const out = (s = '') => process.stdout.write(`${s}\n`);
const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const work = mkdtempSync(join(tmpdir(), 'portcullis-bench-tunnel-'));
const children: ChildProcess[] = [];
let ownFleetDir: string | undefined;
let stopOidc: (() => Promise<void>) | undefined;

async function main(): Promise<void> {
  if (!fleetArg) ownFleetDir = join(work, 'sandbox');
  const { cluster, kubectl } = await benchCluster(fleetArg, ownFleetDir, say);
  say(`creating ${OBJECTS} ConfigMaps and RBAC in ${cluster.name}/${NS}`);
  const rbac = 'rbac.authorization.k8s.io';
  kubectl(
    stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
        { apiVersion: `${rbac}/v1`, kind: 'Role', metadata: { name: 'read', namespace: NS }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }] },
        { apiVersion: `${rbac}/v1`, kind: 'RoleBinding', metadata: { name: 'read', namespace: NS }, roleRef: { apiGroup: rbac, kind: 'Role', name: 'read' }, subjects: [{ apiGroup: rbac, kind: 'User', name: 'oidc:bench' }] },
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'impersonator', namespace: NS } },
        {
          apiVersion: `${rbac}/v1`,
          kind: 'ClusterRole',
          metadata: { name: 'portcullis-bench-tunnel:impersonator' },
          rules: [
            { apiGroups: [''], resources: ['users'], resourceNames: ['oidc:bench'], verbs: ['impersonate'] },
            { apiGroups: [''], resources: ['groups'], resourceNames: ['oidc:bench-team'], verbs: ['impersonate'] },
            { apiGroups: ['authentication.k8s.io'], resources: ['userextras/portcullis.dev/grant', 'userextras/portcullis.dev/authenticated-by'], verbs: ['impersonate'] },
          ],
        },
        {
          apiVersion: `${rbac}/v1`,
          kind: 'ClusterRoleBinding',
          metadata: { name: 'portcullis-bench-tunnel:impersonator' },
          roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: 'portcullis-bench-tunnel:impersonator' },
          subjects: [{ kind: 'ServiceAccount', name: 'impersonator', namespace: NS }],
        },
      ],
    }),
    'apply',
    '-f',
    '-',
  );
  const items = Array.from({ length: OBJECTS }, (_, i) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${String(i).padStart(3, '0')}`, namespace: NS }, data: { index: String(i), payload: 'x'.repeat(200) } }));
  kubectl(stringify({ apiVersion: 'v1', kind: 'List', items }), 'apply', '--server-side', '--field-manager=portcullis-bench', '-f', '-');
  const tokenFile = join(work, 'sa.token');
  writeFileSync(tokenFile, kubectl(undefined, 'create', 'token', 'impersonator', '-n', NS, '--duration=2h').trim(), { mode: 0o600 });

  const oidc = await startOidcProvider();
  stopOidc = () => oidc.stop();
  const userToken = await oidc.token({ sub: 'bench', groups: ['bench-team'], ttlSeconds: 7200 });
  const key = signingKey();
  writeFileSync(join(work, 'bundle-key.pub.pem'), key.publicPem);
  const ruleSet: RuleSet = {
    apiVersion: 'portcullis.dev/v1',
    kind: 'RuleSet',
    cluster: cluster.name,
    grants: [{ id: 'bench-read', source: { file: 'bench/tunnel.ts', line: 1 }, subjects: [{ kind: 'User', name: 'oidc:bench' }], rules: [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }], scope: { kind: 'namespaces', namespaces: [NS] }, conditions: {} }],
    denies: [],
    impersonable: { users: ['oidc:bench'], groups: ['oidc:bench-team'] },
  };
  writeBundle(join(work, 'bundle'), ruleSet, key, 1, Date.now());
  const ca = createLocalCa('portcullis bench CA');
  const serving = ca.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1'] });
  // The agent's identity and its registration.
  const reg = generateKeyPairSync('ed25519');
  writeFileSync(join(work, 'registration.pub.pem'), reg.publicKey.export({ type: 'spki', format: 'pem' }));
  const agentKey = generateKeyPairSync('ed25519');
  writeFileSync(join(work, 'agent.key'), agentKey.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(work, 'agent.registration'), await signRegistration(reg.privateKey, keyIdOf(reg.publicKey), cluster.name, await keyThumbprint(agentKey.publicKey), 600_000));

  const common = {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { certFile: serving.certFile, keyFile: serving.keyFile },
    authn: { issuers: [{ issuer: oidc.issuer, audiences: ['portcullis'], usernamePrefix: 'oidc:', groupsClaim: 'groups', caFile: oidc.caFile }] },
    audit: { stdout: false, file: { path: join(work, 'audit-X.log'), maxBytes: 1 << 30, maxFiles: 2 }, flushIntervalMs: 100 },
    limits: { maxLongRunningPerIdentity: WATCHES + 100 },
  };
  const bundle = { directory: join(work, 'bundle') };
  const trustedKeyFiles = [join(work, 'bundle-key.pub.pem')];
  const configs = {
    direct: { ...common, clusters: [{ name: cluster.name, upstream: { url: cluster.server, caFile: cluster.caFile, tokenFile }, bundle, trustedKeyFiles }] },
    tunnel: {
      ...common,
      audit: { ...common.audit, file: { ...common.audit.file, path: join(work, 'audit-tunnel.log') } },
      clusters: [{ name: cluster.name, agent: true, bundle, trustedKeyFiles }],
      agents: { registrationKeyFiles: [join(work, 'registration.pub.pem')], stateDir: join(work, 'agents') },
    },
  };
  configs.direct.audit.file.path = join(work, 'audit-direct.log');
  writeFileSync(join(work, 'direct.yaml'), stringify(configs.direct));
  writeFileSync(join(work, 'tunnel.yaml'), stringify(configs.tunnel));
  say('starting the two proxies and the agent (child processes)');
  const direct = await startProxyChild(root, join(work, 'direct.yaml'), join(work, 'direct.log'));
  const tunnel = await startProxyChild(root, join(work, 'tunnel.yaml'), join(work, 'tunnel.log'));
  children.push(direct.child, tunnel.child);
  const agent = spawn(
    process.execPath,
    [join(root, 'bin/portcullis.js'), 'agent', '--cluster', cluster.name, '--proxy', `https://127.0.0.1:${tunnel.port}`, '--key', join(work, 'agent.key'), '--registration', join(work, 'agent.registration'), '--proxy-ca', ca.caFile, '--apiserver', cluster.server, '--apiserver-ca', cluster.caFile, '--token-file', tokenFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(agent);
  await new Promise<void>((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => reject(new Error(`the agent opened no tunnel: ${text}`)), 30_000);
    agent.stderr.on('data', (c: Buffer) => {
      text += c.toString();
      if (text.includes('"msg":"tunnel open"')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  const agentPid = agent.pid as number;
  const targets = {
    direct: { label: 'direct', base: `https://127.0.0.1:${direct.port}/clusters/${cluster.name}`, ca: ca.caPem, token: userToken, pid: direct.pid } satisfies Target,
    tunnel: { label: 'tunnel', base: `https://127.0.0.1:${tunnel.port}/clusters/${cluster.name}`, ca: ca.caPem, token: userToken, pid: tunnel.pid } satisfies Target,
  };
  const one = `/api/v1/namespaces/${NS}/configmaps/cm-000`;
  const list = `/api/v1/namespaces/${NS}/configmaps`;
  say('warming both paths');
  for (const t of Object.values(targets)) {
    await run(t, one, 4, quick ? 2000 : 8000, 120_000);
    await run(t, list, 2, quick ? 100 : 400, 120_000);
  }

  out(`# Tunnel against direct, one run (load average ${loadavg()[0]?.toFixed(1)} at start; ${rounds} alternating rounds per scenario, samples pooled)`);
  out();
  out('| scenario | direct p50 / p99 ms | tunnel p50 / p99 ms | added by the tunnel p50 / p99 ms | CPU µs/req: direct proxy · tunnel proxy · agent | tunnel CPU ÷ direct: proxy · proxy+agent |');
  out('| --- | --- | --- | --- | --- | --- |');
  const scenarios = [
    { name: 'GET 1 object c=1', path: one, c: 1, n: quick ? 400 : 1500 },
    { name: 'GET 1 object c=32', path: one, c: 32, n: quick ? 3000 : 12000 },
    { name: 'LIST 500 objects c=1', path: list, c: 1, n: quick ? 60 : 250 },
  ];
  for (const s of scenarios) {
    const pooled = { direct: empty(), tunnel: empty() };
    let agentCpu = 0;
    for (let r = 0; r < rounds; r++) {
      for (const k of r % 2 === 0 ? (['direct', 'tunnel'] as const) : (['tunnel', 'direct'] as const)) {
        const a0 = k === 'tunnel' ? treeCpuMs(agentPid) : 0;
        const res = await run(targets[k], s.path, s.c, Math.ceil(s.n / rounds), 120_000);
        if (k === 'tunnel') agentCpu += treeCpuMs(agentPid) - a0;
        if (res.errors > 0) say(`${s.name} ${k}: ${res.errors} errors (${res.firstError ?? ''})`);
        pooled[k] = merge(pooled[k], res);
      }
    }
    const d = pooled.direct;
    const t = pooled.tunnel;
    const us = (cpuMs: number, n: number) => (cpuMs * 1000) / Math.max(1, n);
    const dCpu = us(d.proxyCpuMs ?? 0, d.samples.length);
    const tCpu = us(t.proxyCpuMs ?? 0, t.samples.length);
    const aCpu = us(agentCpu, t.samples.length);
    const f = (x: number) => x.toFixed(2);
    out(
      `| ${s.name} | ${f(quantile(d.samples, 0.5))} / ${f(quantile(d.samples, 0.99))} | ${f(quantile(t.samples, 0.5))} / ${f(quantile(t.samples, 0.99))} | ${signed(quantile(t.samples, 0.5) - quantile(d.samples, 0.5))} / ${signed(quantile(t.samples, 0.99) - quantile(d.samples, 0.99))} | ${dCpu.toFixed(0)} · ${tCpu.toFixed(0)} · ${aCpu.toFixed(0)} | **${(tCpu / dCpu).toFixed(2)}×** · ${((tCpu + aCpu) / dCpu).toFixed(2)}× |`,
    );
  }

  say(`opening ${WATCHES} watches through the tunnel`);
  const before = { proxy: rssMiB(tunnel.pid), agent: rssMiB(agentPid) };
  const opened = await openWatches(targets.tunnel, `/api/v1/namespaces/${NS}/configmaps?watch=true&resourceVersion=0&timeoutSeconds=600`, WATCHES, 120_000);
  await new Promise((r) => setTimeout(r, 2000));
  const at = { proxy: rssMiB(tunnel.pid), agent: rssMiB(agentPid) };
  opened.close();
  out();
  out(`${opened.ok} of ${WATCHES} watches open through one tunnel (${opened.failed} failed${opened.why ? `: ${opened.why}` : ''}): proxy RSS ${before.proxy.toFixed(0)} → ${at.proxy.toFixed(0)} MiB, agent RSS ${before.agent.toFixed(0)} → ${at.agent.toFixed(0)} MiB`);
}

function empty(): RunResult {
  return { samples: [], errors: 0, elapsedMs: 0, proxyCpuMs: 0 };
}

function merge(a: RunResult, b: RunResult): RunResult {
  return { samples: [...a.samples, ...b.samples], errors: a.errors + b.errors, elapsedMs: a.elapsedMs + b.elapsedMs, proxyCpuMs: (a.proxyCpuMs ?? 0) + (b.proxyCpuMs ?? 0) };
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;
}

/** Watches as streams of a few HTTP/2 connections (500 each), as client-go opens them; bounded by `maxMs`. */
async function openWatches(t: Target, path: string, n: number, maxMs: number): Promise<{ ok: number; failed: number; why?: string; close: () => void }> {
  const base = new URL(t.base);
  const sessions = Array.from({ length: Math.ceil(n / 500) }, () => http2.connect(base.origin, { ca: t.ca }));
  for (const s of sessions) s.on('error', () => undefined);
  let ok = 0;
  let failed = 0;
  let why: string | undefined;
  const deadline = Date.now() + maxMs;
  for (let i = 0; i < n && Date.now() < deadline; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, (_, j) => {
        const session = sessions[Math.floor((i + j) / 500)] as http2.ClientHttp2Session;
        return new Promise<void>((resolve) => {
          const stream = session.request({ ':method': 'GET', ':path': `${base.pathname}${path}`, authorization: `Bearer ${t.token}`, accept: 'application/json' });
          stream.on('response', (h) => {
            if (h[':status'] === 200) ok++;
            else {
              failed++;
              why ??= `HTTP ${String(h[':status'])}`;
            }
            resolve();
          });
          stream.on('data', () => undefined);
          stream.on('error', (e) => {
            failed++;
            why ??= e.message;
            resolve();
          });
          stream.end();
        });
      }),
    );
  }
  return { ok, failed, ...(why ? { why } : {}), close: () => sessions.forEach((s) => s.destroy()) };
}

async function cleanup(): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  await stopOidc?.();
  if (ownFleetDir) await downFleet(ownFleetDir);
  if (process.env.BENCH_KEEP !== '1') rmSync(work, { recursive: true, force: true });
}

try {
  await main();
} finally {
  await cleanup();
}
