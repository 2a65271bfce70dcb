/**
 * Proxy benchmark (a script, not a test): `node bin/run-ts.js bench/proxy.ts [--fleet DIR] [--quick]`.
 *
 * On loopback against a sandbox cluster, side by side in one run:
 *   direct to kube-apiserver · direct with the proxy's impersonation headers · through Portcullis ·
 *   through a minimal Node.js reverse proxy (node-floor-proxy.ts: what Node itself adds) ·
 *   through the same in Go (go-floor-proxy/, built here when `go` is installed: what a compiled data plane adds) ·
 *   through nginx as a plain TLS reverse proxy.
 * GET of one ConfigMap and LIST of 500, at concurrency 1 and 32; p50/p99 per path,
 * the latency each proxy adds over direct, each proxy process's CPU time per request,
 * and Portcullis' added latency over nginx's.
 * Then: bundle reload of 10,000 grants, 2,000 concurrent watches through Portcullis and through the node floor, over HTTP/2 and over HTTP/1.1
 * (its RSS), and the audit sink at 10,000 records/s (lines counted afterwards).
 *
 * Without --fleet it starts its own one-cluster sandbox (sandbox/upFleet) and stops it at the end.
 * Every loop is bounded in count and time.
 *
 * Options: --quick (smaller counts) · --parts latency,reload,watches,audit (a subset) ·
 * --only PREFIX (latency scenarios whose name starts with it, e.g. 'GET 1 object c=32') ·
 * --rounds N (interleaved rounds per scenario, samples pooled; default 4, 2 with --quick) ·
 * --warmup N (GETs, and N/20 LISTs, sent through every path once before the first scenario, so Node.js's JIT
 * has optimised the hot code as in a long-running proxy; default 12,000, 3,000 with --quick; 0 for none) ·
 * Diagnostics (not the reported figures): BENCH_NODELAY=1 turns Nagle off on the proxy's client sockets;
 * BENCH_GC_STATS=FILE writes the proxy's garbage collections by kind (a full one with why V8 ran it) and its heap there when it stops, the node floor's to FILE.floor; BENCH_KEEP=1 keeps the work directory; BENCH_TSX=1 runs the Node.js proxies through tsx rather than compiled (see childCommand);
 * BENCH_CPU_PROF=DIR writes a CPU profile of the proxy; BENCH_PROXY_NODE_FLAGS='…' adds node flags to the proxy; BENCH_FLOOR_NODE_FLAGS the same to the node floor;
 * BENCH_PROXY_AUDIT_MODE=batch runs Portcullis with batch audit (to measure what blocking audit costs);
 * BENCH_PROXY_ENV / BENCH_FLOOR_ENV='VAR=value …' add environment variables to the Portcullis child / the node floor
 * (not ones that write to stdout: the proxy's first stdout line is its port).
 * nginx: `apt-get update && apt-get install -y nginx` (Debian); without it the nginx column is skipped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { Agent, request } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { keyIdOf, type RuleSet } from '../core/index.ts';
import { toAuditEvent } from '../runtime-proxy/audit/event.ts';
import { AuditSink } from '../runtime-proxy/audit/sink.ts';
import { BundleStore } from '../runtime-proxy/bundle-store.ts';
import { downFleet } from '../sandbox/fleet.ts';
import { freePorts } from '../sandbox/processes.ts';
import { createLocalCa } from '../sandbox/local-ca.ts';
import { startOidcProvider } from '../sandbox/oidc-issuer.ts';
import { benchAuditFacts, benchCluster, bigRuleSet, benchChildEnv, childCommand, findNginx, type ChildMemory, quantile, rssMiB, run, signingKey, startupLine, treeCpuMs, startNginx, startProxyChild, writeBundle, type RunResult, type Target } from './proxy-support.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const fleetArg = args.includes('--fleet') ? args[args.indexOf('--fleet') + 1] : undefined;
const rounds = Math.max(1, Number(args.includes('--rounds') ? args[args.indexOf('--rounds') + 1] : quick ? 2 : 4));
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const warmup = Math.max(0, Number(args.includes('--warmup') ? args[args.indexOf('--warmup') + 1] : quick ? 3000 : 12000));
const parts = new Set((args.includes('--parts') ? (args[args.indexOf('--parts') + 1] ?? '') : 'latency,reload,watches,audit').split(','));
const NS = 'portcullis-bench';
const OBJECTS = 500;
const WATCHES = 2000;
/** When the idle RSS is read: V8's memory reducer gives back what starting used about 10 s after the last allocation. */
const IDLE_MS = 12_000;
const out = (s = '') => process.stdout.write(`${s}\n`);
const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

