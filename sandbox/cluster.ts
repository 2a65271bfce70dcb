import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { SandboxBinaries } from './build.ts';
import { SandboxError } from './errors.ts';
import { freePorts, isOurs, startProcess, stopProcesses, tail, type RecordedProcess } from './processes.ts';

/** A static-token test user of every sandbox cluster (`--token-auth-file`). */
export interface SandboxUser {
  readonly name: string;
  readonly groups: readonly string[];
}

/** The users every sandbox cluster knows by static token. None has any RBAC grant until a policy gives one. */
export const SANDBOX_USERS: readonly SandboxUser[] = [
  { name: 'alice', groups: ['developers'] },
  { name: 'bob', groups: ['operators'] },
  { name: 'carol', groups: ['auditors'] },
  { name: 'mallory', groups: [] },
];

/** Everything a client needs to reach one sandbox cluster; one entry of fleet.json. */
export interface ClusterInfo {
  readonly name: string;
  /** https://127.0.0.1:PORT */
  readonly server: string;
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  /** Kubeconfig with the admin client certificate (group system:masters). */
  readonly adminKubeconfig: string;
  readonly adminCertFile: string;
  readonly adminKeyFile: string;
  /** Static bearer tokens by user name (see SANDBOX_USERS). */
  readonly tokens: Readonly<Record<string, string>>;
  /** One kubeconfig per static-token user. */
  readonly userKubeconfigs: Readonly<Record<string, string>>;
  /** Node name of the fake kubelet; pods with this spec.nodeName run there. */
  readonly nodeName: string;
  /** Service-account token issuer (`--service-account-issuer`). */
  readonly serviceAccountIssuer: string;
  readonly ports: Readonly<{ apiserver: number; etcd: number; etcdPeer: number; kubelet: number }>;
  readonly processes: readonly RecordedProcess[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Probe {
  readonly status: number;
  readonly body: string;
}

function get(url: string, tls?: { ca: string; cert: string; key: string }): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', timeout: 5000, ...(tls ?? {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(
  what: string,
  proc: RecordedProcess | undefined,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr = '';
  while (Date.now() < deadline) {
    if (proc && !isOurs(proc)) {
      throw new SandboxError('SANDBOX_START', `${what}: ${proc.role} (pid ${proc.pid}) exited. Last lines of ${proc.log}:\n${tail(proc.log)}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    await sleep(250);
  }
  throw new SandboxError(
    'SANDBOX_START',
    `${what}: not ready after ${timeoutMs / 1000}s (${lastErr})${proc ? `. Last lines of ${proc.log}:\n${tail(proc.log)}` : ''}`,
  );
}

function kubeconfig(name: string, server: string, caPem: string, user: Record<string, string>): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: `${name}-user`, user }],
    contexts: [{ name, context: { cluster: name, user: `${name}-user` } }],
    'current-context': name,
    preferences: {},
  });
}

/** Options for {@link startCluster}. */
export interface StartClusterOptions {
  readonly name: string;
  /** The cluster's own directory (PKI, etcd data, logs, kubeconfigs). */
  readonly dir: string;
  readonly bin: SandboxBinaries;
  /** @default 180000 */
  readonly readyTimeoutMs?: number;
}

/**
 * Starts one sandbox cluster: etcd, kube-apiserver (TLS from a fresh CA,
 * Node,RBAC authorization, service-account issuer, static tokens), the real
 * namespace/serviceaccount/root-CA controllers and a fake kubelet, on free
 * loopback ports. Resolves once /readyz is ok, the node is registered and the
 * default ServiceAccount exists. On failure the started processes are stopped.
 */
export async function startCluster(opts: StartClusterOptions): Promise<ClusterInfo> {
  const { name, dir, bin } = opts;
  const timeout = opts.readyTimeoutMs ?? 180_000;
  const pki = join(dir, 'pki');
  const logs = join(dir, 'logs');
  for (const d of [dir, pki, logs, join(dir, 'etcd-data'), join(dir, 'apiserver-certs')]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const nodeName = `${name}-node`;
  const gen = spawnSync(bin.agent, ['pki', '--dir', pki, '--node-name', nodeName, '--cluster', name], { encoding: 'utf8' });
  if (gen.status !== 0) throw new SandboxError('SANDBOX_START', `generating PKI for ${name} failed: ${gen.stderr || gen.error?.message}`);
  const f = (n: string) => join(pki, n);
  const caPem = readFileSync(f('ca.crt'), 'utf8');

  const tokens: Record<string, string> = {};
  const csv: string[] = [];
  for (const u of SANDBOX_USERS) {
    const t = randomBytes(24).toString('base64url');
    tokens[u.name] = t;
    csv.push(`${t},${u.name},${u.name}-uid${u.groups.length ? `,"${u.groups.join(',')}"` : ''}`);
  }
  const tokenFile = join(pki, 'tokens.csv');
  writeFileSync(tokenFile, `${csv.join('\n')}\n`, { mode: 0o600 });

  const [apiPort, etcdPort, etcdPeer, kubeletPort] = (await freePorts(4)) as [number, number, number, number];
  const server = `https://127.0.0.1:${apiPort}`;
  const issuer = server;
  const started: RecordedProcess[] = [];
  try {
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = startProcess(
      dir,
      'etcd',
      bin.etcd,
      [
        `--name=${name}`,
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=${name}=${peerUrl}`,
        '--log-level=warn',
        // Throwaway test data: skip fsync, the slowest part of etcd on CI disks.
        '--unsafe-no-fsync',
        '--quota-backend-bytes=1073741824',
      ],
      join(logs, 'etcd.log'),
    );
    started.push(etcd);
    await waitFor(`etcd of ${name}`, etcd, 30_000, async () => {
      const r = await get(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"true"');
    });

    const apiserver = startProcess(
      dir,
      'kube-apiserver',
      bin.kubeApiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${f('apiserver.crt')}`,
        `--tls-private-key-file=${f('apiserver.key')}`,
        `--client-ca-file=${f('ca.crt')}`,
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        `--service-account-issuer=${issuer}`,
        `--service-account-key-file=${f('sa.pub')}`,
        `--service-account-signing-key-file=${f('sa.key')}`,
        `--token-auth-file=${tokenFile}`,
        `--kubelet-client-certificate=${f('apiserver-kubelet-client.crt')}`,
        `--kubelet-client-key=${f('apiserver-kubelet-client.key')}`,
        `--kubelet-certificate-authority=${f('ca.crt')}`,
        '--kubelet-preferred-address-types=InternalIP',
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=false',
        '--profiling=false',
      ],
      join(logs, 'kube-apiserver.log'),
    );
    started.push(apiserver);
    const adminTls = { ca: caPem, cert: readFileSync(f('admin.crt'), 'utf8'), key: readFileSync(f('admin.key'), 'utf8') };
    await waitFor(`kube-apiserver of ${name}`, apiserver, timeout, async () => (await get(`${server}/readyz`, adminTls)).status === 200);

    const certUser = (n: string) => ({
      'client-certificate-data': Buffer.from(readFileSync(f(`${n}.crt`))).toString('base64'),
      'client-key-data': Buffer.from(readFileSync(f(`${n}.key`))).toString('base64'),
    });
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(adminKubeconfig, kubeconfig(name, server, caPem, certUser('admin')), { mode: 0o600 });
    const nodeKubeconfig = join(dir, 'node.kubeconfig');
    writeFileSync(nodeKubeconfig, kubeconfig(name, server, caPem, certUser('node')), { mode: 0o600 });
    const controllersKubeconfig = join(dir, 'controllers.kubeconfig');
    writeFileSync(controllersKubeconfig, kubeconfig(name, server, caPem, certUser('controllers')), { mode: 0o600 });
    const userKubeconfigs: Record<string, string> = {};
    for (const u of SANDBOX_USERS) {
      const p = join(dir, `${u.name}.kubeconfig`);
      writeFileSync(p, kubeconfig(name, server, caPem, { token: tokens[u.name] ?? '' }), { mode: 0o600 });
      userKubeconfigs[u.name] = p;
    }

    const controllers = startProcess(
      dir,
      'controllers',
      bin.agent,
      ['controllers', `--kubeconfig=${controllersKubeconfig}`, `--root-ca=${f('ca.crt')}`],
      join(logs, 'controllers.log'),
    );
    started.push(controllers);
    const kubelet = startProcess(
      dir,
      'fake-kubelet',
      bin.agent,
      [
        'kubelet',
        `--kubeconfig=${nodeKubeconfig}`,
        `--node-name=${nodeName}`,
        `--port=${kubeletPort}`,
        `--tls-cert=${f('kubelet.crt')}`,
        `--tls-key=${f('kubelet.key')}`,
        `--client-ca=${f('ca.crt')}`,
      ],
      join(logs, 'fake-kubelet.log'),
    );
    started.push(kubelet);
    await waitFor(`node ${nodeName} of ${name}`, kubelet, 60_000, async () => {
      const r = await get(`${server}/api/v1/nodes/${nodeName}`, adminTls);
      return r.status === 200 && r.body.includes(`"Port":${kubeletPort}`);
    });
    await waitFor(`default ServiceAccount of ${name}`, controllers, 60_000, async () => {
      const r = await get(`${server}/api/v1/namespaces/default/serviceaccounts/default`, adminTls);
      return r.status === 200;
    });
    await waitFor(`aggregated ClusterRole view of ${name}`, controllers, 60_000, async () => {
      const r = await get(`${server}/apis/rbac.authorization.k8s.io/v1/clusterroles/view`, adminTls);
      if (r.status !== 200) return false;
      const rules = (JSON.parse(r.body) as { rules?: unknown[] }).rules;
      return Array.isArray(rules) && rules.length > 0;
    });
    return {
      name,
      server,
      dir,
      caFile: f('ca.crt'),
      caPem,
      adminKubeconfig,
      adminCertFile: f('admin.crt'),
      adminKeyFile: f('admin.key'),
      tokens,
      userKubeconfigs,
      nodeName,
      serviceAccountIssuer: issuer,
      ports: { apiserver: apiPort, etcd: etcdPort, etcdPeer, kubelet: kubeletPort },
      processes: started,
    };
  } catch (err) {
    await stopProcesses([...started].reverse());
    throw err;
  }
}

/** Health of one cluster, for `sandbox status`. */
export interface ClusterHealth {
  readonly name: string;
  readonly server: string;
  readonly ready: boolean;
  readonly processes: ReadonlyArray<{ role: string; pid: number; alive: boolean }>;
}

/** Checks a running cluster's processes and /readyz. */
export async function clusterHealth(c: ClusterInfo): Promise<ClusterHealth> {
  let ready = false;
  try {
    const tls = { ca: c.caPem, cert: readFileSync(c.adminCertFile, 'utf8'), key: readFileSync(c.adminKeyFile, 'utf8') };
    ready = (await get(`${c.server}/readyz`, tls)).status === 200;
  } catch {
    ready = false;
  }
  return {
    name: c.name,
    server: c.server,
    ready,
    processes: c.processes.map((p) => ({ role: p.role, pid: p.pid, alive: isOurs(p) })),
  };
}
