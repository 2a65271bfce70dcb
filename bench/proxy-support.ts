/** Helpers of `bench/proxy.ts`: load generation, statistics, bundle signing, nginx and the proxy child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AuditFacts } from '../runtime-proxy/audit/event.ts';
import { readFleet, upFleet, type SandboxFleet } from '../sandbox/fleet.ts';
import { encodeRuleSet, keyIdOf, sha256, signStatement, type BundleStatement, type PolicyRule, type RuleSet } from '../core/index.ts';

/** One HTTP endpoint the load generator hits. */
export interface Target {
  readonly label: string;
  /** https://127.0.0.1:PORT plus any path prefix (`/clusters/bench` for Portcullis). */
  readonly base: string;
  readonly ca: string;
  readonly token: string;
  /** Extra request headers (the impersonation the proxy would send). */
  readonly headers?: Readonly<Record<string, string | string[]>>;
  /** The proxy process in between, if any: its CPU time (with its children's) per request is reported. */
  readonly pid?: number;
}

/** Latency samples of one run, in ms. */
export interface RunResult {
  readonly samples: number[];
  readonly errors: number;
  readonly firstError?: string;
  readonly elapsedMs: number;
  /** CPU time the target's proxy process tree spent during the run, in ms (when the target names a pid). */
  readonly proxyCpuMs?: number;
}

