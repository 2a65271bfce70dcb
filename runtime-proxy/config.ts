import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv, type ErrorObject, type JSONSchemaType } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { BREAK_GLASS_CONFIGMAP, BUNDLE_CONFIGMAP, PROXY_NAMESPACE, REVISION_FLOOR_CONFIGMAP } from '../core/names.ts';
import type { AuditWebhookOptions } from './audit/webhook.ts';
import { MAX_RECORDING_BYTES } from './recording/session-recorder.ts';
import { CONSOLE_SCHEMA, resolveConsoleConfig, type ConsoleConfig, type RawConsoleConfig } from '../console/config.ts';

/** Where the proxy gets a cluster's signed bundle. */
export type BundleSourceConfig =
  | { readonly kind: 'directory'; readonly path: string; readonly pollIntervalMs: number }
  | { readonly kind: 'url'; readonly url: string; readonly caFile?: string; readonly pollIntervalMs: number }
  | {
      readonly kind: 'configMap';
      /** A read-only token allowed to `get` only `portcullis-system/portcullis-bundle`; not the impersonating credential. */
      readonly tokenFile: string;
      readonly namespace: string;
      readonly name: string;
      readonly pollIntervalMs: number;
    };

/** One cluster behind the proxy. Upstream credentials come from here, never from the bundle. */
export interface ClusterConfig {
  readonly name: string;
  /**
   * Host names that reach this cluster at the root (`https://HOST/api/…`), besides
   * `https://PROXY/clusters/NAME/…`; lowercase, no port. @default none
   */
  readonly hostnames: readonly string[];
  /** How the proxy reaches the cluster itself; none for a cluster reached through its agent (`agent: true`). */
  readonly upstream?: {
    readonly url: string;
    readonly caFile: string;
    /** The proxy's ServiceAccount token; re-read when the file changes. */
    readonly tokenFile?: string;
    readonly clientCertFile?: string;
    readonly clientKeyFile?: string;
  };
  readonly bundle: BundleSourceConfig;
  /** PEM files of the Ed25519 public keys whose signatures this proxy trusts for this cluster. */
  readonly trustedKeyFiles: readonly string[];
}

/** What happens when the audit sink cannot write. */
export type AuditFailureMode = 'deny' | 'serve';

