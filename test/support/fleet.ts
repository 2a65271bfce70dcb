// The shared sandbox fleet for end-to-end tests: real etcd, kube-apiserver and
// kubectl (v1.34.4) plus a fake kubelet per cluster. `test/run.js` starts ONE
// fleet for the whole run and exports PORTCULLIS_TEST_FLEET (its fleet.json);
// a test file run by hand starts its own and stops it when the process exits.
import { runSandboxPod } from '../../sandbox/pods.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downFleetSync, readFleet, upFleet, type SandboxFleet } from '../../sandbox/index.ts';
import type { ClusterInfo } from '../../sandbox/cluster.ts';

/** One cluster of the test fleet: the sandbox's own description of it, without its process bookkeeping. */
export type TestCluster = Omit<ClusterInfo, 'ports' | 'processes'>;

/** Result of a kubectl run. */
export interface KubectlResult {
  /** Exit code (-1 when killed by the timeout or a signal). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link TestFleet.kubectl}. */
export interface KubectlOptions {
  /** @default the first cluster's admin kubeconfig */
  readonly kubeconfig?: string;
  /** Extra environment (e.g. KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false). */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to stdin, which is then closed. @default stdin closed at once */
  readonly input?: string | Buffer;
  /** Kill kubectl after this long. @default 30000 */
  readonly timeoutMs?: number;
}

/** Options of {@link TestFleet.createPod}. */
export interface CreatePodOptions {
  /** @default `pod-<random>` */
  readonly name?: string;
  /** @default ['main'] */
  readonly containers?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
}

/** The shared fleet. */
export interface TestFleet {
  readonly clusters: readonly TestCluster[];
  readonly bin: { readonly kubectl: string; readonly kubeApiserver: string; readonly etcd: string };
  /** The fleet.json path. */
  readonly file: string;
  /** A cluster by name; throws when there is none. */
  cluster(name: string): TestCluster;
  /** Runs the real kubectl. Never throws for a non-zero exit; check `code`. */
  kubectl(args: readonly string[], options?: KubectlOptions): Promise<KubectlResult>;
  /**
   * Creates (as admin) a namespace if needed and a pod bound to the cluster's
   * fake kubelet, and waits until it is Running. Returns the pod name.
   * In its containers, exec knows: echo ARGS, echo-err ARGS, cat (stdin to
   * stdout), hostname, env, sleep SECONDS, false, exit CODE; attach greets and
   * echoes stdin; a forwarded port 7 echoes bytes, any other port answers one
   * HTTP request with `hello from NS/POD port P`; logs are three fixed lines.
   */
  createPod(cluster: TestCluster, namespace: string, options?: CreatePodOptions): Promise<string>;
}

function runKubectl(kubectl: string, defaultKubeconfig: string, args: readonly string[], o: KubectlOptions = {}): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: o.kubeconfig ?? defaultKubeconfig, ...(o.env ?? {}) };
    const child = spawn(kubectl, [...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    if (o.input !== undefined) child.stdin.end(o.input);
    else child.stdin.end();
  });
}

function toTestFleet(fleet: SandboxFleet, file: string): TestFleet {
  const clusters: TestCluster[] = fleet.clusters.map((c) => ({
    name: c.name,
    server: c.server,
    caFile: c.caFile,
    caPem: c.caPem,
    adminKubeconfig: c.adminKubeconfig,
    adminCertFile: c.adminCertFile,
    adminKeyFile: c.adminKeyFile,
    tokens: c.tokens,
    userKubeconfigs: c.userKubeconfigs,
    dir: c.dir,
    nodeName: c.nodeName,
    serviceAccountIssuer: c.serviceAccountIssuer,
  }));
  const first = clusters[0];
  if (!first) throw new Error(`fleet ${file} has no clusters`);
  const kubectl = (args: readonly string[], o?: KubectlOptions) => runKubectl(fleet.bin.kubectl, first.adminKubeconfig, args, o);
  return {
    clusters,
    bin: { kubectl: fleet.bin.kubectl, kubeApiserver: fleet.bin.kubeApiserver, etcd: fleet.bin.etcd },
    file,
    cluster(name) {
      const c = clusters.find((x) => x.name === name);
      if (!c) throw new Error(`no cluster ${name} in the test fleet (have ${clusters.map((x) => x.name).join(', ')})`);
      return c;
    },
    kubectl,
    async createPod(cluster, namespace, options = {}) {
      return runSandboxPod({
        kubectl: fleet.bin.kubectl,
        cluster,
        namespace,
        name: options.name ?? `pod-${Math.random().toString(36).slice(2, 8)}`,
        ...(options.containers ? { containers: options.containers } : {}),
        ...(options.labels ? { labels: options.labels } : {}),
      });
    },
  };
}

let shared: Promise<TestFleet> | undefined;

/**
 * The shared test fleet (3 clusters: dev, staging, prod-eu). Loads the fleet
 * test/run.js started (PORTCULLIS_TEST_FLEET); otherwise starts one for this
 * process and stops it on exit, SIGINT or SIGTERM.
 */
export function getTestFleet(): Promise<TestFleet> {
  shared ??= (async () => {
    const file = process.env['PORTCULLIS_TEST_FLEET'];
    if (file) return toTestFleet(readFleet(file), file);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-fleet-'));
    const cleanup = () => downFleetSync(dir);
    process.once('exit', cleanup);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        cleanup();
        process.exit(130);
      });
    }
    const fleet = await upFleet({ dir, clusters: 3, ownerPid: process.pid, log: (m) => process.stderr.write(`[test fleet] ${m}\n`) });
    return toTestFleet(fleet, join(dir, 'fleet.json'));
  })();
  return shared;
}
