/**
 * Test harness for the runtime proxy: a real sandbox cluster (getTestFleet),
 * a real OIDC provider, the real authenticator, the proxy on loopback, real
 * kubectl pointed at https://127.0.0.1:PORT/clusters/NAME, and bundles signed
 * in the test with a fresh Ed25519 key.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { sha256, signStatement, type BundleStatement } from '../../core/bundle.ts';
import { canonicalJson } from '../../core/canonical-json.ts';
import { EXTRA_KEYS } from '../../core/names.ts';
import { get as httpGet } from 'node:http';
import type { Conditions, Grant, PolicyRule, RuleSet, Scope, Subject } from '../../core/rule-set.ts';
import { createAuthenticator } from '../../runtime-proxy/authn/index.ts';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import { parseConfig, type ProxyConfig } from '../../runtime-proxy/config.ts';
import type { Authenticator } from '../../runtime-proxy/identity.ts';
import { PortcullisProxy } from '../../runtime-proxy/server.ts';
import { getTestFleet, type TestCluster, type TestFleet } from '../support/fleet.ts';
import { createLocalCa, type LocalCa } from '../../sandbox/local-ca.ts';
import { LOGIN_CLIENT_ID, startOidcProvider, type LocalOidcProvider, type PeopleDirectory } from '../../sandbox/oidc-issuer.ts';

/** Builds a grant the way the compiler would write it. */
export function grant(id: string, subjects: readonly Subject[], rules: readonly PolicyRule[], scope: Scope, extra: { conditions?: Conditions; activationGroup?: string; line?: number } = {}): Grant {
  return {
    id,
    source: { file: 'policies/test.ts', line: extra.line ?? 10 },
    subjects,
    rules,
    scope,
    conditions: extra.conditions ?? {},
    ...(extra.activationGroup !== undefined ? { activationGroup: extra.activationGroup } : {}),
  };
}

/**
 * Upstream RBAC for a test (what the compiler's rbac.yaml would hold): a Role
 * `name` in `namespace` with `rules`, and a RoleBinding of it to `subjects`.
 */
export function upstreamRole(namespace: string, name: string, subjects: readonly { readonly kind: string; readonly name: string }[], rules: readonly PolicyRule[]): object[] {
  const RBAC = 'rbac.authorization.k8s.io';
  return [
    { apiVersion: `${RBAC}/v1`, kind: 'Role', metadata: { name, namespace }, rules },
    { apiVersion: `${RBAC}/v1`, kind: 'RoleBinding', metadata: { name, namespace }, roleRef: { apiGroup: RBAC, kind: 'Role', name }, subjects: subjects.map((s) => ({ apiGroup: RBAC, kind: s.kind, name: s.name })) },
  ];
}

/** Manifests as one multi-document YAML string (for HarnessOptions.rbac). */
export const manifestsYaml = (objects: readonly object[]): string => objects.map((m) => stringify(m)).join('---\n');

export const user = (name: string): Subject => ({ kind: 'User', name });
export const group = (name: string): Subject => ({ kind: 'Group', name });
export const ns = (...namespaces: string[]): Scope => ({ kind: 'namespaces', namespaces });

/** A rule set for one cluster. */
export function ruleSet(cluster: string, grants: readonly Grant[], extra: { denies?: RuleSet['denies']; users?: readonly string[]; groups?: readonly string[] } = {}): RuleSet {
  const users = new Set(extra.users ?? []);
  const groups = new Set(extra.groups ?? []);
  for (const g of grants) {
    for (const s of g.subjects) (s.kind === 'User' ? users : groups).add(s.name);
    if (g.activationGroup) groups.add(g.activationGroup);
  }
  return { apiVersion: 'portcullis.dev/v1', kind: 'RuleSet', cluster, grants, denies: extra.denies ?? [], impersonable: { users: [...users].sort(), groups: [...groups].sort() } };
}