/** The whole proxy configuration (`portcullis proxy --config FILE`). */
export interface ProxyConfig {
  readonly listen: { readonly host: string; readonly port: number };
  /**
   * A second listener, plain HTTP, for Prometheus (`/metrics`) and the probes (`/healthz`,
   * `/readyz`): metrics never go out on the public TLS port, where anyone could read them.
   * Port 0 picks a free one. @default none: no metrics are served
   */
  readonly metrics?: { readonly listen: { readonly host: string; readonly port: number } };
  readonly tls: { readonly certFile: string; readonly keyFile: string };
  readonly clusters: readonly ClusterConfig[];
  /** Passed unchanged to `createAuthenticator` of `runtime-proxy/authn`. */
  readonly authn: Readonly<Record<string, unknown>>;
  readonly audit: {
    readonly stdout: boolean;
    readonly file?: { readonly path: string; readonly maxBytes: number; readonly maxFiles: number };
    readonly flushIntervalMs: number;
    /** blocking: a response ends only once its record is in the file, written with the records of concurrent requests; batch: records are written every flushIntervalMs. */
    readonly mode: 'blocking' | 'batch';
    /** A signed checkpoint after this many records, and at close. */
    readonly checkpointEvery: number;
    /** The Ed25519 key (PKCS#8 PEM) that signs checkpoints; without one, a key of the process's own, published beside the log. */
    readonly signingKeyFile?: string;
    /** `deny` (default): refuse new requests with 503 while the sink fails; `serve`: keep serving and count the loss. */
    readonly onFailure: AuditFailureMode;
    /** kube-apiserver's audit webhook in batch mode (`audit/webhook.ts`); the records follow the file. */
    readonly webhook?: AuditWebhookOptions;
    /**
     * Where exec and attach sessions are recorded (asciicast v2, one `AUDITID.cast` each). A session
     * whose recording cannot be written follows `onFailure`: refused under `deny`.
     * @default `recordings/` beside the audit file; none without an audit file (so, under `deny`, no session)
     */
    readonly recordings?: { readonly dir: string; /** A session's recording fails beyond this. @default 64 MiB */ readonly maxBytes: number };
    /**
     * An `audit.k8s.io/v1` Policy file, as kube-apiserver's `--audit-policy-file`: the level of each
     * request (None, Metadata, Request, RequestResponse) by user, group, verb, resource, namespace or
     * path. Bodies of secrets, ServiceAccount tokens and token reviews are never logged, and None
     * leaves out only allowed requests. @default none: every request at Metadata
     */
    readonly policyFile?: string;
  };
  readonly breakGlass: {
    /** Receives a POST with the activation as JSON. */
    readonly webhookUrl?: string;
    readonly webhookCaFile?: string;
    /** Directory shared by every replica (one file per activation). At most one of stateDir and configMap; in memory only when neither. */
    readonly stateDir?: string;
    /** A ConfigMap on one of the clusters, written with its own get/update-only token (the ConfigMap must exist). */
    readonly configMap?: { readonly cluster: string; readonly tokenFile: string; readonly namespace: string; readonly name: string };
  };
  readonly bundleExpiry: {
    /**
     * From how long before a bundle's `notAfter` the proxy warns (a log line each hour, a
     * `/readyz` warning); at `notAfter` the cluster fails closed. @default 7 days
     */
    readonly warnBeforeMs: number;
  };
  /**
   * Where replicas keep the highest bundle revision each accepted, so that no replica, new or
   * restarted, accepts an older one (rollback). At most one of stateDir (a directory every
   * replica mounts) and configMap (on one of the clusters, with its own get/update-only token;
   * the ConfigMap must exist). @default neither: each replica remembers only since its start
   */
  readonly revisionFloor: {
    readonly stateDir?: string;
    readonly configMap?: { readonly cluster: string; readonly tokenFile: string; readonly namespace: string; readonly name: string };
  };
  /**
   * The proxy's own sessions (`portcullis login`): shared by every replica through a Redis or
   * Valkey store. @default none: only the identity provider's tokens and client certificates
   */
  readonly sessions?: SessionsConfig;
  /**
   * Clusters reached through an in-cluster agent that connects out to every replica
   * (`portcullis agent`, docs/tunnel.md). @default none: every cluster has an upstream
   */
  readonly agents?: AgentsConfig;
  /** The web console at /console (needs `sessions`). @default none */
  readonly console?: ConsoleConfig;
  readonly limits: {
    readonly maxHeaderBytes: number;
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly maxLongRunningPerIdentity: number;
    readonly shutdownGraceMs: number;
  };
}

/** `sessions` in the configuration. */
export interface SessionsConfig {
  /** The shared store: `redis://HOST:PORT` (Redis or Valkey). */
  readonly store: { readonly url: string };
  /** At least 32 random bytes, the same on every replica: the key that signs session credentials. */
  readonly keyFile: string;
  /** Unused for this long, a session ends. @default 1 hour */
  readonly idleTimeoutMs: number;
  /** A session ends this long after login. @default 12 hours */
  readonly maxLifetimeMs: number;
  /** Established sessions keep working this long while the store is unreachable; new logins stop at once. @default 30 s */
  readonly storeGraceMs: number;
  /** How often a replica tells the others which sessions it saw used (idle tracking). @default 5 s */
  readonly touchIntervalMs: number;
  /** The identity provider and public client `portcullis login` signs in with. */
  readonly login: { readonly issuer: string; readonly clientId: string; readonly scopes: readonly string[] };
  /** The base URL kubeconfigs name. @default the URL a request came to */
  readonly proxyUrl?: string;
  /** The CA of the proxy's serving certificate, put into kubeconfigs. @default none: the system trust store */
  readonly caFile?: string;
}

/** `agents` in the configuration. */
export interface AgentsConfig {
  /** PEM files of the Ed25519 public keys whose registration credentials (`portcullis cluster add`) this proxy accepts. */
  readonly registrationKeyFiles: readonly string[];
  /** A directory every replica mounts, for the registered agents' keys. @default the sessions' store */
  readonly stateDir?: string;
  /**
   * Clusters that need no entry here: once an agent registers one, it is served with these, `{cluster}`
   * in the bundle source's path or URL replaced by its name. @default none: only clusters with `agent: true`
   */
  readonly registeredClusters?: { readonly bundle: BundleSourceConfig; readonly trustedKeyFiles: readonly string[] };
  readonly limits: {
    /** Streams open at once on one tunnel. @default 4096 */
    readonly maxStreams: number;
    /** Bytes in flight from the agent on one stream. @default 1 MiB */
    readonly streamWindowBytes: number;
    /** Bytes in flight from the agent on one tunnel. @default 32 MiB */
    readonly connectionWindowBytes: number;
  };
}

