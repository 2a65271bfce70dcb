import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ClusterInfo } from './cluster.ts';

const run = promisify(execFile);

/** What pod to run on a sandbox cluster's fake kubelet. */
export interface SandboxPodOptions {
  readonly kubectl: string;
  readonly cluster: Pick<ClusterInfo, 'adminKubeconfig' | 'nodeName'>;
  readonly namespace: string;
  readonly name: string;
  /** @default ['main'] */
  readonly containers?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * Creates (as admin) the namespace if needed and a pod bound to the cluster's
 * fake kubelet, and waits until it is Running. In its containers, exec knows
 * `echo ARGS`, `echo-err ARGS`, `cat`, `hostname`, `env`, `sleep SECONDS`,
 * `false`, `exit CODE`; attach greets and echoes stdin; port 7 echoes bytes,
 * any other port answers one HTTP request; logs are three fixed lines.
 */
export async function runSandboxPod(o: SandboxPodOptions): Promise<string> {
  const k = (args: string[], input?: string) =>
    new Promise<{ code: number; stderr: string }>((done) => {
      const child = execFile(o.kubectl, ['--kubeconfig', o.cluster.adminKubeconfig, ...args], { timeout: 40_000 }, (err, _out, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  const ns = await k(['create', 'namespace', o.namespace]);
  if (ns.code !== 0 && !ns.stderr.includes('AlreadyExists')) throw new Error(`create namespace ${o.namespace}: ${ns.stderr}`);
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, labels: { app: 'sandbox', ...(o.labels ?? {}) } },
    spec: {
      nodeName: o.cluster.nodeName,
      automountServiceAccountToken: false,
      containers: (o.containers ?? ['main']).map((c) => ({ name: c, image: 'portcullis.dev/sandbox:fake' })),
    },
  };
  // The ServiceAccount admission plugin needs the namespace's default
  // ServiceAccount, which the sandbox's controller creates moments after the
  // namespace: retry briefly.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await k(['apply', '-f', '-'], JSON.stringify(pod));
    if (r.code === 0) break;
    if (Date.now() > deadline || !/serviceaccount/i.test(r.stderr)) throw new Error(`create pod ${o.namespace}/${o.name}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  await run(o.kubectl, ['--kubeconfig', o.cluster.adminKubeconfig, 'wait', '-n', o.namespace, `pod/${o.name}`, '--for=jsonpath={.status.phase}=Running', '--timeout=30s'], { timeout: 40_000 });
  return o.name;
}
