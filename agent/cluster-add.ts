import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { ClientError } from '../client/client-error.ts';
import { keyIdOf } from '../core/bundle.ts';
import { parseDuration } from '../core/duration.ts';
import { PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT } from '../core/names.ts';
import { compileFleet } from '../compiler/compile.ts';
import { loadPolicy, readCatalogs } from '../compiler/load.ts';
import { formatProblem } from '../compiler/problem.ts';
import { keyThumbprint, signRegistration } from './protocol.ts';

/** What `portcullis cluster add` is asked. */
export interface AddClusterOptions {
  readonly name: string;
  /** `k=v,k=v` */
  readonly labels: string;
  readonly proxies: readonly string[];
  readonly registrationKeyFile: string;
  readonly proxyCaFile?: string;
  readonly policiesDir: string;
  /** The generated tree, for the catalog the first compile needs. @default generated */
  readonly generatedDir?: string;
  readonly out: string;
  readonly ttl: string;
  readonly image: string;
  readonly replicas: number;
  readonly now?: number;
}

/** The agent's Deployment, Secret and the labels they carry. */
export const AGENT_NAME = 'portcullis-agent';
/** Where the agent's Secret is mounted in its pods. */
const SECRET_MOUNT = '/etc/portcullis-agent';

/**
 * `portcullis cluster add NAME`: adds `new Cluster(fleet, NAME, { agent: true, labels })` to the
 * policy's clusters.ts (for a pull request; the cluster then inherits every grant whose labels
 * select it), gives it an API catalog to compile against until `discover` refreshes it, and
 * renders the bootstrap manifest: the cluster's compiled RBAC (the impersonate-only ServiceAccount
 * among it), the agent's Secret (its key, the one-time registration credential, the proxies' CA)
 * and its Deployment. A policy that does not compile with the cluster added is put back as it
 * was, and nothing is written.
 */
export async function addCluster(o: AddClusterOptions): Promise<{ policyFile: string; manifest: string; expiresAt: string }> {
  const now = o.now ?? Date.now();
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(o.name)) throw new ClientError('BAD_INPUT', `cluster name '${o.name}' is not a DNS-1123 label`);
  const labels = parseLabels(o.labels);
  const ttl = parseDuration(o.ttl);
  if (ttl === undefined || ttl <= 0) throw new ClientError('BAD_INPUT', `--ttl '${o.ttl}' is not a duration (e.g. 24h)`);
  if (!Number.isInteger(o.replicas) || o.replicas < 1) throw new ClientError('BAD_INPUT', `--replicas must be a positive integer, not ${o.replicas}`);
  for (const p of o.proxies) if (!/^https:\/\/[^/]+\/?$/.test(p)) throw new ClientError('BAD_INPUT', `--proxy ${p}: an https:// URL with no path`);
  const registrationKey = createPrivateKey(readFileSync(o.registrationKeyFile));
  if (registrationKey.asymmetricKeyType !== 'ed25519') throw new ClientError('BAD_INPUT', `${o.registrationKeyFile}: the registration key must be Ed25519`);

  const policyFile = join(o.policiesDir, 'clusters.ts');
  const before = readFileSync(policyFile, 'utf8');
  if (before.includes(`new Cluster(fleet, '${o.name}'`)) throw new ClientError('BAD_INPUT', `${policyFile} already has cluster ${o.name}`);
  const end = before.lastIndexOf('\n}');
  if (end < 0) throw new ClientError('BAD_INPUT', `${policyFile}: no function body to add the cluster to`);
  const entry = [`  new Cluster(fleet, '${o.name}', {`, '    agent: true,', `    labels: { ${Object.entries(labels).map(([k, v]) => `${jsKey(k)}: ${JSON.stringify(v).replaceAll('"', "'")}`).join(', ')} },`, '  });'].join('\n');
  const after = `${before.slice(0, end)}\n${entry}${before.slice(end)}`;

  const generated = o.generatedDir ?? 'generated';
  const catalog = join(generated, 'catalog', `${o.name}.json`);
  const addedCatalog = !existsSync(catalog);
  writeFileSync(policyFile, after);
  try {
    if (addedCatalog) {
      // Until the agent is up and `discover` reads the cluster's own API through it.
      const others = existsSync(dirname(catalog)) ? readdirSync(dirname(catalog)).filter((f) => f.endsWith('.json')).sort() : [];
      const from = others[0];
      if (!from) throw new ClientError('BAD_INPUT', `no catalog in ${dirname(catalog)} to start ${o.name} from; run portcullis discover for it first`);
      mkdirSync(dirname(catalog), { recursive: true });
      copyFileSync(join(dirname(catalog), from), catalog);
    }
    const loaded = await loadPolicy(resolve(o.policiesDir), process.cwd());
    if (!loaded.fleet || loaded.problems.length > 0) throw new ClientError('BAD_INPUT', loaded.problems.map(formatProblem).join('\n'));
    const out = compileFleet({ fleet: loaded.fleet, catalogs: readCatalogs(generated), now, sourceDigest: '', previous: new Map() });
    const errors = out.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) throw new ClientError('BAD_INPUT', errors.map(formatProblem).join('\n'));
    const rbac = out.files.get(`${o.name}/rbac.yaml`);
    if (rbac === undefined) throw new ClientError('BAD_INPUT', `the compiler made no RBAC for ${o.name}`);

    const agentKey = generateKeyPairSync('ed25519');
    const registrationKeyId = keyIdOf(createPublicKey(registrationKey));
    const credential = await signRegistration(registrationKey, registrationKeyId, o.name, await keyThumbprint(agentKey.publicKey), ttl * 1000, now);
    const proxyCa = o.proxyCaFile !== undefined ? readFileSync(o.proxyCaFile, 'utf8') : undefined;
    const manifest = [
      ...parseAllDocuments(rbac).map((d) => d.toJS() as object),
      agentSecret(agentKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), credential, proxyCa),
      agentDeployment(o.name, o.proxies, o.image, o.replicas, proxyCa !== undefined),
    ]
      .map((m) => stringify(m))
      .join('---\n');
    writeFileSync(o.out, `# Bootstrap of cluster ${o.name} (portcullis cluster add): kubectl apply -f this file once, then delete it (it holds the agent key).\n${manifest}`, { mode: 0o600 });
    return { policyFile, manifest: o.out, expiresAt: new Date(now + ttl * 1000).toISOString() };
  } catch (err) {
    writeFileSync(policyFile, before);
    if (addedCatalog) rmSync(catalog, { force: true });
    throw err;
  }
}