/** A bundle source for a registered cluster: `{cluster}` in the path or URL replaced by its name. */
export function bundleFor(template: BundleSourceConfig, cluster: string): BundleSourceConfig {
  if (template.kind === 'directory') return { ...template, path: template.path.replaceAll('{cluster}', cluster) };
  if (template.kind === 'url') return { ...template, url: template.url.replaceAll('{cluster}', encodeURIComponent(cluster)) };
  return template;
}

/** The configuration was refused; the message lists every problem. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type RawBundle = { directory?: string; url?: string; caFile?: string; configMap?: { tokenFile: string; namespace?: string; name?: string }; pollIntervalMs?: number };

// The YAML schema (before defaults and path resolution).
interface RawConfig {
  listen?: { host?: string; port?: number };
  metrics?: { listen: { host?: string; port: number } };
  tls: { certFile: string; keyFile: string };
  clusters: {
    name: string;
    hostnames?: string[];
    upstream?: { url: string; caFile: string; tokenFile?: string; clientCertFile?: string; clientKeyFile?: string };
    agent?: boolean;
    bundle: RawBundle;
    trustedKeyFiles: string[];
  }[];
  agents?: {
    registrationKeyFiles: string[];
    stateDir?: string;
    registeredClusters?: { bundle: RawBundle; trustedKeyFiles: string[] };
    limits?: { maxStreams?: number; streamWindowBytes?: number; connectionWindowBytes?: number };
  };
  authn: Record<string, unknown>;
  audit?: { stdout?: boolean; file?: { path: string; maxBytes?: number; maxFiles?: number }; flushIntervalMs?: number; mode?: 'blocking' | 'batch'; checkpointEvery?: number; signingKeyFile?: string; onFailure?: 'deny' | 'serve'; recordings?: { dir: string; maxBytes?: number }; policyFile?: string; webhook?: { configFile: string } & Partial<Omit<AuditWebhookOptions, 'configFile'>> };
  breakGlass?: { webhookUrl?: string; webhookCaFile?: string; stateDir?: string; configMap?: { cluster: string; tokenFile: string; namespace?: string; name?: string } };
  bundleExpiry?: { warnBeforeMs?: number };
  revisionFloor?: { stateDir?: string; configMap?: { cluster: string; tokenFile: string; namespace?: string; name?: string } };
  limits?: Partial<ProxyConfig['limits']>;
  sessions?: {
    store: { url: string };
    keyFile: string;
    idleTimeoutMs?: number;
    maxLifetimeMs?: number;
    storeGraceMs?: number;
    touchIntervalMs?: number;
    login: { issuer: string; clientId: string; scopes?: string[] };
    proxyUrl?: string;
    caFile?: string;
  };
  console?: RawConsoleConfig;
}

const str = { type: 'string', minLength: 1 } as const;
const posInt = { type: 'integer', minimum: 1 } as const;
const sharedConfigMap = {
  type: 'object',
  additionalProperties: false,
  required: ['cluster', 'tokenFile'],
  properties: { cluster: str, tokenFile: str, namespace: { ...str, nullable: true }, name: { ...str, nullable: true } },
} as const;
const bundleSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    directory: { ...str, nullable: true },
    url: { type: 'string', pattern: '^https://', nullable: true },
    caFile: { ...str, nullable: true },
    configMap: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['tokenFile'],
      properties: { tokenFile: str, namespace: { ...str, nullable: true }, name: { ...str, nullable: true } },
    },
    pollIntervalMs: { ...posInt, nullable: true },
  },
} as const;
const schema: JSONSchemaType<RawConfig> = {
  type: 'object',
  additionalProperties: false,
  required: ['tls', 'clusters', 'authn'],
  properties: {
    metrics: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['listen'],
      properties: {
        listen: {
          type: 'object',
          additionalProperties: false,
          required: ['port'],
          properties: { host: { ...str, nullable: true }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
        },
      },
    },
    listen: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: { host: { ...str, nullable: true }, port: { type: 'integer', minimum: 0, maximum: 65535, nullable: true } },
    },
    tls: { type: 'object', additionalProperties: false, required: ['certFile', 'keyFile'], properties: { certFile: str, keyFile: str } },
    clusters: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'bundle', 'trustedKeyFiles'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' },
          hostnames: {
            type: 'array',
            nullable: true,
            items: { type: 'string', maxLength: 253, pattern: '^(?=.*[a-zA-Z])[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$' },
          },
          agent: { type: 'boolean', nullable: true },
          upstream: {
            type: 'object',
            nullable: true,
            additionalProperties: false,
            required: ['url', 'caFile'],
            properties: {
              url: { type: 'string', pattern: '^https://' },
              caFile: str,
              tokenFile: { ...str, nullable: true },
              clientCertFile: { ...str, nullable: true },
              clientKeyFile: { ...str, nullable: true },
            },
          },
          bundle: bundleSchema,
          trustedKeyFiles: { type: 'array', minItems: 1, items: str },
        },
      },
    },
    agents: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['registrationKeyFiles'],
      properties: {
        registrationKeyFiles: { type: 'array', minItems: 1, items: str },
        stateDir: { ...str, nullable: true },
        registeredClusters: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['bundle', 'trustedKeyFiles'],
          properties: { bundle: bundleSchema, trustedKeyFiles: { type: 'array', minItems: 1, items: str } },
        },
        limits: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          properties: { maxStreams: { ...posInt, nullable: true }, streamWindowBytes: { ...posInt, nullable: true }, connectionWindowBytes: { ...posInt, nullable: true } },
        },
      },
    },
    authn: { type: 'object', required: [], additionalProperties: true },
    audit: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: {
        stdout: { type: 'boolean', nullable: true },
        file: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['path'],
          properties: { path: str, maxBytes: { ...posInt, nullable: true }, maxFiles: { ...posInt, nullable: true } },
        },
        flushIntervalMs: { ...posInt, nullable: true },
        mode: { type: 'string', enum: ['blocking', 'batch'], nullable: true },
        checkpointEvery: { ...posInt, nullable: true },
        signingKeyFile: { type: 'string', nullable: true },
        onFailure: { type: 'string', enum: ['deny', 'serve'], nullable: true },
        recordings: { type: 'object', nullable: true, additionalProperties: false, required: ['dir'], properties: { dir: str, maxBytes: { ...posInt, nullable: true } } },
        policyFile: { ...str, nullable: true },
        webhook: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['configFile'],
          properties: {
            configFile: str,
            maxBatchSize: { ...posInt, nullable: true },
            maxBatchWaitMs: { ...posInt, nullable: true },
            bufferSize: { ...posInt, nullable: true },
            initialBackoffMs: { ...posInt, nullable: true },
            maxBackoffMs: { ...posInt, nullable: true },
            timeoutMs: { ...posInt, nullable: true },
          },
        },
      },
    },
    breakGlass: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: {
        webhookUrl: { type: 'string', pattern: '^https?://', nullable: true },
        webhookCaFile: { ...str, nullable: true },
        stateDir: { ...str, nullable: true },
        configMap: { ...sharedConfigMap, nullable: true },
      },
    },
    bundleExpiry: { type: 'object', nullable: true, additionalProperties: false, properties: { warnBeforeMs: { ...posInt, nullable: true } } },
    revisionFloor: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: { stateDir: { ...str, nullable: true }, configMap: { ...sharedConfigMap, nullable: true } },
    },
    sessions: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['store', 'keyFile', 'login'],
      properties: {
        store: { type: 'object', additionalProperties: false, required: ['url'], properties: { url: { type: 'string', pattern: '^rediss?://' } } },
        keyFile: str,
        idleTimeoutMs: { ...posInt, nullable: true },
        maxLifetimeMs: { ...posInt, nullable: true },
        storeGraceMs: { ...posInt, nullable: true },
        touchIntervalMs: { ...posInt, nullable: true },
        login: {
          type: 'object',
          additionalProperties: false,
          required: ['issuer', 'clientId'],
          properties: { issuer: { type: 'string', pattern: '^https://' }, clientId: str, scopes: { type: 'array', nullable: true, items: str } },
        },
        proxyUrl: { type: 'string', pattern: '^https://', nullable: true },
        caFile: { ...str, nullable: true },
      },
    },
    console: CONSOLE_SCHEMA as never,
    limits: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: {
        maxHeaderBytes: { ...posInt, nullable: true },
        headersTimeoutMs: { ...posInt, nullable: true },
        requestTimeoutMs: { ...posInt, nullable: true },
        idleTimeoutMs: { ...posInt, nullable: true },
        maxLongRunningPerIdentity: { ...posInt, nullable: true },
        shutdownGraceMs: { ...posInt, nullable: true },
      },
    },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/** Reads and validates a YAML configuration file; relative paths are resolved against the file's directory. */
