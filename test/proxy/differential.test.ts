// A seeded differential test of the proxy's decision against the compiled RBAC on a real
// kube-apiserver. Random policies (users, groups, wildcards, subresources, resourceNames,
// denies with and without `except`, conditional grants) are compiled in-process and their RBAC
// applied; for random requests core/decide (the proxy's whole decision) is compared with
// SubjectAccessReviews:
//   (i)   what the proxy allows, RBAC allows for exactly what the proxy sends upstream;
//   (ii)  what a Deny refuses, RBAC refuses for that user with all their groups and every
//         activation group of the policy (going around the proxy, with any condition active);
//   (iii) where no grant applies, RBAC refuses for the user with all their groups;
//   (iv)  members the policy does not name are served as their groups allow (they are among the
//         callers, and (i) covers them as portcullis:member).
// Reproduce a failure with PORTCULLIS_DIFF_SEED=<seed printed in the failure>.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { parseAllDocuments, stringify } from 'yaml';
import type { Catalog } from '../../compiler/catalog.ts';
import { Cluster, Deny, Fleet, Grant, IdentityProvider, Role, Team } from '../../compiler/index.ts';
import { resolveFleet } from '../../compiler/resolve.ts';
import { synthCluster } from '../../compiler/synth.ts';
import type { RequestAttributes } from '../../core/attributes.ts';
import { decide } from '../../core/decide.ts';
import { indexRuleSet } from '../../core/rule-index.ts';
import type { PolicyRule, RuleSet } from '../../core/rule-set.ts';
import { getTestFleet } from '../support/fleet.ts';

const SEED = Number(process.env['PORTCULLIS_DIFF_SEED'] ?? 20261203);
const POLICIES = 30;
const REQUESTS = 1000;
const NAMESPACES = ['diff-a', 'diff-b'];
const catalog = JSON.parse(readFileSync('generated/catalog/dev.json', 'utf8')) as Catalog;
const NOW = Date.now();

/** mulberry32: a small seeded generator, so a seed reproduces the whole run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Pick {
  int(n: number): number;
  one<T>(xs: readonly T[]): T;
  some<T>(xs: readonly T[], max?: number): T[];
  chance(p: number): boolean;
}
function picker(r: () => number): Pick {
  const int = (n: number) => Math.floor(r() * n);
  return {
    int,
    one: (xs) => xs[int(xs.length)] as (typeof xs)[number],
    some: (xs, max = xs.length) => {
      const n = 1 + int(Math.min(max, xs.length));
      const out = [...xs].sort(() => r() - 0.5).slice(0, n);
      return out;
    },
    chance: (p) => r() < p,
  };
}

const VERBS = ['get', 'list', 'create', 'delete', 'update'];
/**
 * What policies and requests use: each resource with the verbs kube serves on it. Requests are
 * operations kube serves (no `create` on pods/log). An exec is decided by the proxy as `create`
 * whatever the transport (SECURITY rule 4); kube authorizes it as `create` over SPDY and as `get`
 * over WebSocket, so RBAC is asked both (`upstream`).
 */
const RESOURCES: readonly { group: string; resource: string; sub: string; verbs: readonly string[]; upstream?: readonly string[] }[] = [
  { group: '', resource: 'pods', sub: '', verbs: VERBS },
  { group: '', resource: 'configmaps', sub: '', verbs: VERBS },
  { group: '', resource: 'secrets', sub: '', verbs: VERBS },
  { group: '', resource: 'pods', sub: 'log', verbs: ['get'] },
  { group: '', resource: 'pods', sub: 'exec', verbs: ['create'], upstream: ['create', 'get'] },
  { group: 'apps', resource: 'deployments', sub: '', verbs: VERBS },
];
const NAMES = ['n1', 'n2'];

function randomRule(p: Pick): PolicyRule {
  const rs = p.some(RESOURCES, 2);
  const groups = [...new Set(rs.map((x) => x.group))];
  const resources = p.chance(0.1) ? ['*'] : [...new Set(rs.map((x) => (x.sub ? `${x.resource}/${x.sub}` : x.resource)))];
  const verbs = p.chance(0.1) ? ['*'] : p.some(VERBS, 3);
  return { apiGroups: groups, resources, verbs, ...(p.chance(0.2) ? { resourceNames: p.some(NAMES, 1) } : {}) };
}

interface Generated {
  readonly ruleSet: RuleSet;
  readonly rbac: string;
  readonly users: readonly string[];
  readonly groups: readonly string[];
}