/** A GET that reads the whole body; resolves with the status. */
function get(agent: Agent, t: Target, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.base}${path}`, { agent, ca: t.ca, headers: { ...(t.headers ?? {}), authorization: `Bearer ${t.token}`, accept: 'application/json' } }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * `count` GETs of `path` with `concurrency` workers on one keep-alive pool,
 * stopping early at `maxMs`. Each sample is request start → last body byte.
 */
export async function run(t: Target, path: string, concurrency: number, count: number, maxMs: number): Promise<RunResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: t.ca });
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let issued = 0;
  const cpu0 = t.pid !== undefined ? treeCpuMs(t.pid) : undefined;
  const t0 = performance.now();
  const worker = async () => {
    while (issued < count && performance.now() - t0 < maxMs) {
      issued++;
      const s = performance.now();
      try {
        const status = await get(agent, t, path);
        if (status === 200) samples.push(performance.now() - s);
        else {
          errors++;
          firstError ??= `HTTP ${status}`;
        }
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - t0;
  const proxyCpuMs = cpu0 !== undefined && t.pid !== undefined ? treeCpuMs(t.pid) - cpu0 : undefined;
  agent.destroy();
  return { samples, errors, elapsedMs, ...(firstError !== undefined ? { firstError } : {}), ...(proxyCpuMs !== undefined ? { proxyCpuMs } : {}) };
}

/** The q-quantile (0…1) of samples, nearest rank. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

/** A fresh Ed25519 signing key with its PEM public key and key id. */
export function signingKey(): { readonly privateKey: KeyObject; readonly publicPem: string; readonly keyId: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pub = createPublicKey(privateKey);
  return { privateKey, publicPem: pub.export({ type: 'spki', format: 'pem' }).toString(), keyId: keyIdOf(pub) };
}

/** Writes a signed bundle directory (rbac.yaml, rules.json, bundle.sig.json) and returns its files. */
export function writeBundle(dir: string, ruleSet: RuleSet, key: ReturnType<typeof signingKey>, revision: number, now: number): Map<string, Uint8Array> {
  mkdirSync(dir, { recursive: true });
  // The compiler's wire format (role table, one grant per line).
  const rules = Buffer.from(encodeRuleSet(ruleSet), 'utf8');
  const rbac = Buffer.from('# RBAC is applied by `portcullis apply`; the proxy only verifies its digest.\n', 'utf8');
  const st: BundleStatement = {
    _type: 'https://portcullis.dev/bundle/v1',
    cluster: ruleSet.cluster,
    revision,
    notAfter: new Date(now + 86_400_000).toISOString(),
    sourceDigest: sha256(rules),
    keyId: key.keyId,
    files: { 'rbac.yaml': sha256(rbac), 'rules.json': sha256(rules) },
  };
  const env = Buffer.from(signStatement(st, key.privateKey), 'utf8');
  writeFileSync(join(dir, 'rules.json'), rules);
  writeFileSync(join(dir, 'rbac.yaml'), rbac);
  writeFileSync(join(dir, 'bundle.sig.json'), env);
  return new Map<string, Uint8Array>([
    ['rules.json', rules],
    ['rbac.yaml', rbac],
    ['bundle.sig.json', env],
  ]);
}

/** A rule set with `n` grants over many subjects and namespaces, like a large organisation's. */
export function bigRuleSet(cluster: string, n: number): RuleSet {
  // 40 shared roles, as the compiler de-duplicates rule lists into a role table.
  const roles: PolicyRule[][] = Array.from({ length: 40 }, (_, r) => [
    { verbs: r % 2 ? ['get', 'list', 'watch'] : ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], apiGroups: ['', 'apps'], resources: ['pods', 'deployments', 'configmaps', `custom${r}`] },
    { verbs: ['create'], apiGroups: [''], resources: ['pods/exec', 'pods/portforward'] },
  ]);
  const grants = Array.from({ length: n }, (_, i) => ({
    id: `g${String(i).padStart(5, '0')}`,
    source: { file: 'policies/big.ts', line: i + 1 },
    subjects: [i % 3 === 0 ? { kind: 'Group' as const, name: `oidc:team-${i % 500}` } : { kind: 'User' as const, name: `oidc:user-${i % 2000}` }],
    rules: roles[i % roles.length] ?? [],
    role: `role-${i % roles.length}:${String(i % roles.length).padStart(10, '0')}`,
    scope: i % 10 === 0 ? { kind: 'cluster' as const } : { kind: 'namespaces' as const, namespaces: [`ns-${i % 300}`, `ns-${(i + 1) % 300}`] },
    conditions: i % 50 === 0 ? { windows: [{ days: ['mon' as const, 'tue' as const], start: '09:00', end: '17:00', timeZone: 'Europe/Berlin' }] } : {},
    ...(i % 50 === 0 ? { activationGroup: `portcullis:grant:g${String(i).padStart(5, '0')}` } : {}),
  }));
  const users = [...new Set(grants.flatMap((g) => g.subjects.filter((s) => s.kind === 'User').map((s) => s.name)))].sort();
  const groups = [...new Set([...grants.flatMap((g) => g.subjects.filter((s) => s.kind === 'Group').map((s) => s.name)), ...grants.flatMap((g) => (g.activationGroup ? [g.activationGroup] : []))])].sort();
  return { apiVersion: 'portcullis.dev/v1', kind: 'RuleSet', cluster, grants, denies: [], impersonable: { users, groups } };
}

/**
 * The command line that runs a bench child (`bench/proxy-server.ts`, `bench/node-floor-proxy.ts`)
 * as the product runs: compiled JavaScript on plain Node.js, without a TypeScript loader in the
 * process (tsx's loader thread, its esbuild, source maps and per-closure `__name` helpers would
 * count in every proxy's memory and CPU). Bundled once per run with esbuild, the same way for
 * every Node.js proxy of the bench; packages stay external (loaded from node_modules as
 * installed). BENCH_TSX=1 runs them through tsx instead (bin/run-ts.js), as earlier runs did.
 */
export async function childCommand(root: string, entry: string): Promise<string[]> {
  if (process.env.BENCH_TSX === '1') return [join(root, 'bin/run-ts.js'), join(root, entry)];
  const { build } = await import('esbuild');
  // Beside node_modules, so that the bundle's bare imports resolve to the project's packages.
  const outfile = join(root, 'node_modules', '.cache', 'portcullis-bench', entry.replace(/[/\\]/g, '_').replace(/\.ts$/, '.mjs'));
  await build({ entryPoints: [join(root, entry)], outfile, bundle: true, platform: 'node', format: 'esm', target: `node${process.versions.node.split('.')[0]}`, packages: 'external', logLevel: 'error' });
  return [outfile];
}

/**
 * The environment of a Node.js proxy child: the bench's own, plus `VAR=value …` from the
 * environment variable `which` (diagnostics: BENCH_PROXY_ENV for Portcullis, BENCH_FLOOR_ENV
 * for the node floor, e.g. NODE_OPTIONS=--max-semi-space-size=32 MALLOC_ARENA_MAX=2).
 */
export function benchChildEnv(which: string): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const kv of (process.env[which] ?? '').split(' ').filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** Starts a child process running `bench/proxy-server.ts` and waits for its `{port,pid}` line. */
export async function startProxyChild(
  root: string,
  configFile: string,
  logFile: string,
): Promise<{ readonly child: ChildProcess; readonly port: number; readonly pid: number; readonly memory: () => Promise<ChildMemory | undefined> }> {
  // BENCH_CPU_PROF=DIR (diagnostic): write a CPU profile of the proxy process there.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const extra = (process.env.BENCH_PROXY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  // As the product runs it (no heap size flags; the node floor has none either). --expose-gc only installs
  // gc() for the memory line (SIGUSR2); it changes no GC heuristic.
  const child = spawn(process.execPath, [...prof, ...extra, '--expose-gc', ...(await childCommand(root, 'bench/proxy-server.ts')), configFile], {
    cwd: root,
    env: benchChildEnv('BENCH_PROXY_ENV'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // BENCH_PROXY_STDOUT=FILE (diagnostic): everything the proxy prints to stdout, with V8's traces, to FILE.
  const stdoutFile = process.env.BENCH_PROXY_STDOUT;
  if (stdoutFile) child.stdout?.on('data', (c: Buffer) => appendFileSync(stdoutFile, c));
  const errChunks: string[] = [];
  child.stderr?.on('data', (c: Buffer) => {
    errChunks.push(c.toString());
    writeFileSync(logFile, errChunks.join(''));
  });
  const { port, pid } = await startupLine<{ port: number; pid: number }>(child, 'proxy', () => errChunks.join(''));
  return { child, port, pid, memory: () => memoryOf(child) };
}

/**
 * The JSON object a child prints as its first stdout line once it listens (`{"port": N, …}`);
 * rejects when the child exits first, prints something else, or says nothing within 60 s.
 * `detail` adds what the child logged to the error.
 */
export function startupLine<T extends { port: number }>(child: ChildProcess, what: string, detail: () => string = () => ''): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new Error(`${what} ${why}${detail() ? `:\n${detail()}` : ''}`));
    };
    const timer = setTimeout(() => fail('did not start within 60 s'), 60_000);
    child.once('exit', (code) => fail(`exited with ${code}`));
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const onLine = (l: string): void => {
      let v: T | undefined;
      try {
        v = JSON.parse(l) as T;
      } catch {
        v = undefined;
      }
      // V8's tracing flags (--trace-gc, --trace-deopt: diagnosis through BENCH_PROXY_NODE_FLAGS) print to stdout too.
      if (v === undefined && process.env.BENCH_PROXY_NODE_FLAGS?.includes('--trace')) return;
      rl.off('line', onLine);
      if (typeof v?.port !== 'number') return fail(`printed ${JSON.stringify(l)}, not its port`);
      clearTimeout(timer);
      resolve(v);
    };
    rl.on('line', onLine);
  });
}

/** What the proxy child reports of its memory after a GC, in MiB. */
export interface ChildMemory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

function memoryOf(child: ChildProcess): Promise<ChildMemory | undefined> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => {
      rl.close();
      resolve(undefined);
    }, 5000);
    rl.once('line', (l) => {
      clearTimeout(timer);
      rl.close();
      try {
        const m = (JSON.parse(l) as { memory: Record<string, number> }).memory;
        const mib = (k: string) => (m[k] ?? Number.NaN) / 1048576;
        resolve({ rss: mib('rss'), heapUsed: mib('heapUsed'), external: mib('external'), arrayBuffers: mib('arrayBuffers') });
      } catch {
        resolve(undefined);
      }
    });
    child.kill('SIGUSR2');
  });
}

/** User plus system CPU time of a process and its direct children (nginx's workers), in ms, from /proc. */
export function treeCpuMs(pid: number): number {
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command: state ppid … utime(14) stime(15), 1-based over the whole line.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    if (Number(entry) !== pid && ppid !== pid) continue;
    total += (Number(rest[11]) + Number(rest[12])) * tick;
  }
  return total;
}

/** Resident set size of a process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Where nginx is, or undefined. */
export function findNginx(): string | undefined {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
    const r = spawnSync(p, ['-v'], { encoding: 'utf8' });
    if (r.status === 0) return p;
  }
  return undefined;
}

/** Starts nginx (1 worker, like the single-threaded proxy) as a plain TLS reverse proxy to `upstream`. */
export async function startNginx(
  nginx: string,
  dir: string,
  port: number,
  tls: { readonly certFile: string; readonly keyFile: string },
  upstream: { readonly hostPort: string; readonly caFile: string },
): Promise<ChildProcess> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const runningAsRoot = process.getuid?.() === 0;
  const conf = `