export function loadConfig(file: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseConfig(text, dirname(resolve(file)), file);
}

/** Validates configuration text; pure apart from nothing (paths are only resolved, not read). Collects every problem, then fails once. */
export function parseConfig(text: string, baseDir: string, label = 'config'): ProxyConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${label}: not valid YAML: ${(err as Error).message}`);
  }
  if (!validate(raw)) throw new ConfigError(`${label}:\n${(validate.errors ?? []).map(describe).join('\n')}`);
  const problems: string[] = [];
  const p = (f: string): string => resolve(baseDir, f);
  const seen = new Set<string>();
  const hostOwner = new Map<string, string>();
  const clusters = raw.clusters.map((c, i): ClusterConfig => {
    if (seen.has(c.name)) problems.push(`  /clusters/${i}/name: duplicate cluster ${c.name}`);
    seen.add(c.name);
    const hostnames = (c.hostnames ?? []).map((h) => h.toLowerCase());
    for (const h of hostnames) {
      const owner = hostOwner.get(h);
      if (owner !== undefined) problems.push(`  /clusters/${i}/hostnames: ${h} already reaches cluster ${owner}`);
      hostOwner.set(h, c.name);
    }
    const u = c.upstream;
    if ((u === undefined) !== (c.agent === true)) problems.push(`  /clusters/${i}: set exactly one of upstream (the proxy reaches the cluster) or agent: true (its agent connects out to the proxy)`);
    if (u) {
      const hasToken = u.tokenFile !== undefined;
      const hasCert = u.clientCertFile !== undefined || u.clientKeyFile !== undefined;
      if (hasToken === hasCert) problems.push(`  /clusters/${i}/upstream: set exactly one of tokenFile or clientCertFile+clientKeyFile`);
      if (hasCert && (u.clientCertFile === undefined || u.clientKeyFile === undefined)) problems.push(`  /clusters/${i}/upstream: clientCertFile and clientKeyFile go together`);
    }
    if (c.agent === true && raw.agents === undefined) problems.push(`  /clusters/${i}: agent: true needs the agents section`);
    if (c.agent === true && c.bundle.configMap !== undefined) problems.push(`  /clusters/${i}/bundle: a cluster behind its agent takes its bundle from a directory or URL (the proxy holds no credential for its ConfigMap)`);
    const bundle = parseBundle(c.bundle, `/clusters/${i}/bundle`, problems, p);
    return {
      name: c.name,
      hostnames,
      ...(u
        ? {
            upstream: {
              url: u.url,
              caFile: p(u.caFile),
              ...(u.tokenFile !== undefined ? { tokenFile: p(u.tokenFile) } : {}),
              ...(u.clientCertFile !== undefined ? { clientCertFile: p(u.clientCertFile) } : {}),
              ...(u.clientKeyFile !== undefined ? { clientKeyFile: p(u.clientKeyFile) } : {}),
            },
          }
        : {}),
      bundle,
      trustedKeyFiles: c.trustedKeyFiles.map(p),
    };
  });
  const ag = raw.agents;
  if (clusters.length === 0 && ag?.registeredClusters === undefined) problems.push('  /clusters: no cluster (configure one, or agents.registeredClusters for clusters their agents register)');
  if (ag?.registeredClusters?.bundle.configMap !== undefined) problems.push('  /agents/registeredClusters/bundle: clusters behind their agents take their bundle from a directory or URL');
  const agents: AgentsConfig | undefined = ag && {
    registrationKeyFiles: ag.registrationKeyFiles.map(p),
    ...(ag.stateDir !== undefined ? { stateDir: p(ag.stateDir) } : {}),
    ...(ag.registeredClusters
      ? { registeredClusters: { bundle: parseBundle(ag.registeredClusters.bundle, '/agents/registeredClusters/bundle', problems, p), trustedKeyFiles: ag.registeredClusters.trustedKeyFiles.map(p) } }
      : {}),
    limits: {
      maxStreams: ag.limits?.maxStreams ?? 4096,
      streamWindowBytes: ag.limits?.streamWindowBytes ?? 1024 * 1024,
      connectionWindowBytes: ag.limits?.connectionWindowBytes ?? 32 * 1024 * 1024,
    },
  };
  const bgc = raw.breakGlass?.configMap;
  if (bgc && raw.breakGlass?.stateDir !== undefined) problems.push('  /breakGlass: set at most one of stateDir and configMap');
  if (bgc && !seen.has(bgc.cluster)) problems.push(`  /breakGlass/configMap/cluster: ${bgc.cluster} is not a configured cluster`);
  const rf = raw.revisionFloor;
  if (rf?.configMap && rf.stateDir !== undefined) problems.push('  /revisionFloor: set at most one of stateDir and configMap');
  if (rf?.configMap && !seen.has(rf.configMap.cluster)) problems.push(`  /revisionFloor/configMap/cluster: ${rf.configMap.cluster} is not a configured cluster`);
  const sx = raw.sessions;
  const issuers = Array.isArray(raw.authn['issuers']) ? (raw.authn['issuers'] as { issuer?: unknown }[]).map((i) => i.issuer) : [];
  if (sx && !issuers.includes(sx.login.issuer)) problems.push(`  /sessions/login/issuer: ${sx.login.issuer} is not one of authn.issuers (the proxy must verify the tokens login brings)`);
  if (raw.console && !sx) problems.push('  /console: the console needs sessions (it signs people in to a session)');
  if (problems.length > 0) throw new ConfigError(`${label}:\n${problems.join('\n')}`);
  const a = raw.audit ?? {};
  const l = raw.limits ?? {};
  const bg = raw.breakGlass ?? {};
  return {
    listen: { host: raw.listen?.host ?? '127.0.0.1', port: raw.listen?.port ?? 8443 },
    ...(raw.metrics ? { metrics: { listen: { host: raw.metrics.listen.host ?? '127.0.0.1', port: raw.metrics.listen.port } } } : {}),
    tls: { certFile: p(raw.tls.certFile), keyFile: p(raw.tls.keyFile) },
    clusters,
    authn: resolveAuthnPaths(raw.authn, p),
    audit: {
      stdout: a.stdout ?? false,
      ...(a.file ? { file: { path: p(a.file.path), maxBytes: a.file.maxBytes ?? 100 * 1024 * 1024, maxFiles: a.file.maxFiles ?? 5 } } : {}),
      flushIntervalMs: a.flushIntervalMs ?? 200,
      mode: a.mode ?? 'blocking',
      checkpointEvery: a.checkpointEvery ?? 1000,
      ...(a.signingKeyFile !== undefined ? { signingKeyFile: p(a.signingKeyFile) } : {}),
      onFailure: a.onFailure ?? 'deny',
      ...(a.policyFile !== undefined ? { policyFile: p(a.policyFile) } : {}),
      ...(a.recordings
        ? { recordings: { dir: p(a.recordings.dir), maxBytes: a.recordings.maxBytes ?? MAX_RECORDING_BYTES } }
        : a.file
          ? { recordings: { dir: join(dirname(p(a.file.path)), 'recordings'), maxBytes: MAX_RECORDING_BYTES } }
          : {}),
      ...(a.webhook
        ? {
            webhook: {
              configFile: p(a.webhook.configFile),
              maxBatchSize: a.webhook.maxBatchSize ?? 400,
              maxBatchWaitMs: a.webhook.maxBatchWaitMs ?? 30_000,
              bufferSize: a.webhook.bufferSize ?? 10_000,
              initialBackoffMs: a.webhook.initialBackoffMs ?? 10_000,
              maxBackoffMs: a.webhook.maxBackoffMs ?? 60_000,
              timeoutMs: a.webhook.timeoutMs ?? 30_000,
            },
          }
        : {}),
    },
    breakGlass: {
      ...(bg.webhookUrl !== undefined ? { webhookUrl: bg.webhookUrl } : {}),
      ...(bg.webhookCaFile !== undefined ? { webhookCaFile: p(bg.webhookCaFile) } : {}),
      ...(bg.stateDir !== undefined ? { stateDir: p(bg.stateDir) } : {}),
      ...(bg.configMap !== undefined
        ? { configMap: { cluster: bg.configMap.cluster, tokenFile: p(bg.configMap.tokenFile), namespace: bg.configMap.namespace ?? PROXY_NAMESPACE, name: bg.configMap.name ?? BREAK_GLASS_CONFIGMAP } }
        : {}),
    },
    bundleExpiry: { warnBeforeMs: raw.bundleExpiry?.warnBeforeMs ?? 7 * 86_400_000 },
    revisionFloor: {
      ...(rf?.stateDir !== undefined ? { stateDir: p(rf.stateDir) } : {}),
      ...(rf?.configMap !== undefined
        ? { configMap: { cluster: rf.configMap.cluster, tokenFile: p(rf.configMap.tokenFile), namespace: rf.configMap.namespace ?? PROXY_NAMESPACE, name: rf.configMap.name ?? REVISION_FLOOR_CONFIGMAP } }
        : {}),
    },
    ...(agents ? { agents } : {}),
    ...(sx
      ? {
          sessions: {
            store: { url: sx.store.url },
            keyFile: p(sx.keyFile),
            idleTimeoutMs: sx.idleTimeoutMs ?? 3_600_000,
            maxLifetimeMs: sx.maxLifetimeMs ?? 12 * 3_600_000,
            storeGraceMs: sx.storeGraceMs ?? 30_000,
            touchIntervalMs: sx.touchIntervalMs ?? 5000,
            login: { issuer: sx.login.issuer, clientId: sx.login.clientId, scopes: sx.login.scopes ?? ['openid', 'groups'] },
            ...(sx.proxyUrl !== undefined ? { proxyUrl: sx.proxyUrl } : {}),
            ...(sx.caFile !== undefined ? { caFile: p(sx.caFile) } : {}),
          },
        }
      : {}),
    ...(raw.console ? { console: resolveConsoleConfig(raw.console, baseDir) } : {}),
    limits: {
      maxHeaderBytes: l.maxHeaderBytes ?? 32 * 1024,
      headersTimeoutMs: l.headersTimeoutMs ?? 10_000,
      requestTimeoutMs: l.requestTimeoutMs ?? 60_000,
      idleTimeoutMs: l.idleTimeoutMs ?? 120_000,
      maxLongRunningPerIdentity: l.maxLongRunningPerIdentity ?? 64,
      shutdownGraceMs: l.shutdownGraceMs ?? 30_000,
    },
  };
}

/** A bundle source: exactly one of directory, URL or ConfigMap. */
function parseBundle(b: RawBundle, where: string, problems: string[], p: (f: string) => string): BundleSourceConfig {
  const kinds = [b.directory, b.url, b.configMap].filter((x) => x !== undefined).length;
  if (kinds !== 1) problems.push(`  ${where}: set exactly one of directory, url or configMap`);
  const pollIntervalMs = b.pollIntervalMs ?? 5000;
  return b.directory !== undefined
    ? { kind: 'directory', path: p(b.directory), pollIntervalMs }
    : b.url !== undefined
      ? { kind: 'url', url: b.url, ...(b.caFile !== undefined ? { caFile: p(b.caFile) } : {}), pollIntervalMs }
      : {
          kind: 'configMap',
          tokenFile: p(b.configMap?.tokenFile ?? ''),
          namespace: b.configMap?.namespace ?? PROXY_NAMESPACE,
          name: b.configMap?.name ?? BUNDLE_CONFIGMAP,
          pollIntervalMs,
        };
}

function describe(e: ErrorObject): string {
  const where = e.instancePath || '/';
  if (e.keyword === 'additionalProperties') return `  ${where}: unknown field ${String(e.params['additionalProperty'])} (check the spelling)`;
  if (e.keyword === 'required') return `  ${where}: missing field ${String(e.params['missingProperty'])}`;
  return `  ${where}: ${e.message ?? e.keyword}`;
}

/** Resolves the file paths inside the authn section (issuers[].caFile, clientCertificates.caFile) like every other path. */
function resolveAuthnPaths(authn: Record<string, unknown>, p: (f: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...authn };
  if (Array.isArray(authn['issuers'])) {
    out['issuers'] = (authn['issuers'] as unknown[]).map((i) =>
      i && typeof i === 'object' && typeof (i as { caFile?: unknown }).caFile === 'string' ? { ...i, caFile: p((i as { caFile: string }).caFile) } : i,
    );
  }
  const cc = authn['clientCertificates'];
  if (cc && typeof cc === 'object' && typeof (cc as { caFile?: unknown }).caFile === 'string') out['clientCertificates'] = { ...cc, caFile: p((cc as { caFile: string }).caFile) };
  return out;
}
