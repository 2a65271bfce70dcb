/**
 * `portcullis kubeconfig`: one kubeconfig for the whole fleet, with a context
 * for each cluster the identity can reach through the proxy, and only those.
 * Pure: the fleet and rule sets come in, a kubeconfig object goes out.
 *
 * Authentication is vanilla kubectl: an `exec` credential plugin running
 * kubelogin (`kubectl oidc-login get-token`, https://github.com/int128/kubelogin),
 * which performs the OIDC login in a browser, caches the ID token and hands it
 * to kubectl as a bearer token. The token is the same for every cluster; the
 * proxy binds each request to the cluster in its path (SECURITY rule 9).
 */
import { stringify } from 'yaml';
import type { Deny, Grant, PolicyRule, RuleSet, Subject } from '../core/index.ts';

/** A cluster as `generated/fleet.json` lists it. */
export interface FleetCluster {
  readonly name: string;
  readonly server: string;
  readonly proxyUrl?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** The parts of `generated/fleet.json` this command reads. */
export interface FleetFile {
  readonly clusters: readonly FleetCluster[];
}

/** Who the kubeconfig is for: names exactly as the policy's subjects spell them (prefixed, e.g. `oidc:alice`). */
export interface KubeconfigIdentity {
  readonly user: string;
  readonly groups: readonly string[];
}

/** How kubectl should log in. */
export interface KubeconfigLogin {
  /** The OIDC issuer URL kubelogin talks to. */
  readonly issuerUrl: string;
  /** The OIDC client id of the kubectl login. */
  readonly clientId: string;
  /** Extra scopes to request, e.g. `groups`. @default ['groups'] */
  readonly extraScopes?: readonly string[];
}

/** Inputs of `buildKubeconfig`. */
export interface KubeconfigInput {
  readonly identity: KubeconfigIdentity;
  readonly fleet: FleetFile;
  /** Rule set of each cluster, by cluster name; a cluster without one is unreachable. */
  readonly ruleSets: ReadonlyMap<string, RuleSet>;
  /** How kubectl authenticates: kubelogin with the identity provider, or a proxy session credential as a plain bearer token (no plugin). */
  readonly login: KubeconfigLogin | { readonly sessionCredential: string };
  /** Base URL of the proxy; the cluster server is `<proxyUrl>/clusters/<name>`. @default each cluster's `proxyUrl` from fleet.json */
  readonly proxyUrl?: string;
  /**
   * Per-cluster host names instead: a URL with `{cluster}` in its host (e.g.
   * `https://{cluster}.portcullis.example`), matching the proxy's `hostnames`. Wins over `proxyUrl`.
   */
  readonly hostTemplate?: string;
  /** PEM of the CA that signed the proxy's serving certificate. @default the system trust store */
  readonly proxyCaPem?: string;
  /** The clock, to skip grants that have ended. */
  readonly now: number;
}

/** A kubeconfig (clientcmd v1 `Config`), as plain data. */
export interface Kubeconfig {
  readonly apiVersion: 'v1';
  readonly kind: 'Config';
  readonly preferences: Record<string, never>;
  readonly clusters: readonly { readonly name: string; readonly cluster: Record<string, unknown> }[];
  readonly users: readonly { readonly name: string; readonly user: Record<string, unknown> }[];
  readonly contexts: readonly { readonly name: string; readonly context: { readonly cluster: string; readonly user: string } }[];
  readonly 'current-context': string;
}

/** The kubeconfig user entry every context shares. */
export const KUBECONFIG_USER = 'portcullis';

/**
 * Clusters the identity can reach: some grant names the user or one of its
 * groups, has not ended at `now`, and no deny covering the identity denies
 * everything cluster-wide. Time windows and break-glass still count as
 * reachable (the user may be inside the window, or invoke break-glass); the
 * proxy decides each request.
 */
export function reachableClusters(identity: KubeconfigIdentity, fleet: FleetFile, ruleSets: ReadonlyMap<string, RuleSet>, now: number): string[] {
  const mine = (s: Subject) => (s.kind === 'User' ? s.name === identity.user : identity.groups.includes(s.name));
  const out: string[] = [];
  for (const c of fleet.clusters) {
    const rs = ruleSets.get(c.name);
    if (!rs || rs.cluster !== c.name) continue;
    if (rs.denies.some((d) => coversIdentity(d, mine) && deniesEverything(d))) continue;
    const granted = rs.grants.some((g) => g.subjects.some(mine) && !ended(g.conditions, now));
    if (granted) out.push(c.name);
  }
  return [...new Set(out)].sort();
}

/** Builds the kubeconfig; deterministic for the same input. */
export function buildKubeconfig(input: KubeconfigInput): Kubeconfig {
  const names = reachableClusters(input.identity, input.fleet, input.ruleSets, input.now);
  const byName = new Map(input.fleet.clusters.map((c) => [c.name, c]));
  const clusters = names.map((name) => {
    const server = input.hostTemplate !== undefined ? serverFromTemplate(input.hostTemplate, name) : serverFor(name, byName.get(name), input.proxyUrl);
    const cluster: Record<string, unknown> = { server };
    if (input.proxyCaPem !== undefined) cluster['certificate-authority-data'] = Buffer.from(input.proxyCaPem, 'utf8').toString('base64');
    return { name, cluster };
  });
  const login = input.login;
  const user = 'sessionCredential' in login ? { token: login.sessionCredential } : { exec: kubeloginExec(login) };
  return {
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    clusters,
    users: [{ name: KUBECONFIG_USER, user }],
    contexts: names.map((name) => ({ name, context: { cluster: name, user: KUBECONFIG_USER } })),
    'current-context': names[0] ?? '',
  };
}

/** kubelogin as kubectl's exec credential plugin. */
function kubeloginExec(login: KubeconfigLogin): Record<string, unknown> {
  const args = [
    'oidc-login',
    'get-token',
    `--oidc-issuer-url=${login.issuerUrl}`,
    `--oidc-client-id=${login.clientId}`,
    ...[...new Set(login.extraScopes ?? ['groups'])].sort().map((s) => `--oidc-extra-scope=${s}`),
  ];
  return {
    apiVersion: 'client.authentication.k8s.io/v1',
    command: 'kubectl',
    args,
    env: null,
    interactiveMode: 'IfAvailable',
    provideClusterInfo: false,
    installHint: 'Install kubelogin (the kubectl oidc-login plugin): https://github.com/int128/kubelogin#setup — e.g. `kubectl krew install oidc-login`.',
  };
}

/** The kubeconfig as YAML text. */
export function renderKubeconfig(config: Kubeconfig): string {
  return stringify(config, { lineWidth: 0 });
}

/** The server URL of a cluster from a `{cluster}` host template; throws on a template that is not an https URL with `{cluster}` in its host. */
export function serverFromTemplate(template: string, name: string): string {
  let u: URL;
  try {
    u = new URL(template.replace('{cluster}', 'cluster-placeholder'));
  } catch {
    throw new Error(`--host-template ${template} is not a URL`);
  }
  if (u.protocol !== 'https:' || !u.hostname.includes('cluster-placeholder') || (u.pathname !== '/' && u.pathname !== '')) {
    throw new Error(`--host-template must be https://…{cluster}…[:port] with {cluster} in the host and no path, not ${template}`);
  }
  return template.replace('{cluster}', name).replace(/\/+$/, '');
}

function serverFor(name: string, cluster: FleetCluster | undefined, proxyUrl: string | undefined): string {
  const path = `/clusters/${encodeURIComponent(name)}`;
  if (proxyUrl !== undefined) return `${proxyUrl.replace(/\/+$/, '')}${path}`;
  // fleet.json's proxyUrl is this cluster's own URL through the proxy (the compiler checked it is
  // a host of its own or …/clusters/NAME; docs/addressing.md), used as it is.
  const own = cluster?.proxyUrl?.replace(/\/+$/, '');
  if (own) return own;
  throw new Error(`cluster ${name} has no proxyUrl in fleet.json; pass --proxy-url or --host-template`);
}

/** Only a grant that can never become active again is out: one past its `expires`. */
function ended(conditions: Grant['conditions'], now: number): boolean {
  return conditions.expires !== undefined && !(now < Date.parse(conditions.expires));
}

function coversIdentity(d: Deny, mine: (s: Subject) => boolean): boolean {
  if (d.except.some(mine)) return false;
  return d.subjects === 'everyone' || d.subjects.some(mine);
}

function deniesEverything(d: Deny): boolean {
  return d.scope.kind === 'cluster' && d.rules.some(isEverything);
}

function isEverything(r: PolicyRule): boolean {
  return r.verbs.includes('*') && (r.apiGroups ?? []).includes('*') && (r.resources ?? []).includes('*');
}