/** Policy `i`: its subjects carry `p<i>-` so that policies applied side by side never share a subject. */
function randomPolicy(i: number, p: Pick): Generated | undefined {
  const f = new Fleet(`diff${i}`);
  const idp = new IdentityProvider(f, 'corp', { issuer: 'https://idp.example', usernamePrefix: 'oidc:' });
  new Cluster(f, 'dev', { server: 'https://dev:6443', labels: { env: 'dev' } });
  new Team(f, 'owners', { group: idp.group(`p${i}-owners`), namespaces: NAMESPACES });
  const users = ['u1', 'u2', 'u3'].map((u) => `p${i}-${u}`);
  const groups = ['g1', 'g2', 'g3'].map((g) => `p${i}-${g}`);
  const subject = () => (p.chance(0.4) ? idp.user(p.one(users)) : idp.group(p.one(groups)));
  const grants = 2 + p.int(4);
  for (let g = 0; g < grants; g++) {
    const role = new Role(f, `p${i}-r${g}`, { rules: Array.from({ length: 1 + p.int(2) }, () => randomRule(p)) });
    const cluster = p.chance(0.25);
    new Grant(f, `p${i}-g${g}`, {
      to: Array.from({ length: 1 + p.int(2) }, subject),
      role,
      clusters: 'all',
      namespaces: cluster ? 'cluster' : p.some(NAMESPACES),
      ...(p.chance(0.2) ? { expires: new Date(NOW + 86_400_000).toISOString() } : {}),
    });
  }
  const denies = p.int(3);
  for (let d = 0; d < denies; d++) {
    const everyone = p.chance(0.3);
    new Deny(f, `p${i}-d${d}`, {
      subjects: everyone ? 'everyone' : Array.from({ length: 1 + p.int(2) }, subject),
      ...(p.chance(0.4) ? { except: [idp.group(p.one(groups))] } : {}),
      rules: [randomRule(p)],
      clusters: 'all',
      ...(p.chance(0.5) ? { namespaces: p.some(NAMESPACES) } : {}),
    });
  }
  const r = resolveFleet(f, new Map([['dev', catalog]]), NOW);
  // A policy the compiler refuses, or one it warns cannot hold in RBAC (STREAM_GET_UPSTREAM: get without
  // create on exec through a wildcard; the README says so), is not one whose RBAC must agree: drawn again.
  if (r.problems.some((x) => x.severity === 'error' || x.code === 'STREAM_GET_UPSTREAM')) return undefined;
  const rc = r.clusters[0];
  if (!rc) return undefined;
  return { ruleSet: rc.ruleSet, rbac: synthCluster(rc), users: users.map((u) => `oidc:${u}`), groups: groups.map((g) => `oidc:${g}`) };
}

