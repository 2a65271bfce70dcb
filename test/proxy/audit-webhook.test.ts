// The audit webhook backend (audit/webhook.ts): kube-apiserver's webhook format, delivered to a
// real HTTPS receiver that checks the proxy's client certificate; nothing lost while the receiver
// is down for 10 s within the buffer, the overflow beyond it counted; a real proxy's records arrive.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import { AuditWebhook, readWebhookTarget, type AuditWebhookOptions } from '../../runtime-proxy/audit/webhook.ts';
import { createLocalCa, type LocalCa } from '../../sandbox/local-ca.ts';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from './harness.ts';

const NS = 'proxy-audit-webhook';
const READ = [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] }];
const RULES = ruleSet('dev', [grant('dev-read', [group('oidc:developers')], READ, ns(NS))], { users: ['oidc:alice'] });

/** A receiver as Falco's k8saudit or a SIEM collector runs one: HTTPS, the sender's client certificate required. */
class Receiver {
  readonly batches: { readonly items: AuditEvent[]; readonly cn: string }[] = [];
  readonly problems: string[] = [];
  #server: https.Server | undefined;
  port = 0;
  /** Answer with this status instead of 200 (the receiver failing). */
  status = 200;
  constructor(private readonly ca: LocalCa) {}

  get items(): AuditEvent[] {
    return this.batches.flatMap((b) => b.items);
  }

  async up(): Promise<void> {
    const cert = this.ca.issue({ cn: 'receiver', sans: ['IP:127.0.0.1'], usage: 'serverAuth' });
    this.#server = https.createServer({ cert: cert.certPem, key: cert.keyPem, ca: this.ca.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method !== 'POST' || req.headers['content-type'] !== 'application/json') this.problems.push(`${req.method} ${req.headers['content-type']}`);
        const list = JSON.parse(body) as { kind: string; apiVersion: string; items: AuditEvent[] };
        if (list.kind !== 'EventList' || list.apiVersion !== 'audit.k8s.io/v1') this.problems.push(`${list.kind} ${list.apiVersion}`);
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        if (this.status === 200) this.batches.push({ items: list.items, cn: String(peer.subject?.CN) });
        res.writeHead(this.status).end();
      });
    });
    await new Promise<void>((r) => (this.#server as https.Server).listen(this.port, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async down(): Promise<void> {
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
    this.#server = undefined;
  }
}

/** A kubeconfig-format webhook file, as kube-apiserver's --audit-webhook-config-file takes. */
function webhookKubeconfig(dir: string, ca: LocalCa, port: number): string {
  const client = ca.issue({ cn: 'portcullis-proxy', usage: 'clientAuth' });
  const file = join(dir, `audit-webhook-${port}.kubeconfig`);
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'siem', cluster: { server: `https://127.0.0.1:${port}/k8s-audit`, 'certificate-authority': ca.caFile } }],
      users: [{ name: 'proxy', user: { 'client-certificate-data': Buffer.from(client.certPem).toString('base64'), 'client-key-data': Buffer.from(client.keyPem).toString('base64') } }],
      contexts: [{ name: 'default', context: { cluster: 'siem', user: 'proxy' } }],
      'current-context': 'default',
    }),
  );
  return file;
}