/** `env=prod,region=eu-west` as labels. */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]{0,62})=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/.exec(part);
    if (!m) throw new ClientError('BAD_INPUT', `--labels: '${part}' is not KEY=VALUE with a Kubernetes label key and value`);
    out[m[1] as string] = m[2] ?? '';
  }
  return out;
}

function jsKey(k: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(k) ? k : `'${k}'`;
}

/** The agent's Secret: its key, the one-time registration credential, the proxies' CA. */
function agentSecret(keyPem: string, registration: string, proxyCa: string | undefined): object {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: AGENT_NAME, namespace: PROXY_NAMESPACE, labels: { 'app.kubernetes.io/name': AGENT_NAME } },
    type: 'Opaque',
    stringData: { 'agent.key': keyPem, registration, ...(proxyCa !== undefined ? { 'proxy-ca.pem': proxyCa } : {}) },
  };
}

/**
 * The agent's Deployment: as the compiled impersonate-only ServiceAccount, with the
 * Secret mounted read-only, no Service (it listens on nothing), non-root, read-only root file system.
 */
function agentDeployment(cluster: string, proxies: readonly string[], image: string, replicas: number, withCa: boolean): object {
  const labels = { 'app.kubernetes.io/name': AGENT_NAME, 'portcullis.dev/cluster': cluster };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: AGENT_NAME, namespace: PROXY_NAMESPACE, labels },
    spec: {
      replicas,
      selector: { matchLabels: { 'app.kubernetes.io/name': AGENT_NAME } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: PROXY_SERVICE_ACCOUNT,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          // Replicas on different nodes, so one node's loss leaves a tunnel.
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': AGENT_NAME } } }],
          containers: [
            {
              name: 'agent',
              image,
              args: [
                'agent',
                '--cluster',
                cluster,
                ...proxies.flatMap((p) => ['--proxy', p]),
                '--key',
                `${SECRET_MOUNT}/agent.key`,
                '--registration',
                `${SECRET_MOUNT}/registration`,
                ...(withCa ? ['--proxy-ca', `${SECRET_MOUNT}/proxy-ca.pem`] : []),
              ],
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              volumeMounts: [{ name: 'identity', mountPath: SECRET_MOUNT, readOnly: true }],
            },
          ],
          volumes: [{ name: 'identity', secret: { secretName: AGENT_NAME, defaultMode: 0o400 } }],
        },
      },
    },
  };
}