describe('the proxy and the compiled RBAC agree (seeded differential test against a real kube-apiserver)', () => {
  it(`GIVEN ${POLICIES} random policies × ${REQUESTS} random requests (seed ${SEED}) THEN no violation of (i)–(iv)`, { timeout: 600_000 }, async (t) => {
    const fleet = await getTestFleet();
    const cluster = fleet.cluster('dev');
    const p = picker(rng(SEED));
    const policies: Generated[] = [];
    let skipped = 0;
    while (policies.length < POLICIES && skipped < 5 * POLICIES) {
      const g = randomPolicy(policies.length, p);
      if (g) policies.push(g);
      else skipped++;
    }
    assert.equal(policies.length, POLICIES, `only ${policies.length} random policies compiled (${skipped} had errors)`);

    // Every policy's grant RBAC at once (its proxy ServiceAccount and role belong to other tests).
    const objects = policies.flatMap((g) =>
      parseAllDocuments(g.rbac)
        .map((d) => d.toJSON() as { kind: string; metadata: { name: string } })
        .filter((o) => ['ClusterRole', 'ClusterRoleBinding', 'RoleBinding'].includes(o.kind) && /^portcullis:(grant|role):/.test(o.metadata.name)),
    );
    const docs = [...NAMESPACES.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } })), ...objects].map((o) => stringify(o)).join('---\n');
    const applied = spawnSync(fleet.bin.kubectl, ['--kubeconfig', cluster.adminKubeconfig, 'apply', '--server-side', '--force-conflicts', '--field-manager', 'differential', '-f', '-'], { input: docs, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
    assert.equal(applied.status, 0, applied.stderr);

    const dispatcher = new Agent({ connect: { ca: readFileSync(cluster.caFile), cert: readFileSync(cluster.adminCertFile), key: readFileSync(cluster.adminKeyFile) }, connections: 8 });
    /** RBAC's answer for every verb kube may authorize the request by: true only if all allow, false only if none does. */
    const rbac = async (a: RequestAttributes, verbs: readonly string[], user: string, groups: readonly string[], extra: Readonly<Record<string, string>>): Promise<boolean | 'mixed'> => {
      const answers = await Promise.all(verbs.map((verb) => sar({ ...a, verb }, user, groups, extra)));
      return answers.every(Boolean) ? true : answers.some(Boolean) ? 'mixed' : false;
    };
    const sar = async (a: RequestAttributes, user: string, groups: readonly string[], extra: Readonly<Record<string, string>>): Promise<boolean> => {
      const body = {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user,
          groups: [...groups, 'system:authenticated'],
          extra: Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, [v]])),
          resourceAttributes: { namespace: a.namespace, verb: a.verb, group: a.apiGroup, resource: a.resource, subresource: a.subresource, name: a.name },
        },
      };
      const r = await request(`${cluster.server}/apis/authorization.k8s.io/v1/subjectaccessreviews`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await r.body.json()) as { status?: { allowed?: boolean } };
      assert.equal(r.statusCode, 201, JSON.stringify(json));
      return json.status?.allowed === true;
    };

    // The authorizer's RBAC cache follows the API through informers: give it a moment.
    await new Promise((r) => setTimeout(r, 2000));
    const violations: string[] = [];
    const counts = { allowed: 0, denied: 0, noGrant: 0, asMember: 0 };
    try {
      for (const [i, g] of policies.entries()) {
        const index = indexRuleSet(g.ruleSet);
        const activation = [...new Set(g.ruleSet.grants.flatMap((x) => (x.activationGroup ? [x.activationGroup] : [])))];
        const checks: Promise<void>[] = [];
        for (let n = 0; n < REQUESTS; n++) {
          const res = p.one(RESOURCES);
          const named = p.chance(0.8);
          const user = named ? p.one(g.users) : `oidc:p${i}-newcomer`;
          const groups = p.chance(0.2) ? [] : p.some([...g.groups, `oidc:p${i}-unknown`], 3);
          const attrs: RequestAttributes = {
            user,
            groups: [...groups, 'system:authenticated'],
            verb: p.one(res.verbs),
            isResourceRequest: true,
            path: '',
            apiGroup: res.group,
            apiVersion: 'v1',
            resource: res.resource,
            subresource: res.sub,
            namespace: p.one(NAMESPACES),
            name: p.chance(0.5) ? p.one(NAMES) : '',
          };
          const v = decide(attrs, index, { now: NOW });
          const what = `seed ${SEED} policy ${i} ${user} [${groups.join(',')}] ${attrs.verb} ${res.group}/${res.resource}${res.sub ? `/${res.sub}` : ''} ${attrs.namespace}/${attrs.name}`;
          const d = v.decision;
          const upstream = res.upstream ?? [attrs.verb];
          if (d.allowed && v.impersonate) {
            counts.allowed++;
            if (v.impersonate.asMember) counts.asMember++;
            const imp = v.impersonate;
            checks.push(rbac(attrs, upstream, imp.user, imp.groups, imp.asMember ? { 'portcullis.dev/user': user } : {}).then((ok) => void (ok === true || violations.push(`(i) proxy allows by ${d.grant.id}, RBAC ${ok === false ? 'refuses' : 'refuses some of'} what it sends: ${what}`))));
          } else if (!d.allowed && d.reason === 'deny') {
            counts.denied++;
            checks.push(rbac(attrs, upstream, user, [...groups, ...activation], {}).then((ok) => void (ok === false || violations.push(`(ii) deny ${d.deny.id} bypassed around the proxy: ${what}`))));
          } else if (!d.allowed && d.reason === 'no-grant' && d.inactive.length === 0) {
            counts.noGrant++;
            checks.push(rbac(attrs, upstream, user, groups, {}).then((ok) => void (ok === false || violations.push(`(iii) no grant applies, RBAC allows: ${what}`))));
          }
          if (checks.length >= 64) await Promise.all(checks.splice(0));
        }
        await Promise.all(checks);
      }
    } finally {
      await dispatcher.close();
    }
    // The run must have exercised every property, or it proves nothing.
    assert.ok(counts.allowed > 1000 && counts.denied > 300 && counts.noGrant > 1000 && counts.asMember > 100, JSON.stringify(counts));
    assert.deepEqual(violations.slice(0, 20), [], `${violations.length} violations; counts ${JSON.stringify(counts)}`);
    t.diagnostic(`seed ${SEED}: ${JSON.stringify(counts)} (decisions checked against SubjectAccessReviews), 0 violations`);
  });
});