/** Writes a signed bundle (rules.json, rbac.yaml, bundle.sig.json) into `dir`, atomically file by file. */
export function writeBundle(dir: string, rs: RuleSet, key: KeyObject, keyId: string, o: { revision: number; notAfter?: string; cluster?: string; rbac?: string }): void {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = { 'rules.json': canonicalJson(rs), 'rbac.yaml': o.rbac ?? `# rbac for ${rs.cluster} r${o.revision}\n` };
  const st: BundleStatement = {
    _type: 'https://portcullis.dev/bundle/v1',
    cluster: o.cluster ?? rs.cluster,
    revision: o.revision,
    notAfter: o.notAfter ?? new Date(Date.now() + 30 * 86_400_000).toISOString(), // the compiler's default validity
    sourceDigest: sha256(`r${o.revision}`),
    keyId,
    files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])),
  };
  const all = { ...files, 'bundle.sig.json': signStatement(st, key) };
  for (const [name, text] of Object.entries(all)) {
    writeFileSync(join(dir, `.${name}.tmp`), text);
    renameSync(join(dir, `.${name}.tmp`), join(dir, name));
  }
}

/** A response to a raw request. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** Result of a kubectl run. */
export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running kubectl whose output the test watches. */
export interface LiveKubectl {
  readonly out: () => string;
  readonly err: () => string;
  /** Resolves when stdout matches, rejects after `ms`. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code when kubectl exits. */
  readonly exited: Promise<number | null>;
  /** Writes to kubectl's standard input (kept open until kill). */
  write(text: string): void;
  kill(): void;
}