const line = (i: number) => JSON.stringify({ kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: `rec-${i}`, stage: 'ResponseComplete' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  for (const t0 = Date.now(); !cond(); await sleep(50)) if (Date.now() - t0 > ms) assert.fail(`timed out waiting until ${what}`);
}

describe('audit webhook backend', () => {
  let h: Harness;
  let ca: LocalCa;
  const opts = (configFile: string, o: Partial<AuditWebhookOptions> = {}): AuditWebhookOptions => ({
    configFile,
    maxBatchSize: 50,
    maxBatchWaitMs: 100,
    bufferSize: 10_000,
    initialBackoffMs: 200,
    maxBackoffMs: 1000,
    timeoutMs: 5000,
    ...o,
  });
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: manifestsYaml(upstreamRole(NS, 'dev-read', [group('oidc:developers')], READ)), impersonable: RULES.impersonable, ruleSet: RULES });
    ca = createLocalCa('audit receiver CA');
  });
  after(async () => {
    await h?.stop();
    ca?.remove();
  });

  it('GIVEN a receiver that is down for 10 s while 400 records arrive WHEN it is back THEN every record is delivered once, in order, in EventList batches of at most maxBatchSize', async () => {
    const rx = new Receiver(ca);
    await rx.up();
    const wh = new AuditWebhook(opts(webhookKubeconfig(h.dir, ca, rx.port)));
    for (let i = 0; i < 40; i++) wh.enqueue(line(i));
    await until('the first 40 arrived', () => rx.items.length === 40);
    await rx.down();
    const t0 = Date.now();
    for (let i = 40; i < 440; i++) {
      wh.enqueue(line(i));
      if (i % 40 === 0) await sleep(1000);
    }
    await sleep(Math.max(0, 10_000 - (Date.now() - t0)));
    assert.ok(wh.counts.failures >= 3, `retried while down: ${JSON.stringify(wh.counts)}`);
    assert.equal(wh.counts.buffered, 400);
    await rx.up();
    await until('all 440 arrived', () => rx.items.length === 440);
    await wh.close(Date.now() + 5000);
    assert.deepEqual(rx.items.map((e) => e.auditID), Array.from({ length: 440 }, (_, i) => `rec-${i}`));
    assert.ok(rx.batches.every((b) => b.items.length <= 50 && b.cn === 'portcullis-proxy'));
    assert.deepEqual(rx.problems, []);
    assert.deepEqual({ ...wh.counts, failures: 0 }, { sent: 440, dropped: 0, rejected: 0, failures: 0, buffered: 0 });
    await rx.down();
  });

  it('GIVEN a receiver that is down and more records than the buffer holds WHEN it is back THEN the buffer is delivered and the overflow is counted, not silently lost', async () => {
    const rx = new Receiver(ca);
    await rx.up();
    const file = webhookKubeconfig(h.dir, ca, rx.port);
    await rx.down();
    const wh = new AuditWebhook(opts(file, { bufferSize: 100 }));
    for (let i = 0; i < 130; i++) wh.enqueue(line(i));
    assert.equal(wh.counts.dropped, 30);
    await sleep(500);
    await rx.up();
    await until('the buffer arrived', () => rx.items.length === 100);
    await wh.close(Date.now() + 5000);
    assert.deepEqual(rx.items.map((e) => e.auditID), Array.from({ length: 100 }, (_, i) => `rec-${i}`));
    assert.deepEqual({ ...wh.counts, failures: 0 }, { sent: 100, dropped: 30, rejected: 0, failures: 0, buffered: 0 });
    await rx.down();
  });

  it('GIVEN a receiver that answers 503, then 200 WHEN records arrive THEN the same batch is retried until accepted; a 400 is counted as rejected and not retried', async () => {
    const rx = new Receiver(ca);
    await rx.up();
    const wh = new AuditWebhook(opts(webhookKubeconfig(h.dir, ca, rx.port)));
    rx.status = 503;
    for (let i = 0; i < 10; i++) wh.enqueue(line(i));
    await until('two failed posts', () => wh.counts.failures >= 2);
    rx.status = 200;
    await until('the 10 arrived', () => rx.items.length === 10);
    rx.status = 400;
    for (let i = 10; i < 15; i++) wh.enqueue(line(i));
    await until('the 5 were rejected', () => wh.counts.rejected === 5);
    await wh.close(Date.now() + 2000);
    assert.deepEqual(rx.items.map((e) => e.auditID), Array.from({ length: 10 }, (_, i) => `rec-${i}`));
    await rx.down();
  });

  it('GIVEN a proxy with audit.webhook WHEN kubectl reads through it and the proxy stops THEN the receiver gets the same records as the file, checkpoint included, and the metrics count them', async () => {
    const rx = new Receiver(ca);
    await rx.up();
    const configFile = webhookKubeconfig(h.dir, ca, rx.port);
    const auditFile = join(h.dir, 'audit-webhook-proxy.log');
    const x = await h.extraProxy((c) => ({
      ...c,
      listen: { host: '127.0.0.1', port: 0 },
      metrics: { listen: { host: '127.0.0.1', port: 0 } },
      audit: { ...c.audit, file: { path: auditFile, maxBytes: 1e6, maxFiles: 1 }, webhook: opts(configFile, { maxBatchWaitMs: 30_000 }) },
    }));
    const kc = h.kubeconfig(await h.token('alice', ['developers']));
    const server = ['--server', `https://127.0.0.1:${x.port}/clusters/dev`];
    const ok = await h.kubectl(kc, [...server, 'get', 'configmaps', '-n', NS]);
    assert.equal(ok.status, 0, ok.stderr);
    const denied = await h.kubectl(kc, [...server, 'get', 'secrets', '-n', NS]);
    assert.notEqual(denied.status, 0);
    const m = await h.scrape('/metrics', x.metricsPort);
    const buffered = Number(/^portcullis_audit_webhook_buffered_records (\d+)$/m.exec(m.body)?.[1]);
    assert.ok(buffered >= 2, `records waiting for the batch: ${buffered}`);
    assert.match(m.body, /^portcullis_audit_webhook_records_total\{result="dropped"\} 0$/m);
    await x.proxy.stop();
    const inFile = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEvent);
    assert.deepEqual(rx.items, inFile, 'the webhook carries exactly the lines of the file, in order (maxBatchWait not reached: delivered at shutdown)');
    assert.ok(inFile.some((e) => e.verb === 'checkpoint'));
    assert.ok(inFile.some((e) => e.annotations?.['portcullis.dev/decision'] === 'deny' && e.requestURI.includes('/secrets')));
    assert.deepEqual(rx.problems, []);
    await rx.down();
  });

  it('GIVEN webhook files a proxy must not use WHEN read THEN each is refused naming the file and what is wrong', () => {
    const write = (name: string, cluster: object): string => {
      const f = join(h.dir, name);
      writeFileSync(f, stringify({ clusters: [{ name: 'c', cluster }], contexts: [{ name: 'x', context: { cluster: 'c' } }], 'current-context': 'x' }));
      return f;
    };
    assert.throws(() => readWebhookTarget(write('plain.kubeconfig', { server: 'http://siem.example/audit' })), /plain\.kubeconfig: server http:\/\/siem\.example\/audit: plain http only to a loopback address/);
    assert.throws(() => readWebhookTarget(write('insecure.kubeconfig', { server: 'https://siem.example', 'insecure-skip-tls-verify': true })), /insecure\.kubeconfig: insecure-skip-tls-verify is not supported/);
    assert.throws(() => readWebhookTarget(write('noserver.kubeconfig', {})), /noserver\.kubeconfig: the cluster has no server/);
    assert.equal(readWebhookTarget(write('loop.kubeconfig', { server: 'http://127.0.0.1:9/x' })).url, 'http://127.0.0.1:9/x');
  });
});