${runningAsRoot ? 'user root root;' : ''}
worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'tmp/body')};
  proxy_temp_path ${join(dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(dir, 'tmp/scgi')};
  upstream kube {
    server ${upstream.hostPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${tls.certFile};
    ssl_certificate_key ${tls.keyFile};
    keepalive_requests 100000;
    location / {
      proxy_pass https://kube;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_trusted_certificate ${upstream.caFile};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }
  }
}
`;
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  const check = spawnSync(nginx, ['-t', '-c', confFile, '-e', join(dir, 'error.log')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed: ${check.stderr}`);
  const child = spawn(nginx, ['-c', confFile, '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  // Wait until it accepts TLS connections.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`https://127.0.0.1:${port}/`, { rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.end();
    });
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`nginx did not start: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
}

/** The facts of audit record `i` as a benchmark writes them: a GET of a configmap in `namespace`, allowed by a grant. */
export function benchAuditFacts(i: number, now: number, namespace: string): AuditFacts {
  return {
    auditId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    stage: 'ResponseComplete',
    requestURI: `/api/v1/namespaces/${namespace}/configmaps/cm-${i % 500}`,
    method: 'GET',
    receivedAt: now,
    at: now,
    sourceIP: '127.0.0.1',
    userAgent: 'kubectl/v1.34.4',
    cluster: 'bench',
    transport: 'http1',
    user: { name: 'oidc:bench', groups: ['oidc:bench-team'], issuer: 'https://127.0.0.1' },
    impersonated: { user: 'oidc:bench', groups: ['oidc:bench-team'] },
    decision: 'allow',
    reason: 'grant',
    grantId: 'bench-read',
    source: 'policies/bench.ts:1',
    bundleRevision: 1,
    policyDigest: 'f'.repeat(64),
    code: 200,
  };
}

/**
 * The benches' one cluster: the first of the fleet in `fleetDir` (`--fleet DIR`), or of a one-cluster
 * sandbox started in `ownDir` (the caller stops it, also when this fails half way), with kubectl as
 * its admin (`input` on stdin; throws with kubectl's stderr).
 */
export async function benchCluster(
  fleetDir: string | undefined,
  ownDir: string | undefined,
  say: (s: string) => void,
): Promise<{ readonly fleet: SandboxFleet; readonly cluster: SandboxFleet['clusters'][number]; readonly kubectl: (input: string | undefined, ...args: string[]) => string }> {
  let fleet: SandboxFleet;
  if (fleetDir) fleet = readFleet(fleetDir);
  else if (ownDir) {
    say(`starting a one-cluster sandbox in ${ownDir}`);
    fleet = await upFleet({ dir: ownDir, names: ['bench'], log: say });
  } else throw new Error('benchCluster: neither a fleet nor a directory for one');
  const cluster = fleet.clusters[0];
  if (!cluster) throw new Error('the sandbox has no cluster');
  const kubectl = (input: string | undefined, ...a: string[]): string => {
    const r = spawnSync(fleet.bin.kubectl, ['--kubeconfig', cluster.adminKubeconfig, ...a], { encoding: 'utf8', input, timeout: 120_000, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`kubectl ${a.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return { fleet, cluster, kubectl };
}
