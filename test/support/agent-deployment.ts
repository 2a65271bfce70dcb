/**
 * Plays the kubelet for the agent's Deployment on a sandbox cluster, which has
 * no container runtime: reads what `kubectl apply` created (the Deployment, the
 * Secret it mounts, its ServiceAccount), and runs `spec.replicas` agent
 * processes with the container's own arguments, the Secret's files where the
 * pod would mount them, and a token of the pod's ServiceAccount from the
 * TokenRequest API, as the kubelet would project it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

interface Deployment {
  spec: {
    replicas?: number;
    template: {
      spec: {
        serviceAccountName: string;
        containers: { args: string[]; volumeMounts?: { name: string; mountPath: string }[] }[];
        volumes?: { name: string; secret?: { secretName: string } }[];
      };
    };
  };
}

/** The agent pods' processes. */
export interface AgentPods {
  /** Each replica's stderr so far. */
  logs(): string[];
  /** Resolves once `n` tunnels are open in all (a log line each). */
  opened(n: number, ms?: number): Promise<void>;
  stop(): void;
}

/** Runs the replicas of Deployment `namespace/name` on cluster (kubeconfig of its admin, server and CA). */
export function runAgentDeployment(o: { kubectl: string; adminKubeconfig: string; server: string; caFile: string; namespace: string; name: string }): AgentPods {
  const k = (args: string[]): string => execFileSync(o.kubectl, ['--kubeconfig', o.adminKubeconfig, '-n', o.namespace, ...args], { encoding: 'utf8', timeout: 30_000 });
  const d = JSON.parse(k(['get', 'deployment', o.name, '-o', 'json'])) as Deployment;
  const pod = d.spec.template.spec;
  const container = pod.containers[0];
  if (!container) throw new Error('the Deployment has no container');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-agent-pod-'));
  let args = [...container.args];
  for (const m of container.volumeMounts ?? []) {
    const secretName = pod.volumes?.find((v) => v.name === m.name)?.secret?.secretName;
    if (!secretName) continue;
    const secret = JSON.parse(k(['get', 'secret', secretName, '-o', 'json'])) as { data: Record<string, string> };
    const at = join(dir, m.name);
    mkdirSync(at, { recursive: true, mode: 0o700 });
    for (const [f, v] of Object.entries(secret.data)) writeFileSync(join(at, f), Buffer.from(v, 'base64'), { mode: 0o400 });
    args = args.map((a) => (a.startsWith(`${m.mountPath}/`) ? join(at, a.slice(m.mountPath.length + 1)) : a));
  }
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, k(['create', 'token', pod.serviceAccountName, '--duration', '1h']).trim(), { mode: 0o400 });
  // In a pod: KUBERNETES_SERVICE_HOST and the mounted ServiceAccount; here, the same as flags.
  args.push('--apiserver', o.server, '--apiserver-ca', o.caFile, '--token-file', tokenFile);
  const texts: string[] = [];
  const children = Array.from({ length: d.spec.replicas ?? 1 }, (_, i) => {
    texts[i] = '';
    const c = spawn(process.execPath, [join(repoRoot, 'bin', 'portcullis.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr.on('data', (b: Buffer) => (texts[i] += b.toString()));
    return c;
  });
  const count = (): number => texts.join('').split('\n').filter((l) => l.includes('"msg":"tunnel open"')).length;
  return {
    logs: () => [...texts],
    async opened(n, ms = 30_000) {
      const deadline = Date.now() + ms;
      while (count() < n) {
        if (Date.now() > deadline) throw new Error(`${count()} of ${n} tunnels open after ${ms} ms:\n${texts.join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: () => {
      for (const c of children) c.kill('SIGKILL');
    },
  };
}
