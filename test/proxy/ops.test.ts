// Operations: `portcullis proxy --config` as a process (SIGTERM drains and flushes),
// /healthz, /readyz, /metrics, and the URL and ConfigMap bundle sources.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http2 from 'node:http2';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PRODUCT_VERSION } from '../../core/version.ts';
import { parse, stringify } from 'yaml';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, writeBundle, type Harness } from './harness.ts';

const NS = 'proxy-ops';
const RULES = ruleSet('dev', [grant('dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }], ns(NS))], { users: ['oidc:alice'] });
const RBAC = manifestsYaml(upstreamRole(NS, 'dev-read', [group('oidc:developers')], [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'] }]));
const ROOT = resolve(import.meta.dirname, '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let h: Harness;
let alice: string;

/** A `portcullis proxy --config` process on the harness's configuration, with `audit` and a shutdown grace of its own. */
async function proxyProcess(name: string, o: { readonly audit: Record<string, unknown>; readonly shutdownGraceMs?: number }): Promise<{ readonly p: ChildProcess; readonly port: number; readonly exited: Promise<number | null>; readonly err: () => string }> {
  const cfg = parse(readFileSync(join(h.dir, 'proxy.yaml'), 'utf8')) as Record<string, unknown>;
  cfg['audit'] = o.audit;
  if (o.shutdownGraceMs !== undefined) cfg['limits'] = { ...(cfg['limits'] as object), shutdownGraceMs: o.shutdownGraceMs };
  const file = join(h.dir, `proxy-${name}.yaml`);
  writeFileSync(file, stringify(cfg));
  const p = spawn(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'proxy', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exited = new Promise<number | null>((res) => p.on('close', res));
  const port = await new Promise<number>((res, rej) => {
    p.stderr?.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /"port":(\d+)[^\n]*portcullis proxy listening/.exec(err);
      if (m) res(Number(m[1]));
    });
    void exited.then((code) => rej(new Error(`exited ${code}: ${err}`)));
    setTimeout(() => rej(new Error(`no listen line: ${err}`)), 30_000).unref();
  });
  return { p, port, exited, err: () => err };
}

/** A response a client received in full. */
interface Answered {
  readonly id: string;
  readonly status: number;
  readonly at: number;
}

/**
 * `n` clients, each on one keep-alive connection, sending the next request as soon as a response
 * is in; each stops at its first connection error (the proxy has gone), after 3,000 requests or 20 s.
 */
async function keepAliveLoad(n: number, port: number): Promise<Answered[]> {
  const ca = readFileSync(h.proxyCa.caFile);
  const answered: Answered[] = [];
  const client = async (): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
    const until = Date.now() + 20_000;
    try {
      for (let i = 0; i < 3000 && Date.now() < until; i++) {
        const r = await new Promise<{ id: string; status: number } | undefined>((res) => {
          const q = httpsRequest({ host: '127.0.0.1', port, path: `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, agent, headers: { authorization: `Bearer ${alice}` } }, (rs) => {
            rs.resume();
            // 'end' only for a complete response (its whole body); an aborted one errors.
            rs.on('end', () => res({ id: String(rs.headers['audit-id']), status: rs.statusCode ?? 0 }));
            rs.on('error', () => res(undefined));
            rs.on('aborted', () => res(undefined));
          });
          q.on('error', () => res(undefined));
          q.end();
        });
        if (!r) return;
        answered.push({ ...r, at: Date.now() });
      }
    } finally {
      agent.destroy();
    }
  };
  await Promise.all(Array.from({ length: n }, client));
  return answered;
}

function assertAllRecorded(answered: readonly Answered[], auditFile: string): void {
  const recorded = new Set(readFileSync(auditFile, 'utf8').split('\n').filter((l) => l.endsWith('}')).map((l) => (JSON.parse(l) as { auditID: string }).auditID));
  const missing = answered.filter((a) => !recorded.has(a.id));
  assert.deepEqual(missing, [], `${missing.length} of ${answered.length} answered requests have no record`);
}

describe('proxy operations', () => {
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
    alice = await h.token('alice', ['developers']);
  });
  after(async () => {
    await h?.stop();
  });

  it('GIVEN a running proxy WHEN probed THEN /healthz and /readyz answer ok; /metrics, only on its own listener, has decisions, latency, reloads, streams, authentication failures by code, process metrics and the build', async () => {
    assert.equal((await h.request('GET', '/healthz')).body, 'ok');
    assert.equal((await h.request('GET', '/readyz')).status, 200);
    await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`]]);
    await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/secrets`, [['Authorization', `Bearer ${alice}`]]);
    await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`);
    await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', 'Bearer not-a-token']]);
    // Not on the public TLS port (anyone could read it there).
    const pub = await h.request('GET', '/metrics');
    assert.equal(pub.status, 404);
    assert.doesNotMatch(pub.body, /portcullis_/);
    assert.equal((await h.scrape('/healthz')).body, 'ok');
    assert.equal((await h.scrape('/anything-else')).status, 404);
    const scraped = await h.scrape();
    assert.equal(scraped.status, 200);
    const m = scraped.body;
    assert.match(m, /portcullis_authentication_failures_total\{code="NO_CREDENTIALS"\} [1-9]/);
    assert.match(m, /portcullis_authentication_failures_total\{code="INVALID_CREDENTIALS"\} [1-9]/);
    assert.match(m, /^process_cpu_user_seconds_total \d/m);
    assert.match(m, /^nodejs_heap_size_used_bytes \d/m);
    assert.match(m, new RegExp(`portcullis_build_info\\{version="${PRODUCT_VERSION.replaceAll('.', '\\.')}",node_version="${process.version}"\\} 1`));
    assert.match(m, /# TYPE portcullis_audit_lost_records_total counter/);
    assert.doesNotMatch(m, /^# TYPE \S+(?<!_total) counter$/m, 'every counter is named *_total');
    assert.match(m, /portcullis_decisions_total\{cluster="dev",result="allow"\} [1-9]/);
    assert.match(m, /portcullis_decisions_total\{cluster="dev",result="deny"\} [1-9]/);
    assert.match(m, /portcullis_request_duration_seconds_bucket\{le="0.005",cluster="dev",result="allow"\}/);
    assert.match(m, /portcullis_bundle_reloads_total\{cluster="dev",result="accepted"\} 1/);
    assert.match(m, /portcullis_bundle_revision\{cluster="dev"\} 1/);
    assert.match(m, /portcullis_audit_sink_healthy 1/);
  });

  it('GIVEN `portcullis proxy --config FILE` WHEN a request goes through it and it gets SIGTERM THEN it exits 0 with the audit flushed', async () => {
    const cfg = parse(readFileSync(join(h.dir, 'proxy.yaml'), 'utf8')) as Record<string, unknown>;
    cfg['audit'] = { file: { path: 'audit-cli.log' }, flushIntervalMs: 60_000 };
    const file = join(h.dir, 'proxy-cli.yaml');
    writeFileSync(file, stringify(cfg));
    const p = spawn(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'proxy', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const port = await new Promise<number>((res, rej) => {
      p.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        const m = /"port":(\d+)[^\n]*portcullis proxy listening/.exec(err);
        if (m) res(Number(m[1]));
      });
      p.on('close', (code) => rej(new Error(`exited ${code}: ${err}`)));
      setTimeout(() => rej(new Error(`no listen line: ${err}`)), 30_000).unref();
    });
    const r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`], ['User-Agent', 'cli-test']], undefined, port);
    assert.equal(r.status, 200);
    const exited = new Promise<number | null>((res) => p.on('close', res));
    p.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    const lines = readFileSync(join(h.dir, 'audit-cli.log'), 'utf8').trim().split('\n');
    assert.ok(lines.some((l) => l.includes(String(r.headers['audit-id']))), 'the request is in the audit log although the flush interval never came');
  });

  it('GIVEN 8 clients on keep-alive connections sending without pause WHEN `portcullis proxy` gets SIGTERM THEN it exits 0 well within shutdownGraceMs, and every response a client received has its record', async () => {
    const graceMs = 4000;
    const auditFile = join(h.dir, 'audit-keepalive.log');
    const px = await proxyProcess('keepalive', { audit: { file: { path: auditFile }, flushIntervalMs: 60_000 }, shutdownGraceMs: graceMs });
    const load = keepAliveLoad(8, px.port);
    await sleep(1500);
    const sigtermAt = Date.now();
    px.p.kill('SIGTERM');
    assert.equal(await px.exited, 0, px.err());
    const tookMs = Date.now() - sigtermAt;
    const answered = await load;
    assert.ok(tookMs < graceMs / 2, `exited ${tookMs} ms after SIGTERM`);
    const afterSigterm = answered.filter((a) => a.at >= sigtermAt).length;
    assert.ok(answered.length >= 50 && afterSigterm >= 1, `${answered.length} answered, ${afterSigterm} after SIGTERM`);
    assertAllRecorded(answered, auditFile);
  });

  it('GIVEN 8 clients under load WHEN `portcullis proxy` is killed with SIGKILL at a random moment, 3 times THEN every response a client received in full has its record (blocking audit)', async () => {
    let seed = 20261204;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 3; round++) {
      const auditFile = join(h.dir, `audit-kill-${round}.log`);
      const px = await proxyProcess(`kill-${round}`, { audit: { file: { path: auditFile } } });
      const load = keepAliveLoad(8, px.port);
      await sleep(400 + Math.floor(random() * 800));
      px.p.kill('SIGKILL');
      await px.exited;
      const answered = await load;
      // Enough answers to make the claim mean something; fewer on a loaded machine (42 were seen beside another test run).
      assert.ok(answered.length >= 20, `round ${round}: ${answered.length} answered`);
      assertAllRecorded(answered, auditFile);
    }
  });

  it('GIVEN a request in flight WHEN the proxy is stopped THEN it drains: the request completes, new ones are refused, and its record is flushed', async () => {
    // A slow upstream (a double: kube-apiserver cannot be made slow on demand) behind a second proxy.
    const tls = h.proxyCa.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1'] });
    const slow = createServer({ key: tls.keyPem, cert: tls.certPem }, (_req, res) => {
      setTimeout(() => res.end('{"kind":"ConfigMapList","items":[]}'), 800);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    try {
      const auditPath = join(h.dir, 'audit-drain.log');
      const x = await h.extraProxy((c) => ({
        ...c,
        listen: { host: '127.0.0.1', port: 0 },
        audit: { ...c.audit, flushIntervalMs: 60_000, file: { path: auditPath, maxBytes: 1e6, maxFiles: 1 } },
        clusters: [{ ...(c.clusters[0] as (typeof c.clusters)[0]), upstream: { url: `https://127.0.0.1:${(slow.address() as AddressInfo).port}`, caFile: h.proxyCa.caFile, tokenFile: join(h.dir, 'upstream.token') } }],
      }));
      const inflight = h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`]], undefined, x.port);
      await sleep(200);
      const stopped = x.proxy.stop();
      await sleep(50);
      assert.equal(x.proxy.ready().ok, false);
      const r = await inflight;
      assert.equal(r.status, 200);
      await stopped;
      const lines = readFileSync(auditPath, 'utf8').trim().split('\n');
      assert.ok(lines.some((l) => l.includes(String(r.headers['audit-id']))));
    } finally {
      slow.close();
    }
  });

  it('GIVEN 300 live watches over one HTTP/2 connection WHEN an ordinary request follows THEN it is served at once (no upstream socket cap)', async () => {
    const x = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      audit: { ...c.audit, file: { path: join(h.dir, 'audit-many.log'), maxBytes: 1e8, maxFiles: 1 } },
      limits: { ...c.limits, maxLongRunningPerIdentity: 1000 },
    }));
    const session = http2.connect(`https://127.0.0.1:${x.port}`, { ca: h.proxyCa.caPem });
    const path = `/clusters/dev/api/v1/namespaces/${NS}/configmaps`;
    try {
      const streams = Array.from({ length: 300 }, () => session.request({ ':path': `${path}?watch=1`, authorization: `Bearer ${alice}` }, { endStream: true }));
      const statuses = await Promise.all(streams.map((st) => new Promise<number>((res) => st.once('response', (hd) => res(Number(hd[':status']))))));
      assert.deepEqual([...new Set(statuses)], [200]);
      assert.equal(x.proxy.streams.count('dev'), 300);
      const t0 = Date.now();
      const r = await h.request('GET', path, [['Authorization', `Bearer ${alice}`]], undefined, x.port);
      assert.equal(r.status, 200);
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
      for (const st of streams) st.close();
    } finally {
      session.destroy(); // close() would wait for the server side of 300 streams; the test is over
      await x.proxy.stop();
    }
  });

  it('GIVEN a bad configuration WHEN `portcullis proxy` starts THEN it exits 2 and says what to fix', async () => {
    const file = join(h.dir, 'bad.yaml');
    writeFileSync(file, 'tls: {}\nclusters: []\n');
    const p = spawn(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'proxy', '--config', file]);
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((res) => p.on('close', res));
    assert.equal(code, 2);
    assert.match(err, /missing field certFile/);
    assert.match(err, /missing field authn/);
  });

  it('GIVEN the bundle in the ConfigMap portcullis-system/portcullis-bundle WHEN read with a separate read-only token THEN the proxy serves from it and, watching the ConfigMap, has an update in force within a second', async () => {
    const name = `portcullis-bundle-${Date.now().toString(36)}`;
    const dir = join(h.dir, 'cm-bundle');
    // As `portcullis apply` delivers it: the signed files, and the commit they were applied from.
    const COMMIT = 'c0ffee'.padEnd(40, '0');
    const apply = (rev: number, commit: string) => {
      writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: rev });
      const data = Object.fromEntries(['rules.json', 'rbac.yaml', 'bundle.sig.json'].map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
      const metadata = { name, namespace: 'portcullis-system', annotations: { 'portcullis.dev/policy-commit': commit } };
      const r = h.admin(['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata, data }));
      assert.equal(r.status, 0, r.stderr);
    };
    apply(1, COMMIT);
    // A ServiceAccount that may use only `verbs` on this one ConfigMap, and a token file for it.
    const reader = (suffix: string, verbs: string[]): string => h.configMapAccount(name, suffix, verbs);
    const tokenFile = reader('reader', ['get', 'watch']);
    const x = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      audit: { ...c.audit, file: { path: join(h.dir, 'audit-cm.log'), maxBytes: 1e6, maxFiles: 1 } },
      clusters: [{ ...(c.clusters[0] as (typeof c.clusters)[0]), bundle: { kind: 'configMap', tokenFile, namespace: 'portcullis-system', name, pollIntervalMs: 600_000 } }],
    }));
    assert.equal(x.proxy.store('dev')?.current(Date.now())?.revision, 1);
    const r = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`]], undefined, x.port);
    assert.equal(r.status, 200);
    // Anything but a full commit id never reaches an audit record.
    // The poll is ten minutes here: only the proxy's watch of the ConfigMap can bring revision 2 in.
    apply(2, 'main; rm -rf /');
    const delivered = Date.now();
    for (let i = 0; i < 250 && x.proxy.store('dev')?.current(Date.now())?.revision !== 2; i++) await sleep(20);
    assert.equal(x.proxy.store('dev')?.current(Date.now())?.revision, 2);
    assert.ok(Date.now() - delivered < 1000, `revision 2 in force ${Date.now() - delivered} ms after kubectl apply returned`);
    assert.equal((await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`]], undefined, x.port)).status, 200);
    await x.proxy.stop();
    const records = readFileSync(join(h.dir, 'audit-cm.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { annotations: Record<string, string> });
    const byRevision = (rev: string) => records.filter((e) => e.annotations['portcullis.dev/bundle-revision'] === rev);
    assert.equal(byRevision('1').length, 1);
    assert.equal(byRevision('1')[0]?.annotations['portcullis.dev/policy-commit'], COMMIT);
    assert.equal(byRevision('2').length, 1);
    assert.equal(byRevision('2')[0]?.annotations['portcullis.dev/policy-commit'], undefined);
    assert.ok(x.logs().some((l) => l['msg'] === 'watching the bundle ConfigMap'));

    // A reader allowed only `get`: the watch is refused, the proxy says so once and keeps polling.
    const getOnlyToken = reader('get-only', ['get']);
    const y = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      audit: { ...c.audit, file: { path: join(h.dir, 'audit-cm2.log'), maxBytes: 1e6, maxFiles: 1 } },
      clusters: [{ ...(c.clusters[0] as (typeof c.clusters)[0]), bundle: { kind: 'configMap', tokenFile: getOnlyToken, namespace: 'portcullis-system', name, pollIntervalMs: 300 } }],
    }));
    try {
      assert.equal(y.proxy.store('dev')?.current(Date.now())?.revision, 2);
      for (let i = 0; i < 100 && !y.logs().some((l) => l['msg']?.toString().startsWith('cannot watch the bundle ConfigMap')); i++) await sleep(20);
      const warned = y.logs().filter((l) => String(l['msg']).startsWith('cannot watch the bundle ConfigMap'));
      assert.equal(warned.length, 1, 'said once');
      assert.equal(warned[0]?.['why'], 'HTTP 403');
      apply(3, COMMIT);
      for (let i = 0; i < 100 && y.proxy.store('dev')?.current(Date.now())?.revision !== 3; i++) await sleep(20);
      assert.equal(y.proxy.store('dev')?.current(Date.now())?.revision, 3, 'the poll brought revision 3');
      assert.equal(y.logs().filter((l) => String(l['msg']).startsWith('cannot watch the bundle ConfigMap')).length, 1, 'still said once');
    } finally {
      await y.proxy.stop();
    }
  });

  it('GIVEN the bundle at an HTTPS URL WHEN polled THEN the proxy serves from it, and keeps the last good one when the URL fails', async () => {
    const dir = join(h.dir, 'url-bundle');
    writeBundle(dir, RULES, h.signingKey, h.keyId, { revision: 7 });
    let down = false;
    const tls = h.proxyCa.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1'] });
    const srv = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      const f = (req.url ?? '').replace('/bundles/dev/', '');
      if (down || !['rules.json', 'rbac.yaml', 'bundle.sig.json'].includes(f)) {
        res.writeHead(down ? 503 : 404).end();
        return;
      }
      res.end(readFileSync(join(dir, f)));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/bundles/dev/`;
      const x = await h.extraProxy((c) => ({
        ...c,
        listen: { host: '127.0.0.1', port: 0 },
        audit: { ...c.audit, file: { path: join(h.dir, 'audit-url.log'), maxBytes: 1e6, maxFiles: 1 } },
        clusters: [{ ...(c.clusters[0] as (typeof c.clusters)[0]), bundle: { kind: 'url', url, caFile: h.proxyCa.caFile, pollIntervalMs: 200 } }],
      }));
      assert.equal(x.proxy.store('dev')?.current(Date.now())?.revision, 7);
      down = true;
      await sleep(500);
      assert.ok(x.logs().some((l) => l['alert'] === true && String(l['err']).includes('503')));
      assert.equal((await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`]], undefined, x.port)).status, 200);
      await x.proxy.stop();
    } finally {
      srv.close();
    }
  });
});