const work = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
const children: ChildProcess[] = [];
let ownFleetDir: string | undefined;
let stopOidc: (() => Promise<void>) | undefined;

async function main(): Promise<void> {
  // ---- the cluster -------------------------------------------------------------
  if (!fleetArg) ownFleetDir = join(work, 'sandbox');
  const { fleet, cluster, kubectl } = await benchCluster(fleetArg, ownFleetDir, say);
  const aliceToken = cluster.tokens.alice;
  if (!aliceToken) throw new Error('sandbox has no static token for alice');

  say(`creating ${OBJECTS} ConfigMaps and RBAC in ${cluster.name}/${NS}`);
  const items = Array.from({ length: OBJECTS }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `cm-${String(i).padStart(3, '0')}`, namespace: NS, labels: { app: 'bench' } },
    data: { index: String(i), payload: 'x'.repeat(200) },
  }));
  const setup = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'bench-read', namespace: NS }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'bench-read', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'bench-read' },
      subjects: [
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'alice' },
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'oidc:bench' },
      ],
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'portcullis-bench-proxy', namespace: NS } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'portcullis-bench:impersonator' },
      rules: [
        { apiGroups: [''], resources: ['users'], resourceNames: ['oidc:bench'], verbs: ['impersonate'] },
        { apiGroups: [''], resources: ['groups'], resourceNames: ['system:authenticated', 'oidc:bench-team'], verbs: ['impersonate'] },
        { apiGroups: ['authentication.k8s.io'], resources: ['userextras/portcullis.dev/grant', 'userextras/portcullis.dev/authenticated-by'], verbs: ['impersonate'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'portcullis-bench:impersonator' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'portcullis-bench:impersonator' },
      subjects: [{ kind: 'ServiceAccount', name: 'portcullis-bench-proxy', namespace: NS }],
    },
  ];
  kubectl(stringify({ apiVersion: 'v1', kind: 'List', items: setup }), 'apply', '-f', '-');
  kubectl(stringify({ apiVersion: 'v1', kind: 'List', items }), 'apply', '--server-side', '--field-manager=portcullis-bench', '-f', '-');
  const saToken = kubectl(undefined, 'create', 'token', 'portcullis-bench-proxy', '-n', NS, '--duration=2h').trim();
  writeFileSync(join(work, 'proxy-sa.token'), saToken, { mode: 0o600 });

  // ---- identity, bundle, TLS ---------------------------------------------------
  const oidc = await startOidcProvider();
  stopOidc = () => oidc.stop();
  const userToken = await oidc.token({ sub: 'bench', groups: ['bench-team'], ttlSeconds: 7200 });
  const key = signingKey();
  writeFileSync(join(work, 'bundle-key.pub.pem'), key.publicPem);
  const ruleSet: RuleSet = {
    apiVersion: 'portcullis.dev/v1',
    kind: 'RuleSet',
    cluster: cluster.name,
    grants: [
      {
        id: 'bench-read',
        source: { file: 'bench/proxy.ts', line: 1 },
        subjects: [{ kind: 'User', name: 'oidc:bench' }],
        rules: [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }],
        scope: { kind: 'namespaces', namespaces: [NS] },
        conditions: {},
      },
    ],
    denies: [],
    impersonable: { users: ['oidc:bench'], groups: ['oidc:bench-team'] },
  };
  writeBundle(join(work, 'bundle'), ruleSet, key, 1, Date.now());
  const ca = createLocalCa('portcullis bench CA');
  const serving = ca.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
  const auditLog = join(work, 'proxy-audit.log');
  const proxyConfig = {
    listen: { host: '127.0.0.1', port: 0 },
    tls: { certFile: serving.certFile, keyFile: serving.keyFile },
    clusters: [
      {
        name: cluster.name,
        upstream: { url: cluster.server, caFile: cluster.caFile, tokenFile: join(work, 'proxy-sa.token') },
        bundle: { directory: join(work, 'bundle') },
        trustedKeyFiles: [join(work, 'bundle-key.pub.pem')],
      },
    ],
    authn: { issuers: [{ issuer: oidc.issuer, audiences: ['portcullis'], usernamePrefix: 'oidc:', groupsClaim: 'groups', caFile: oidc.caFile }] },
    audit: { stdout: false, file: { path: auditLog, maxBytes: 1 << 30, maxFiles: 2 }, flushIntervalMs: 100 },
    limits: { maxLongRunningPerIdentity: WATCHES + 100 },
  };
  // Diagnosis only: BENCH_PROXY_AUDIT_MODE=batch runs Portcullis with batch audit (responses do not wait for their records).
  if (process.env.BENCH_PROXY_AUDIT_MODE === 'batch') Object.assign(proxyConfig.audit, { mode: 'batch' });
  const configFile = join(work, 'proxy.yaml');
  writeFileSync(configFile, stringify(proxyConfig));
  say('starting the Portcullis proxy (child process)');
  const proxy = await startProxyChild(root, configFile, join(work, 'proxy.log'));
  children.push(proxy.child);
  // RSS as started, before any request; the issue's "idle RSS" is read below, once the proxy has sat idle
  // long enough for V8's memory reducer to give back what starting used (about 10 s); the watch part
  // reports it again after the latency runs.
  const startedAt = Date.now();
  await new Promise((r) => setTimeout(r, 1000));
  const startRss = rssMiB(proxy.pid);

  const nginx = findNginx();
  let nginxPort: number | undefined;
  let nginxPid: number | undefined;
  if (nginx) {
    const [port] = (await freePorts(1)) as [number];
    nginxPort = port;
    const upstreamHostPort = new URL(cluster.server).host;
    const n = await startNginx(nginx, join(work, 'nginx'), port, serving, { hostPort: upstreamHostPort, caFile: cluster.caFile });
    children.push(n);
    nginxPid = n.pid;
  } else {
    say('nginx not found: the nginx column is skipped. Install it with `apt-get update && apt-get install -y nginx` (Debian) and run again.');
  }

  // Node's own floor: a minimal reverse proxy on the same undici pool (bench/node-floor-proxy.ts) in its own process.
  say('starting the minimal Node.js reverse proxy (child process)');
  const floorFlags = (process.env.BENCH_FLOOR_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const floor = spawn(process.execPath, [...floorFlags, ...(await childCommand(root, 'bench/node-floor-proxy.ts')), cluster.server, cluster.caFile, serving.certFile, serving.keyFile], {
    cwd: root,
    env: benchChildEnv('BENCH_FLOOR_ENV'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(floor);
  const { port: floorPort } = await startupLine<{ port: number }>(floor, 'node-floor-proxy');

  // What a compiled data plane would cost: the same floor in Go (bench/go-floor-proxy, standard library only).
  const goFloor = await startGoFloor(cluster.server, cluster.caFile, serving.certFile, serving.keyFile);

  const targets: Target[] = [
    { label: 'direct', base: cluster.server, ca: cluster.caPem, token: aliceToken },
    // What the proxy sends upstream, sent directly: kube-apiserver's own cost of impersonation
    // (it authorizes every Impersonate-* header), which a plain reverse proxy does not incur.
    {
      label: 'direct+imp',
      base: cluster.server,
      ca: cluster.caPem,
      token: readFileSync(join(work, 'proxy-sa.token'), 'utf8').trim(),
      headers: {
        'impersonate-user': 'oidc:bench',
        'impersonate-group': 'oidc:bench-team',
        'impersonate-extra-portcullis.dev%2fgrant': 'bench-read',
        'impersonate-extra-portcullis.dev%2fauthenticated-by': oidc.issuer,
      },
    },
    { label: 'portcullis', base: `https://127.0.0.1:${proxy.port}/clusters/${cluster.name}`, ca: ca.caPem, token: userToken, pid: proxy.pid },
    { label: 'node floor', base: `https://127.0.0.1:${floorPort}`, ca: ca.caPem, token: aliceToken, ...(floor.pid !== undefined ? { pid: floor.pid } : {}) },
    ...(goFloor ? [{ label: 'go floor', base: `https://127.0.0.1:${goFloor.port}`, ca: ca.caPem, token: aliceToken, pid: goFloor.pid }] : []),
    ...(nginxPort !== undefined ? [{ label: 'nginx', base: `https://127.0.0.1:${nginxPort}`, ca: ca.caPem, token: aliceToken, ...(nginxPid !== undefined ? { pid: nginxPid } : {}) }] : []),
  ];

  const getPath = `/api/v1/namespaces/${NS}/configmaps/cm-000`;
  const listPath = `/api/v1/namespaces/${NS}/configmaps`;
  for (const t of targets) {
    const r = await run(t, listPath, 1, 1, 10_000);
    if (r.errors > 0) throw new Error(`${t.label}: LIST failed (${r.firstError}); see ${work}`);
  }

  // ---- latency -------------------------------------------------------------------
  out(`Portcullis proxy benchmark — ${new Date().toISOString()} — node ${process.version}, kube-apiserver ${fleet.kubernetesVersion}, ${nginx ? spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr.trim() : 'no nginx'}`);
  out(`loopback, HTTP/1.1 keep-alive, TLS everywhere; latency = request start → last body byte, ms; ${rounds} interleaved rounds per scenario, samples pooled, after a warm-up of ${warmup} GETs and ${Math.ceil(warmup / 20)} LISTs per path`);
  out(`node floor = a minimal Node.js reverse proxy on the same undici pool as Portcullis (bench/node-floor-proxy.ts): what Node itself adds; go floor = the same in Go (bench/go-floor-proxy): what a compiled data plane would add; proxy CPU = the proxy process's user+system time per request`);
  out(`machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at start${process.env.BENCH_NODELAY === '1' ? '; BENCH_NODELAY=1 (diagnostic: Nagle off on the proxy\'s client sockets)' : ''}`);
  out();
  let idleRss: number;
  {
    // Background work of an idle proxy (timers, watchers) would count in its CPU per request.
    // Until IDLE_MS after start (the other proxies started meanwhile; none has sent it a request).
    await new Promise((r) => setTimeout(r, Math.max(0, startedAt + IDLE_MS - 2000 - Date.now())));
    const c0 = treeCpuMs(proxy.pid);
    await new Promise((r) => setTimeout(r, 2000));
    idleRss = rssMiB(proxy.pid);
    out(`idle proxy: ${((treeCpuMs(proxy.pid) - c0) / 20).toFixed(1)}% of a CPU over 2 s; RSS ${idleRss.toFixed(0)} MiB idle (${IDLE_MS / 1000} s after start, before any request), ${startRss.toFixed(0)} MiB 1 s after start (node floor: ${floor.pid !== undefined ? rssMiB(floor.pid).toFixed(0) : '?'} MiB after the first LIST)`);
  }
  const scenarios = !parts.has('latency') ? [] : [
    { name: 'GET 1 object', path: getPath, concurrency: 1, count: quick ? 200 : 1000 },
    { name: 'GET 1 object', path: getPath, concurrency: 32, count: quick ? 1000 : 4000 },
    { name: `LIST ${OBJECTS} objects`, path: listPath, concurrency: 1, count: quick ? 30 : 150 },
    { name: `LIST ${OBJECTS} objects`, path: listPath, concurrency: 32, count: quick ? 100 : 480 },
  ].filter((s) => only === undefined || `${s.name} c=${s.concurrency}`.startsWith(only));
  if (scenarios.length && warmup > 0) {
    // A long-running proxy serves its requests with optimised code. A fresh Node.js process spends its
    // first thousands of requests in the interpreter and the baseline compiler, compiling in the
    // background (a quarter of its CPU in a profile of a cold run). Warm every path the same way
    // once, GETs then LISTs, so the rounds below measure the steady state, as nginx's native code is.
    say(`warming every path: ${warmup} GETs and ${Math.ceil(warmup / 20)} LISTs each, concurrency 16`);
    for (const t of targets) {
      for (const [path, n] of [[getPath, warmup], [listPath, Math.ceil(warmup / 20)]] as const) {
        const r = await run(t, path, 16, n, 60_000);
        if (r.errors > 0) throw new Error(`${t.label}: ${r.errors} of ${r.errors + r.samples.length} warm-up requests failed (${r.firstError}); see ${work}`);
      }
    }
    say('warm-up done; measuring');
  }
  const header = ['scenario', 'path', 'n', 'err', 'req/s', 'p50', 'p99', '+p50', '+p99', 'proxy CPU µs/req'];
  const rows: string[][] = [];
  const ratios: string[] = [];
  const cpuRatios: string[] = [];
  for (const s of scenarios) {
    const results = new Map<string, RunResult>();
    // Interleave in rounds: each round gives every path a warm-up, then its measured share, in the
    // same order; samples pool across rounds, so a slow spell of this shared machine hits all paths alike.
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        await run(t, s.path, Math.min(s.concurrency, 8), Math.min(50, s.count), 10_000);
        const r = await run(t, s.path, s.concurrency, Math.ceil(s.count / rounds), 45_000 / rounds);
        const prev = results.get(t.label);
        results.set(t.label, prev ? mergeRuns(prev, r) : r);
      }
    }
    const d = results.get('direct');
    const dp50 = d ? quantile(d.samples, 0.5) : Number.NaN;
    const dp99 = d ? quantile(d.samples, 0.99) : Number.NaN;
    for (const [label, r] of results) {
      const p50 = quantile(r.samples, 0.5);
      const p99 = quantile(r.samples, 0.99);
      rows.push([
        `${s.name} c=${s.concurrency}`,
        label,
        String(r.samples.length),
        String(r.errors),
        (r.samples.length / (r.elapsedMs / 1000)).toFixed(0),
        p50.toFixed(2),
        p99.toFixed(2),
        label === 'direct' ? '' : (p50 - dp50).toFixed(2),
        label === 'direct' ? '' : (p99 - dp99).toFixed(2),
        r.proxyCpuMs !== undefined && r.samples.length > 0 ? ((r.proxyCpuMs * 1000) / r.samples.length).toFixed(0) : '',
      ]);
    }
    const p = results.get('portcullis');
    const n = results.get('nginx');
    if (p && n) {
      const addP50 = quantile(p.samples, 0.5) - dp50;
      const addN50 = quantile(n.samples, 0.5) - dp50;
      const addP99 = quantile(p.samples, 0.99) - dp99;
      const addN99 = quantile(n.samples, 0.99) - dp99;
      ratios.push(`${s.name} c=${s.concurrency}: Portcullis/nginx added latency p50 ${ratio(addP50, addN50)}, p99 ${ratio(addP99, addN99)}`);
    }
    // The issue's CPU targets: Portcullis's CPU per request against the node floor's and nginx's, from this one run.
    const f = results.get('node floor');
    if (p) {
      const target = s.name.startsWith('GET') ? { floor: 1.15, nginx: 2 } : { floor: 1.15, nginx: 1.5 };
      const parts: string[] = [];
      if (f) parts.push(`÷ node floor ${cpuRatio(p, f, target.floor)}`);
      if (n) parts.push(`÷ nginx ${cpuRatio(p, n, target.nginx)}`);
      if (parts.length) cpuRatios.push(`${s.name} c=${s.concurrency}: Portcullis CPU/req ${parts.join(', ')}`);
    }
  }
  if (rows.length) printTable(header, rows);
  out();
  for (const r of ratios) out(r);
  out('(targets: Portcullis adds ≤ 0.5 ms p50 and ≤ 2 ms p99 over direct; within 2× of nginx; issue 18: added p50 at c=1 for GET ≤ 1.5× nginx\'s)');
  for (const r of cpuRatios) out(r);
  if (cpuRatios.length) out('(issue 18 targets: CPU/req ≤ 1.15× the node floor for GET and LIST; ≤ 2× nginx for GET, ≤ 1.5× for LIST)');
  out();

  // ---- bundle reload -------------------------------------------------------------
  if (parts.has('reload')) await reloadBench(cluster.name, key);
  if (parts.has('watches')) {
    const watchProxies = targets.filter((t): t is Target & { pid: number } => (t.label === 'portcullis' || t.label === 'node floor') && t.pid !== undefined).map((target) => ({ target, pid: target.pid }));
    await watchBench(watchProxies, proxy.memory, idleRss, startRss);
  }
  if (parts.has('audit')) {
    const audit = await auditThroughput(join(work, 'audit-bench.log'), quick ? 3 : 5);
    out(
      `audit sink at 10,000 records/s for ${audit.seconds} s: queued ${audit.queued}, written ${audit.written}, lines in file ${audit.lines}, lost ${audit.lost}; ` +
        `offered rate ${audit.offeredRate.toFixed(0)}/s, flush p99 ${audit.flushP99.toFixed(1)} ms`,
    );
  }
}

/** Builds and starts bench/go-floor-proxy; undefined (column skipped) when Go is not installed. */
async function startGoFloor(upstream: string, caFile: string, certFile: string, keyFile: string): Promise<{ port: number; pid: number } | undefined> {
  const bin = join(work, 'go-floor-proxy');
  const built = spawnSync('go', ['build', '-o', bin, '.'], { cwd: join(root, 'bench', 'go-floor-proxy'), encoding: 'utf8', env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local' }, timeout: 300_000 });
  if (built.error || built.status !== 0) {
    say(`go floor skipped: go build failed (${built.error?.message ?? built.stderr.trim()})`);
    return undefined;
  }
  const child = spawn(bin, [upstream, caFile, certFile, keyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  try {
    const { port } = await startupLine<{ port: number }>(child, 'go-floor-proxy');
    return child.pid !== undefined ? { port, pid: child.pid } : undefined;
  } catch (err) {
    child.kill();
    say(`go floor skipped: ${(err as Error).message}`);
    return undefined;
  }
}

async function reloadBench(clusterName: string, key: ReturnType<typeof signingKey>): Promise<void> {
  const big = bigRuleSet(clusterName, 10_000);
  const bigFiles = writeBundle(join(work, 'big-bundle'), big, key, 1, Date.now());
  // Public keys loaded from the PEM, as the proxy loads them.
  const pub = createPublicKey(key.publicPem);
  const keys = new Map([[keyIdOf(pub), pub]]);
  const reloads: number[] = [];
  for (let i = 0; i < (quick ? 5 : 15); i++) {
    const store = new BundleStore(clusterName, keys);
    const t0 = performance.now();
    const r = store.offer(bigFiles, Date.now());
    reloads.push(performance.now() - t0);
    if (r.result !== 'accepted') throw new Error(`big bundle refused: ${JSON.stringify(r)}`);
  }
  out(`bundle reload, 10,000 grants (${(bigFiles.get('rules.json')?.length ?? 0) / 1e6} MB rules.json): verify+parse+index p50 ${quantile(reloads, 0.5).toFixed(1)} ms, max ${Math.max(...reloads).toFixed(1)} ms over ${reloads.length} (target ≤ 100 ms)`);

}

/**
 * 2,000 watches through Portcullis and through the node floor, side by side: over HTTP/2 (a few
 * client connections multiplexing them, as client-go and kubectl open them), then over HTTP/1.1
 * (one TLS connection per watch: the worst case). Each proxy relays them over upstream HTTP/2.
 * HTTP/2 goes first: a process keeps (and reuses) memory it has freed, so the second transport
 * starts above its idle RSS; its figure is still the RSS with its watches open.
 */
async function watchBench(proxies: readonly { readonly target: Target; readonly pid: number }[], memory: () => Promise<ChildMemory | undefined>, idleRss: number, startRss: number): Promise<void> {
  const watchPath = `/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=900&allowWatchBookmarks=false`;
  const n = quick ? 500 : WATCHES;
  const rss = new Map<string, number>();
  let beforeFirst: number | undefined;
  for (const h2 of [true, false]) {
    const transport = h2 ? 'HTTP/2, 500 watches per client connection' : 'HTTP/1.1, one client connection per watch';
    for (const { target, pid } of proxies) {
      const rssBefore = rssMiB(pid);
      if (target.label === 'portcullis') beforeFirst ??= rssBefore;
      const opened = h2 ? await openWatchesH2(target, watchPath, n, 120_000) : await openWatches(target, watchPath, n, 120_000);
      await new Promise((r) => setTimeout(r, 2000));
      const rssAfter = rssMiB(pid);
      const perWatch = opened.ok > 0 ? (rssAfter - rssBefore) / opened.ok : Number.NaN;
      const at2000 = opened.ok < WATCHES ? rssBefore + perWatch * WATCHES : rssAfter;
      rss.set(`${target.label} ${h2 ? 'h2' : 'h1'}`, at2000);
      out(
        `${target.label}, ${transport}: ${opened.ok} open of ${opened.ok + opened.failed} (${opened.failed} failed${opened.firstError ? `: ${opened.firstError}` : ''}); ` +
          `RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB (${(perWatch * 1024).toFixed(0)} KiB per watch${opened.ok < WATCHES ? `, ≈ ${at2000.toFixed(0)} MiB extrapolated to ${WATCHES}` : ''})`,
      );
      if (target.label === 'portcullis' && !h2) {
        const m = await memory();
        if (m) out(`  Portcullis after a full GC with these watches open: RSS ${m.rss.toFixed(0)} MiB = JS heap ${m.heapUsed.toFixed(0)} MiB + external ${m.external.toFixed(0)} MiB (array buffers ${m.arrayBuffers.toFixed(0)} MiB) + native (TLS, sockets, code) the rest`);
      }
      opened.close();
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const met = (x: number | undefined, t: number) => (x === undefined ? 'n/a' : `${x.toFixed(0)} MiB (target ≤ ${t}: ${x <= t ? 'met' : 'not met'})`);
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? `${(a / b).toFixed(2)}×` : 'n/a');
  const [ph2, ph1, fh2, fh1] = [rss.get('portcullis h2'), rss.get('portcullis h1'), rss.get('node floor h2'), rss.get('node floor h1')];
  out(`issue 18: RSS with ${WATCHES} watches${n < WATCHES ? ' (extrapolated)' : ''} over HTTP/2 ${met(ph2, 300)}, ${ratio(ph2, fh2)} the node floor's ${fh2?.toFixed(0) ?? 'n/a'} MiB; over HTTP/1.1 ${met(ph1, 300)}, ${ratio(ph1, fh1)} the node floor's ${fh1?.toFixed(0) ?? 'n/a'} MiB`);
  out(`issue 18: idle RSS ${met(idleRss, 100)} (${IDLE_MS / 1000} s after start; ${startRss.toFixed(0)} MiB 1 s after start), ${met(beforeFirst, 100)} before the first watch (after the latency runs)`);
}

type OpenedWatches = { ok: number; failed: number; firstError?: string; close: () => void };

/**
 * Opens up to n watches, 100 at a time, until maxMs: `start(finish)` opens one
 * and calls finish(good, why) on its response headers or error. A watch with no
 * response headers within 15 s counts as failed (and the bench moves on).
 */
async function openInBatches(n: number, maxMs: number, start: (finish: (good: boolean, why?: string) => void) => void, close: () => void): Promise<OpenedWatches> {
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const t0 = Date.now();
  const one = () =>
    new Promise<void>((resolve) => {
      let done = false;
      const finish = (good: boolean, why?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (good) ok++;
        else {
          failed++;
          firstError ??= why;
        }
        resolve();
      };
      const timer = setTimeout(() => finish(false, 'no response headers within 15 s'), 15_000);
      start(finish);
    });
  for (let i = 0; i < n && Date.now() - t0 < maxMs; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, one));
  }
  return { ok, failed, ...(firstError !== undefined ? { firstError } : {}), close };
}

/** Watches over HTTP/1.1, one connection each. */
function openWatches(t: Target, path: string, n: number, maxMs: number): Promise<OpenedWatches> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity, ca: t.ca });
  const reqs: ReturnType<typeof request>[] = [];
  return openInBatches(
    n,
    maxMs,
    (finish) => {
      const req = request(`${t.base}${path}`, { agent, ca: t.ca, headers: { authorization: `Bearer ${t.token}`, accept: 'application/json' } }, (res) => {
        res.on('data', () => {});
        res.on('error', () => {});
        finish(res.statusCode === 200, `HTTP ${res.statusCode}`);
      });
      req.on('error', (e) => finish(false, e.message));
      req.end();
      reqs.push(req);
    },
    () => {
      for (const r of reqs) r.destroy();
      agent.destroy();
    },
  );
}

/** Watches as streams of a few HTTP/2 connections, as client-go opens them. */
function openWatchesH2(t: Target, path: string, n: number, maxMs: number): Promise<OpenedWatches> {
  const base = new URL(t.base);
  // 500 streams per connection (the proxy allows 1,000; client-go opens another connection when a server's limit is reached).
  const sessions = Array.from({ length: Math.ceil(n / 500) }, () => http2.connect(base.origin, { ca: t.ca }));
  for (const s of sessions) s.on('error', () => {});
  let next = 0;
  return openInBatches(
    n,
    maxMs,
    (finish) => {
      const session = sessions[Math.floor(next++ / 500) % sessions.length] as http2.ClientHttp2Session;
      const stream = session.request({ ':method': 'GET', ':path': `${base.pathname.replace(/\/$/, '')}${path}`, authorization: `Bearer ${t.token}`, accept: 'application/json' });
      stream.on('response', (h) => finish(h[':status'] === 200, `HTTP ${String(h[':status'])}`));
      stream.on('data', () => {});
      stream.on('error', (e) => finish(false, e.message));
      stream.end();
    },
    () => {
      for (const s of sessions) s.destroy();
    },
  );
}

async function auditThroughput(path: string, seconds: number) {
  const sink = new AuditSink({ stdout: false, file: { path, maxBytes: 1 << 30, maxFiles: 2 }, flushIntervalMs: 100 });
  const now = Date.now();
  const facts = (i: number) => benchAuditFacts(i, now, NS);

  const perTick = 100; // every 10 ms → 10,000/s
  const ticks = seconds * 100;
  let queued = 0;
  const flushTimes: number[] = [];
  const t0 = performance.now();
  for (let tick = 0; tick < ticks; tick++) {
    for (let j = 0; j < perTick; j++) sink.write(toAuditEvent(facts(queued++)));
    if (tick % 10 === 9) {
      const f0 = performance.now();
      sink.flush();
      flushTimes.push(performance.now() - f0);
    }
    const due = t0 + (tick + 1) * 10;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const elapsed = (performance.now() - t0) / 1000;
  sink.close();
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0).length;
  return { seconds, queued, written: sink.written, lost: sink.lost, lines, offeredRate: queued / elapsed, flushP99: quantile(flushTimes, 0.99) };
}

/** Portcullis's CPU per request over another proxy's, with the target it is held to. */
function cpuRatio(p: RunResult, o: RunResult, target: number): string {
  const per = (r: RunResult) => (r.proxyCpuMs !== undefined && r.samples.length > 0 ? (r.proxyCpuMs * 1000) / r.samples.length : Number.NaN);
  const x = per(p) / per(o);
  return `${x.toFixed(2)}× (${per(p).toFixed(0)} vs ${per(o).toFixed(0)} µs; target ≤ ${target}×: ${x <= target ? 'met' : 'not met'})`;
}

function ratio(a: number, b: number): string {
  if (!(b > 0)) return `${a.toFixed(2)} ms vs ${b.toFixed(2)} ms (nginx adds ≤ 0)`;
  return `${(a / b).toFixed(2)}× (${a.toFixed(2)} vs ${b.toFixed(2)} ms)`;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  out(line(header));
  for (const r of rows) out(line(r));
}

/** Two runs of the same path as one: samples, errors, time and proxy CPU added up. */
function mergeRuns(a: RunResult, b: RunResult): RunResult {
  const firstError = a.firstError ?? b.firstError;
  const cpu = a.proxyCpuMs !== undefined && b.proxyCpuMs !== undefined ? a.proxyCpuMs + b.proxyCpuMs : undefined;
  return {
    samples: [...a.samples, ...b.samples],
    errors: a.errors + b.errors,
    elapsedMs: a.elapsedMs + b.elapsedMs,
    ...(firstError !== undefined ? { firstError } : {}),
    ...(cpu !== undefined ? { proxyCpuMs: cpu } : {}),
  };
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await stopOidc?.();
  if (ownFleetDir) await downFleet(ownFleetDir);
  if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
}

// Bounded: whatever happens, stop everything this script started and exit.
const watchdog = setTimeout(
  () => {
    say('watchdog: the run exceeded its time budget; cleaning up');
    process.env.BENCH_KEEP = '1';
    void cleanup().finally(() => process.exit(3));
  },
  (quick ? 12 : 25) * 60_000,
);
watchdog.unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  await main();
  await cleanup();
} catch (err) {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.env.BENCH_KEEP = '1';
  say(`kept ${work} for inspection`);
  await cleanup();
  process.exitCode = 1;
}