function liveKubectl(bin: string, args: readonly string[], env: NodeJS.ProcessEnv): LiveKubectl {
  const p = spawn(bin, [...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  p.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    for (const w of waiters) w();
  });
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const killer = setTimeout(() => p.kill('SIGKILL'), 120_000);
  const exited = new Promise<number | null>((r) =>
    p.on('close', (code) => {
      clearTimeout(killer);
      for (const w of waiters) w();
      r(code);
    }),
  );
  return {
    out: () => out,
    err: () => err,
    exited,
    write: (text) => void p.stdin.write(text),
    kill: () => p.kill('SIGKILL'),
    waitFor(re, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(out);
          if (m) {
            clearTimeout(t);
            resolve(m);
          } else if (p.exitCode !== null) {
            clearTimeout(t);
            reject(new Error(`kubectl exited (${p.exitCode}) before ${re}: ${err}`));
          }
        };
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout: ${out}; stderr: ${err}`)), ms);
        waiters.push(check);
        check();
      });
    },
  };
}

/** Everything a proxy test needs. */
export interface Harness {
  readonly fleet: TestFleet;
  readonly cluster: TestCluster;
  readonly kubectlBin: string;
  readonly oidc: LocalOidcProvider;
  readonly proxy: PortcullisProxy;
  readonly port: number;
  readonly dir: string;
  readonly bundleDir: string;
  readonly auditFile: string;
  readonly config: ProxyConfig;
  readonly signingKey: KeyObject;
  readonly keyId: string;
  readonly proxyCa: LocalCa;
  /** The proxy's ServiceAccount token (impersonate-only). */
  readonly proxyToken: string;
  /** Issues a real OIDC token; the user gets the `oidc:` prefix at the proxy. */
  token(sub: string, groups?: readonly string[], ttlSeconds?: number): Promise<string>;
  /** A kubeconfig for kubectl through the proxy to `cluster` with this bearer token, or client certificate. */
  kubeconfig(token: string | { readonly certFile: string; readonly keyFile: string }, cluster?: string): string;
  kubectl(kubeconfig: string, args: readonly string[], env?: Readonly<Record<string, string>>, input?: string): Promise<Run>;
  /** kubectl on a pseudo-terminal (script(1)), for `exec -it`; the terminal's output is in stdout. */
  kubectlOnTty(kubeconfig: string, args: readonly string[], env?: Readonly<Record<string, string>>): Promise<Run>;
  /** Starts a long-running kubectl (watch, exec, port-forward). */
  spawnKubectl(kubeconfig: string, args: readonly string[], env?: Readonly<Record<string, string>>): LiveKubectl;
  /** kubectl as the sandbox admin, directly against the cluster. */
  admin(args: readonly string[], stdin?: string): Run;
  /**
   * A ServiceAccount `CONFIGMAP-SUFFIX` in portcullis-system that may use only `verbs` on that one
   * ConfigMap (a bundle reader, a break-glass store), and a token file for it; returns the file.
   */
  configMapAccount(configMap: string, suffix: string, verbs: readonly string[]): string;
  /** Publishes a rule set as bundle `revision` (for `rs.cluster`) and reloads the proxy now. */
  publish(rs: RuleSet, revision: number): Promise<void>;
  /** The bundle directory of a cluster. */
  bundleDirOf(cluster: string): string;
  /** Every audit record written so far (flushes first). */
  auditEvents(): AuditEvent[];
  /**
   * The audit records once `ready` holds for them, polling for up to `ms`: a stream's
   * last record is written when the proxy sees its connection close, which may be just
   * after kubectl exits.
   */
  auditEventsWhen(ready: (events: AuditEvent[]) => boolean, ms?: number): Promise<AuditEvent[]>;
  /** A raw HTTPS request to the proxy (HTTP/1.1; `headers` as name/value pairs so duplicates survive). */
  request(method: string, path: string, headers?: readonly (readonly [string, string])[], body?: string, port?: number): Promise<RawResponse>;
  /** Starts another proxy from a modified copy of this configuration (same authenticator settings, unless one is given). */
  extraProxy(mutate: (c: ProxyConfig) => ProxyConfig, authenticator?: Authenticator): Promise<{ readonly proxy: PortcullisProxy; readonly port: number; readonly metricsPort?: number; readonly logs: () => Record<string, unknown>[] }>;
  /** GET on the proxy's plain-HTTP metrics listener (this proxy's unless another port is given). */
  scrape(path?: string, port?: number): Promise<{ readonly status: number; readonly body: string }>;
  /** The proxy's log lines so far. */
  logs(): Record<string, unknown>[];
  /**
   * Starts an agent of the cluster (options.agent) dialling these proxy ports (default: this proxy's),
   * with the agent key, the registration credential and the impersonate-only token files.
   */
  startAgent(o?: { readonly ports?: readonly number[]; readonly key?: string; readonly registration?: string; readonly cluster?: string }): AgentProcess;
  /** The agent's key, registration credential and registration signing key (options.agent). */
  readonly agentFiles: { readonly key: string; readonly registration: string; readonly registrationKey: string; readonly registrationKeyId: string; readonly tokenFile: string };
  stop(): Promise<void>;
}

/** Options for {@link startHarness}. */
export interface HarnessOptions {
  /** Namespaces to create in the cluster (idempotent). */
  readonly namespaces?: readonly string[];
  /** RBAC (YAML) to apply upstream as admin, e.g. what the compiler's rbac.yaml would hold. */
  readonly rbac?: string;
  /** Users/groups (with prefix) the proxy's ServiceAccount may impersonate (resourceNames). */
  readonly impersonable: { readonly users: readonly string[]; readonly groups: readonly string[] };
  readonly ruleSet?: RuleSet;
  /** Extra YAML merged into the config (limits, breakGlass …). */
  readonly configExtra?: Record<string, unknown>;
  readonly clusterName?: string;
  /** Accept client certificates issued by this CA (CN → `x509:` user, O → `x509:` groups). */
  readonly clientCa?: LocalCa;
  /**
   * Use what the compiler produced instead of test-made parts: its bundle
   * directory, its trusted keys, and its ServiceAccount (portcullis-system/NAME,
   * created by applying its rbac.yaml through `rbac`).
   */
  readonly compiled?: { readonly bundleDir: string; readonly trustedKeyFiles: readonly string[]; readonly serviceAccount: string };
  /** People who can sign in at the identity provider's login form (`portcullis login`), with their groups. */
  readonly people?: PeopleDirectory;
  /** How long the provider's device codes live. @default 600 */
  readonly deviceCodeTtlSeconds?: number;
  /** Proxy sessions (`portcullis login`) in this Redis, with these timeouts. @default no sessions */
  readonly sessions?: { readonly storeUrl: string; readonly idleTimeoutMs?: number; readonly maxLifetimeMs?: number; readonly touchIntervalMs?: number; readonly storeGraceMs?: number };
  /** A second cluster behind the same proxy (same ServiceAccount setup and RBAC), with its own bundle. */
  readonly second?: { readonly name: string; readonly ruleSet?: RuleSet };
  /**
   * The cluster is reached through its agent (`portcullis agent`, started with `startAgent`): the
   * proxy's configuration has no upstream URL and no credential for it. Registered agents are kept
   * in `agentStore` (a directory, or the sessions' Redis). @default direct
   */
  readonly agent?: { readonly agentStore?: 'directory' | 'sessions' };
  /** The web console at /console (needs `sessions`), with the browser shell. @default none */
  readonly console?: { readonly terminalIdleTimeoutMs?: number };
}

/** An agent process (`portcullis agent`) of the harness's cluster. */
export interface AgentProcess {
  /** Its log lines so far (JSON). */
  logs(): Record<string, unknown>[];
  /** Everything it wrote to stderr. */
  raw(): string;
  /** Resolves once it logged `tunnel open` `n` times. */
  opened(n?: number, ms?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  readonly exited: Promise<number | null>;
}

/** Feeds `input` to a process and collects its output; killed after 60 s. */
function collect(p: ChildProcessWithoutNullStreams, input?: string): Promise<Run> {
  return new Promise((res) => {
    p.stdin.end(input ?? '');
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (status) => {
      clearTimeout(t);
      res({ status, stdout, stderr });
    });
  });
}

/** Starts the whole setup. Unique names per call, so test files do not disturb each other on the shared fleet. */
export async function startHarness(o: HarnessOptions): Promise<Harness> {
  const fleet = await getTestFleet();
  const clusterName = o.clusterName ?? 'dev';
  const cluster = fleet.cluster(clusterName);
  const kubectlBin = fleet.bin.kubectl;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-proxy-'));
  const suffix = randomBytes(3).toString('hex');
  const adminOf = (c: TestCluster) => (args: readonly string[], stdin?: string): Run => {
    const r = spawnSync(kubectlBin, ['--kubeconfig', c.adminKubeconfig, ...args], { encoding: 'utf8', input: stdin ?? '', timeout: 60_000, maxBuffer: 64 << 20 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const admin = adminOf(cluster);
  const must = (r: Run, what: string): Run => {
    if (r.status !== 0) throw new Error(`${what}: ${r.stderr}`);
    return r;
  };
  // The proxy's ServiceAccount: impersonate only, only the named users and groups (SECURITY rule 7).
  const sa = `portcullis-proxy-${suffix}`;
  const setupSa = (c: TestCluster, file: string): string => {
    const manifests = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'portcullis-system' } },
      ...(o.namespaces ?? []).map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } })),
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: 'portcullis-system' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: sa },
        rules: [
          ...(o.impersonable.users.length ? [{ apiGroups: [''], resources: ['users'], verbs: ['impersonate'], resourceNames: [...o.impersonable.users] }] : []),
          ...(o.impersonable.groups.length ? [{ apiGroups: [''], resources: ['groups'], verbs: ['impersonate'], resourceNames: [...o.impersonable.groups] }] : []),
          { apiGroups: ['authentication.k8s.io'], resources: EXTRA_KEYS.map((k) => `userextras/${k}`), verbs: ['impersonate'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: sa },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: sa },
        subjects: [{ kind: 'ServiceAccount', name: sa, namespace: 'portcullis-system' }],
      },
    ];
    const adm = adminOf(c);
    must(adm(['apply', '-f', '-'], manifestsYaml(manifests)), 'apply proxy RBAC');
    if (o.rbac) must(adm(['apply', '-f', '-'], o.rbac), 'apply test RBAC');
    const token = must(adm(['create', 'token', sa, '-n', 'portcullis-system', '--duration', '2h']), 'create token').stdout.trim();
    writeFileSync(file, token);
    return token;
  };
  const tokenFile = join(dir, 'upstream.token');
  let proxyToken: string;
  if (o.compiled) {
    if (o.rbac) must(admin(['apply', '-f', '-'], o.rbac), 'apply compiled RBAC');
    proxyToken = must(admin(['create', 'token', o.compiled.serviceAccount, '-n', 'portcullis-system', '--duration', '2h']), 'create token').stdout.trim();
    writeFileSync(tokenFile, proxyToken);
  } else {
    proxyToken = setupSa(cluster, tokenFile);
  }
  const second = o.second ? fleet.cluster(o.second.name) : undefined;
  if (second) setupSa(second, join(dir, `upstream-${second.name}.token`));

  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { keyIdOf } = await import('../../core/bundle.ts');
  const keyId = keyIdOf(publicKey);
  writeFileSync(join(dir, 'trusted.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  const bundleDir = join(dir, 'bundle');
  if (o.ruleSet) writeBundle(bundleDir, o.ruleSet, privateKey, keyId, { revision: 1 });
  else mkdirSync(bundleDir);
  if (o.second?.ruleSet) writeBundle(join(dir, `bundle-${o.second.name}`), o.second.ruleSet, privateKey, keyId, { revision: 1 });

  const proxyCa = createLocalCa('portcullis proxy test CA');
  const serving = proxyCa.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
  const oidc = await startOidcProvider({ ...(o.people ? { people: o.people } : {}), ...(o.deviceCodeTtlSeconds !== undefined ? { deviceCodeTtlSeconds: o.deviceCodeTtlSeconds } : {}) });
  if (o.sessions) writeFileSync(join(dir, 'session.key'), randomBytes(32));
  const auditFile = join(dir, 'audit.log');
  // An agent's identity: the registration key the proxy trusts, the agent key, its one-time credential.
  const agentFiles = {
    key: join(dir, 'agent.key'),
    registration: join(dir, 'agent.registration'),
    registrationKey: join(dir, 'registration.key'),
    registrationKeyId: '',
    tokenFile,
  };
  if (o.agent) {
    const reg = generateKeyPairSync('ed25519');
    writeFileSync(agentFiles.registrationKey, reg.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(dir, 'registration.pub.pem'), reg.publicKey.export({ type: 'spki', format: 'pem' }));
    agentFiles.registrationKeyId = keyIdOf(reg.publicKey);
    const agentKey = generateKeyPairSync('ed25519');
    writeFileSync(agentFiles.key, agentKey.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const { keyThumbprint, signRegistration } = await import('../../agent/protocol.ts');
    writeFileSync(agentFiles.registration, await signRegistration(reg.privateKey, agentFiles.registrationKeyId, clusterName, await keyThumbprint(agentKey.publicKey), 600_000));
  }
  const cfg = {
    listen: { host: '127.0.0.1', port: 0 },
    metrics: { listen: { host: '127.0.0.1', port: 0 } },
    tls: { certFile: serving.certFile, keyFile: serving.keyFile },
    clusters: [
      {
        name: clusterName,
        ...(o.agent ? { agent: true } : { upstream: { url: cluster.server, caFile: cluster.caFile, tokenFile } }),
        bundle: { directory: o.compiled?.bundleDir ?? 'bundle', pollIntervalMs: 1000 },
        trustedKeyFiles: o.compiled ? [...o.compiled.trustedKeyFiles] : ['trusted.pub.pem'],
      },
      ...(second
        ? [
            {
              name: second.name,
              upstream: { url: second.server, caFile: second.caFile, tokenFile: `upstream-${second.name}.token` },
              bundle: { directory: `bundle-${second.name}`, pollIntervalMs: 1000 },
              trustedKeyFiles: ['trusted.pub.pem'],
            },
          ]
        : []),
    ],
    authn: {
      // A 2 s leeway (default 30 s), so tests of expiry need not wait for it.
      issuers: [{ issuer: oidc.issuer, audiences: o.sessions ? ['portcullis', LOGIN_CLIENT_ID] : ['portcullis'], usernamePrefix: 'oidc:', groupsClaim: 'groups', caFile: oidc.caFile, clockToleranceSeconds: 2 }],
      ...(o.clientCa ? { clientCertificates: { caFile: o.clientCa.caFile, usernamePrefix: 'x509:', groupsPrefix: 'x509:' } } : {}),
    },
    audit: { file: { path: 'audit.log' }, flushIntervalMs: 50 },
    ...(o.sessions
      ? {
          sessions: {
            store: { url: o.sessions.storeUrl },
            keyFile: 'session.key',
            login: { issuer: oidc.issuer, clientId: LOGIN_CLIENT_ID },
            caFile: proxyCa.caFile,
            ...(o.sessions.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.sessions.idleTimeoutMs } : {}),
            ...(o.sessions.maxLifetimeMs !== undefined ? { maxLifetimeMs: o.sessions.maxLifetimeMs } : {}),
            ...(o.sessions.touchIntervalMs !== undefined ? { touchIntervalMs: o.sessions.touchIntervalMs } : {}),
            ...(o.sessions.storeGraceMs !== undefined ? { storeGraceMs: o.sessions.storeGraceMs } : {}),
          },
        }
      : {}),
    ...(o.agent ? { agents: { registrationKeyFiles: ['registration.pub.pem'], ...(o.agent.agentStore === 'sessions' ? {} : { stateDir: 'agents' }) } } : {}),
    // The terminals' base directory must be reachable by the sandbox uid: not under `dir` (0700).
    ...(o.console ? { console: { terminal: { kubectl: kubectlBin, dir: join(tmpdir(), `portcullis-console-${suffix}`), ...(o.console.terminalIdleTimeoutMs !== undefined ? { idleTimeoutMs: o.console.terminalIdleTimeoutMs } : {}) } } } : {}),
    ...(o.configExtra ?? {}),
  };
  writeFileSync(join(dir, 'proxy.yaml'), stringify(cfg));
  const config = parseConfig(readFileSync(join(dir, 'proxy.yaml'), 'utf8'), dir, 'proxy.yaml');
  const logLines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logLines.push(s) });
  const proxy = new PortcullisProxy({ config, authenticator: createAuthenticator(config.authn as never), logger });
  const { port, metricsPort } = await proxy.start();
  const extras: PortcullisProxy[] = [];
  const agents: AgentProcess[] = [];

  const harness: Harness = {
    fleet,
    cluster,
    kubectlBin,
    oidc,
    proxy,
    port,
    dir,
    bundleDir,
    auditFile,
    config,
    signingKey: privateKey,
    keyId,
    proxyCa,
    proxyToken,
    token: (sub, groups, ttlSeconds) => oidc.token({ sub, ...(groups ? { groups: [...groups] } : {}), ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) }),
    kubeconfig(token, c = clusterName) {
      const file = join(dir, `kc-${randomBytes(4).toString('hex')}.yaml`);
      writeFileSync(
        file,
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: c, cluster: { server: `https://127.0.0.1:${port}/clusters/${c}`, 'certificate-authority': proxyCa.caFile } }],
          users: [{ name: 'u', user: typeof token === 'string' ? { token } : { 'client-certificate': token.certFile, 'client-key': token.keyFile } }],
          contexts: [{ name: c, context: { cluster: c, user: 'u' } }],
          'current-context': c,
        }),
      );
      return file;
    },
    spawnKubectl(kubeconfig, args, env = {}) {
      return liveKubectl(kubectlBin, ['--kubeconfig', kubeconfig, ...args], { ...process.env, HOME: dir, ...env });
    },
    kubectl(kubeconfig, args, env = {}, input) {
      return collect(spawn(kubectlBin, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, HOME: dir, ...env } }), input);
    },
    kubectlOnTty(kubeconfig, args, env = {}) {
      // script(1) runs kubectl on a pseudo-terminal, so `-t` is kept and the session is a real TTY one.
      const cmd = [kubectlBin, '--kubeconfig', kubeconfig, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
      return collect(spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, HOME: dir, ...env } }));
    },
    admin,
    configMapAccount(configMap, suffix, verbs) {
      const sa = `${configMap}-${suffix}`;
      const ns = 'portcullis-system';
      const account = [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: ns } },
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: sa, namespace: ns }, rules: [{ verbs, apiGroups: [''], resources: ['configmaps'], resourceNames: [configMap] }] },
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: sa, namespace: ns }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }] },
      ];
      must(admin(['apply', '-f', '-'], manifestsYaml(account)), `apply ${sa}`);
      const file = join(dir, `cm-${sa}.token`);
      writeFileSync(file, must(admin(['create', 'token', sa, '-n', ns]), `token for ${sa}`).stdout.trim());
      return file;
    },
    async publish(rs, revision) {
      writeBundle(rs.cluster === clusterName ? bundleDir : join(dir, `bundle-${rs.cluster}`), rs, privateKey, keyId, { revision });
      await proxy.reload(rs.cluster);
    },
    bundleDirOf: (c) => (c === clusterName ? bundleDir : join(dir, `bundle-${c}`)),
    auditEvents() {
      proxy.audit.flush();
      if (!existsSync(auditFile)) return [];
      return readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as AuditEvent);
    },
    async auditEventsWhen(ready, ms = 3000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const events = harness.auditEvents();
        if (ready(events) || Date.now() > deadline) return events;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    logs: () => logLines.map((l) => JSON.parse(l) as Record<string, unknown>),
    request(method, path, headers = [], body, p = port) {
      return new Promise((resolve, reject) => {
        const raw: string[] = [];
        for (const [k, v] of headers) raw.push(k, v);
        const req = httpsRequest({ host: '127.0.0.1', port: p, method, path, headers: raw as unknown as Record<string, string>, ca: proxyCa.caPem, agent: false });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
        req.end(body);
      });
    },
    scrape(path = '/metrics', p = metricsPort) {
      return new Promise((resolve, reject) => {
        const rq = httpGet({ host: '127.0.0.1', port: p, path }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        rq.on('error', reject);
      });
    },
    async extraProxy(mutate, authenticator) {
      const lines: string[] = [];
      const lg = pino({ level: 'debug' }, { write: (x: string) => void lines.push(x) });
      const c = mutate(config);
      const px = new PortcullisProxy({ config: c, authenticator: authenticator ?? createAuthenticator(c.authn as never), logger: lg });
      extras.push(px);
      const { port: p, metricsPort: mp } = await px.start();
      return { proxy: px, port: p, ...(mp !== undefined ? { metricsPort: mp } : {}), logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
    },
    agentFiles,
    startAgent(a = {}) {
      const args = ['bin/portcullis.js', 'agent', '--cluster', a.cluster ?? clusterName, '--key', a.key ?? agentFiles.key, '--registration', a.registration ?? agentFiles.registration, '--proxy-ca', proxyCa.caFile];
      for (const p of a.ports ?? [port]) args.push('--proxy', `https://127.0.0.1:${p}`);
      args.push('--apiserver', cluster.server, '--apiserver-ca', cluster.caFile, '--token-file', tokenFile);
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let text = '';
      const waiters = new Set<() => void>();
      child.stderr.on('data', (c: Buffer) => {
        text += c.toString();
        for (const w of waiters) w();
      });
      const logs = (): Record<string, unknown>[] =>
        text
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
      const ap: AgentProcess = {
        logs,
        raw: () => text,
        kill: (signal = 'SIGKILL') => void child.kill(signal),
        exited,
        opened: (n = 1, ms = 20_000) =>
          new Promise<void>((resolve, reject) => {
            const check = (): void => {
              if (logs().filter((l) => l['msg'] === 'tunnel open').length >= n) {
                waiters.delete(check);
                clearTimeout(t);
                resolve();
              }
            };
            const t = setTimeout(() => {
              waiters.delete(check);
              reject(new Error(`the agent opened fewer than ${n} tunnels in ${ms} ms: ${text}`));
            }, ms);
            waiters.add(check);
            check();
          }),
      };
      agents.push(ap);
      return ap;
    },
    async stop() {
      for (const a of agents) a.kill();
      for (const x of extras) await x.stop();
      await proxy.stop();
      await oidc.stop();
      proxyCa.remove();
      if (!o.compiled) admin(['delete', 'clusterrole,clusterrolebinding', sa, '--ignore-not-found']);
      if (second) adminOf(second)(['delete', 'clusterrole,clusterrolebinding', sa, '--ignore-not-found']);
      rmSync(dir, { recursive: true, force: true });
      if (o.console) rmSync(join(tmpdir(), `portcullis-console-${suffix}`), { recursive: true, force: true });
    },
  };
  return harness;
}
