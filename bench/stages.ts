/**
 * The proxy's own stages for one GET, hot: each called in a loop with what bench/proxy.ts sends
 * (kubectl's headers, one ConfigMap by name, a group grant), µs per call. What Portcullis adds to
 * a relay in CPU when its code and data are in cache; bench/proxy.ts measures the same stages
 * inside whole requests, where at concurrency 1 they run cold (issue 18, README "Speed").
 *   node bin/run-ts.js bench/stages.ts [--calls N]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { authorizationVerb, parseRequestInfo } from '../core/request-info.ts';
import { checkRequestTarget } from '../core/request-target.ts';
import type { RuleSet } from '../core/rule-set.ts';
import { Chain, GENESIS } from '../runtime-proxy/audit/chain.ts';
import { toAuditEvent, type AuditFacts } from '../runtime-proxy/audit/event.ts';
import { decisionIndex, type ActiveBundle } from '../runtime-proxy/bundle-store.ts';
import { buildUpstreamHeaders, type UpstreamIdentity } from '../runtime-proxy/headers.ts';
import { authorizeStage, parseRequestStage, route, type AuthorizeFacts } from '../runtime-proxy/pipeline.ts';
import { benchAuditFacts } from './proxy-support.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '200000' } } });
const CALLS = Math.min(Math.max(1000, Number(values.calls)), 2_000_000);
const NOW = Date.now();
const RS: RuleSet = {
  apiVersion: 'portcullis.dev/v1',
  kind: 'RuleSet',
  cluster: 'dev',
  grants: [{ id: 'read', source: { file: 'policies/bench.ts', line: 3 }, subjects: [{ kind: 'Group', name: 'oidc:sre' }], rules: [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }], scope: { kind: 'namespaces', namespaces: ['portcullis-bench'] }, conditions: {} }],
  denies: [{ id: 'no-kube-system', source: { file: 'policies/bench.ts', line: 9 }, subjects: 'everyone', except: [], rules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], scope: { kind: 'namespaces', namespaces: ['kube-system'] } }],
  impersonable: { users: [], groups: ['oidc:sre'] },
};
const BUNDLE: ActiveBundle = {
  cluster: 'dev',
  revision: 1,
  notAfter: NOW + 86_400_000,
  sourceDigest: 'sha256:0',
  ruleSet: RS,
  index: decisionIndex(RS),
  fingerprint: 'f',
  envelopeSha256: '0'.repeat(64),
};
const ID = { user: 'oidc:alice', groups: ['oidc:sre'], issuer: 'https://idp.example', method: 'oidc' as const, expiresAt: NOW + 1_800_000 };
const URL_ = '/clusters/dev/api/v1/namespaces/portcullis-bench/configmaps/cm-001';
const RAW = ['Host', '127.0.0.1:8443', 'User-Agent', 'kubectl/v1.34.4 (linux/amd64) kubernetes/abcdef0', 'Accept', 'application/json', 'Authorization', 'Bearer eyJhbGciOi…', 'Accept-Encoding', 'gzip'];

function perCall(fn: (i: number) => unknown): number {
  for (let i = 0; i < 20_000; i++) fn(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) fn(i);
  return Number(process.hrtime.bigint() - t) / CALLS / 1000;
}

const target = route(URL_)?.target ?? '';
const parsed = parseRequestStage('GET', target, false);
const facts: AuthorizeFacts = {};
const admission = authorizeStage(parsed, ID, BUNDLE, new Map(), NOW, facts);
const who: UpstreamIdentity = { authorization: 'Bearer sa-token', ...admission.impersonate, auditId: randomUUID() };
// The audit bench's record of one GET, with this request's attributes: the facts an Event is built from.
const facts0: AuditFacts = { ...benchAuditFacts(1, NOW, 'portcullis-bench'), attributes: admission.attributes };
const chain = new Chain({ seq: 0, prev: GENESIS });
const event = toAuditEvent(facts0);

const rows: [string, number][] = [
  ['route', perCall(() => route(URL_))],
  ['parse: target check + RequestInfo + verb', perCall(() => {
    const t = checkRequestTarget(target);
    return t.ok ? authorizationVerb(parseRequestInfo('GET', t.path, t.query), { isUpgrade: false }) : '';
  })],
  ['parse stage (a target seen before)', perCall(() => parseRequestStage('GET', target, false))],
  ['authorize (decide, impersonation, deadline)', perCall(() => authorizeStage(parsed, ID, BUNDLE, new Map(), NOW, {}))],
  ['upstream headers', perCall(() => buildUpstreamHeaders(RAW, who))],
  ['audit Event from the facts', perCall(() => toAuditEvent(facts0))],
  ['audit line: serialize + chain hash', perCall(() => chain.link(event))],
];
process.stdout.write(`the proxy's own stages for one GET, hot (${CALLS.toLocaleString('en-US')} calls each, node ${process.version}), µs per call:\n`);
for (const [name, us] of rows) process.stdout.write(`  ${name.padEnd(46)} ${us.toFixed(2)}\n`);
const sum = rows.filter(([n]) => !n.startsWith('parse stage')).reduce((a, [, us]) => a + us, 0);
process.stdout.write(`  ${'all of them (parsing a new target)'.padEnd(46)} ${sum.toFixed(2)}\n`);
