/**
 * Authorization decision time on a 10,000-grant rule set (2,000 users in 500
 * groups, grants on users and groups, namespaced and cluster-wide, a few
 * denies and conditional grants). Target: median ≤ 2 µs.
 *   node bin/run-ts.js bench/authorize.ts [--grants N] [--requests N]
 */
import { parseArgs } from 'node:util';
import { authorize, decide, indexRuleSet, type Grant, type RequestAttributes, type RuleSet } from '../core/index.ts';

const { values } = parseArgs({ options: { grants: { type: 'string', default: '10000' }, requests: { type: 'string', default: '200000' } } });
const nGrants = Number(values.grants);
const nRequests = Math.min(Number(values.requests), 2_000_000);
let seed = 42;
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const resources = [['', 'pods'], ['', 'configmaps'], ['', 'secrets'], ['', 'services'], ['apps', 'deployments'], ['batch', 'jobs'], ['', 'pods/log']] as const;
const verbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const grants: Grant[] = Array.from({ length: nGrants }, (_, i) => {
  const [group, resource] = resources[rnd(resources.length)] ?? ['', 'pods'];
  return {
    id: `g${String(i).padStart(5, '0')}`,
    source: { file: 'policies/bench.ts', line: i + 1 },
    subjects: [rnd(4) === 0 ? { kind: 'User' as const, name: `oidc:u${rnd(2000)}` } : { kind: 'Group' as const, name: `oidc:g${rnd(500)}` }],
    rules: [{ apiGroups: [group], resources: [resource], verbs: [verbs[rnd(verbs.length)] ?? 'get', 'get'] }],
    scope: rnd(5) === 0 ? { kind: 'cluster' as const } : { kind: 'namespaces' as const, namespaces: [`ns${rnd(100)}`] },
    conditions: i % 50 === 0 ? { windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '18:00', timeZone: 'Europe/Berlin' }] } : {},
    ...(i % 50 === 0 ? { activationGroup: `portcullis:grant:g${i}` } : {}),
  };
});
const rs: RuleSet = {
  apiVersion: 'portcullis.dev/v1',
  kind: 'RuleSet',
  cluster: 'bench',
  grants,
  denies: [{ id: 'no-secrets', source: { file: 'policies/bench.ts', line: 0 }, subjects: 'everyone', except: [{ kind: 'Group', name: 'oidc:g0' }], rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }], scope: { kind: 'cluster' } }],
  impersonable: { users: Array.from({ length: 2000 }, (_, i) => `oidc:u${i}`), groups: Array.from({ length: 500 }, (_, i) => `oidc:g${i}`) },
};
const t0 = performance.now();
const index = indexRuleSet(rs);
const tIndex = performance.now() - t0;
const requests: RequestAttributes[] = Array.from({ length: 4096 }, () => {
  const [group, resource] = resources[rnd(resources.length)] ?? ['', 'pods'];
  const [res, sub = ''] = resource.split('/');
  return {
    user: `oidc:u${rnd(2000)}`,
    groups: [`oidc:g${rnd(500)}`, `oidc:g${rnd(500)}`, `oidc:g${rnd(500)}`],
    verb: verbs[rnd(verbs.length)] ?? 'get',
    isResourceRequest: true,
    path: '',
    apiGroup: group,
    apiVersion: 'v1',
    resource: res ?? 'pods',
    subresource: sub,
    namespace: `ns${rnd(100)}`,
    name: '',
  };
});
const now = Date.parse('2026-11-23T10:00:00Z');
function measure(name: string, f: (a: RequestAttributes) => boolean): void {
  for (let i = 0; i < 20_000; i++) f(requests[i & 4095] as RequestAttributes); // warm up
  const samples = new Float64Array(nRequests);
  let allowed = 0;
  for (let i = 0; i < nRequests; i++) {
    const a = requests[i & 4095] as RequestAttributes;
    const s = process.hrtime.bigint();
    if (f(a)) allowed++;
    samples[i] = Number(process.hrtime.bigint() - s);
  }
  samples.sort();
  const at = (q: number) => ((samples[Math.floor(q * (samples.length - 1))] ?? 0) / 1000).toFixed(2);
  const tb = performance.now();
  for (let i = 0; i < nRequests; i++) f(requests[i & 4095] as RequestAttributes);
  const mean = ((performance.now() - tb) * 1000) / nRequests;
  console.log(`${name.padEnd(22)} median ${at(0.5)} µs  p99 ${at(0.99)} µs  mean (no timer) ${mean.toFixed(2)} µs  allowed ${((100 * allowed) / nRequests).toFixed(1)}%`);
}
console.log(`rule set: ${nGrants} grants, ${rs.denies.length} deny; index built in ${tIndex.toFixed(1)} ms; ${nRequests} decisions (timer overhead included in median/p99)`);
measure('authorize', (a) => authorize(a, index, { now }).allowed);
measure('decide (proxy path)', (a) => decide(a, index, { now }).decision.allowed);
console.log('target: median <= 2.00 µs');
