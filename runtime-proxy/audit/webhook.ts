import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { createRequire } from 'node:module';
import type { Agent, request as Request } from 'undici';
import { parse as parseYaml } from 'yaml';

/**
 * The audit webhook backend, compatible with kube-apiserver's `--audit-webhook-config-file` in
 * batch mode: the records are POSTed as `audit.k8s.io/v1` `EventList` batches to the server of a
 * kubeconfig-format file, so whatever consumes kube's audit webhook (Falco's k8saudit plugin, SIEM
 * collectors) consumes Portcullis's records too. A batch goes out when it holds `maxBatchSize`
 * records or its oldest has waited `maxBatchWaitMs`. A failed POST (unreachable, 5xx, 429) is
 * retried with exponential backoff, the same batch first, so nothing is lost or reordered while
 * the receiver is down; what arrives beyond `bufferSize` records meanwhile is dropped and counted.
 * The file stays the record a response waits for; the webhook follows it.
 */
export interface AuditWebhookOptions {
  /** The receiver, as a kubeconfig: its current context's cluster (server, CA) and user (client certificate or token). */
  readonly configFile: string;
  /** @default 400, as kube's --audit-webhook-batch-max-size */
  readonly maxBatchSize: number;
  /** @default 30000, as kube's --audit-webhook-batch-max-wait */
  readonly maxBatchWaitMs: number;
  /** Records held while the receiver is slow or down, the batch being sent included. @default 10000, as kube's --audit-webhook-batch-buffer-size */
  readonly bufferSize: number;
  /** The first retry's wait, doubled on each failure up to maxBackoffMs. @default 10000, as kube's --audit-webhook-initial-backoff */
  readonly initialBackoffMs: number;
  /** @default 60000 */
  readonly maxBackoffMs: number;
  /** One POST's limit. @default 30000 */
  readonly timeoutMs: number;
}

/** Where the batches go and how the proxy proves itself there. */
export interface WebhookTarget {
  readonly url: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly token?: string;
}

/** What the webhook has done, for the metrics and for tests. */
export interface WebhookCounts {
  /** Records the receiver accepted. */
  readonly sent: number;
  /** Records dropped because the buffer was full. */
  readonly dropped: number;
  /** Records the receiver refused for good (a 4xx other than 429): not retried. */
  readonly rejected: number;
  /** POSTs that failed and were retried. */
  readonly failures: number;
  /** Records waiting. */
  readonly buffered: number;
}

let undiciModule: { readonly Agent: typeof Agent; readonly request: typeof Request } | undefined;

/** undici's full API (Agent, request), loaded only when a webhook is configured: most proxies have none (issue 18, idle memory). */
function undici(): { readonly Agent: typeof Agent; readonly request: typeof Request } {
  undiciModule ??= createRequire(import.meta.url)('undici') as { readonly Agent: typeof Agent; readonly request: typeof Request };
  return undiciModule;
}

const EVENT_LIST_HEAD = '{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[';

export class AuditWebhook {
  readonly #target: WebhookTarget;
  readonly #agent: Agent;
  /** Serialized Events, oldest first; the batch being sent stays at the front until it is delivered. */
  #queue: string[] = [];
  #sending = false;
  #backoffMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #closing = false;
  #counts = { sent: 0, dropped: 0, rejected: 0, failures: 0 };
  #idle: (() => void) | undefined;

  constructor(
    private readonly opts: AuditWebhookOptions,
    private readonly onError: (message: string) => void = () => {},
  ) {
    this.#target = readWebhookTarget(opts.configFile);
    const { Agent } = undici();
    this.#agent = new Agent({
      connect: { ...(this.#target.ca !== undefined ? { ca: this.#target.ca } : {}), ...(this.#target.cert !== undefined ? { cert: this.#target.cert, key: this.#target.key } : {}) },
      keepAliveTimeout: 30_000,
    });
  }

  get counts(): WebhookCounts {
    return { ...this.#counts, buffered: this.#queue.length };
  }

  /** Queues one serialized Event (a line of the audit file, without its newline). */
  enqueue(line: string): void {
    if (this.#queue.length >= this.opts.bufferSize) {
      this.#counts.dropped++;
      return;
    }
    this.#queue.push(line);
    if (this.#queue.length >= this.opts.maxBatchSize) this.#pump();
    else this.#arm(this.opts.maxBatchWaitMs);
  }

  /** Sends what is queued, retrying until it is delivered or `deadline` (epoch ms) passes; then closes. */
  async close(deadline: number): Promise<void> {
    this.#closing = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#queue.length > 0 && Date.now() < deadline) {
      const idle = new Promise<void>((r) => (this.#idle = r));
      this.#pump(true);
      await Promise.race([idle, new Promise<void>((r) => setTimeout(r, Math.max(0, Math.min(this.#backoffMs || 50, deadline - Date.now()))).unref())]);
    }
    if (this.#queue.length > 0) this.onError(`${this.#queue.length} audit records not delivered to the webhook by shutdown`);
    await this.#agent.close().catch(() => {});
  }

  /** Sends at most after `ms`, unless a send is already due sooner. */
  #arm(ms: number): void {
    if (this.#timer || this.#sending) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump(true);
    }, ms);
    this.#timer.unref();
  }

  /** Sends the front batch if one is due (full, or `due`) and none is in flight. */
  #pump(due = false): void {
    if (this.#sending || this.#queue.length === 0) return;
    if (!due && this.#queue.length < this.opts.maxBatchSize) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#sending = true;
    const n = Math.min(this.#queue.length, this.opts.maxBatchSize);
    void this.#post(this.#queue.slice(0, n)).then((outcome) => {
      this.#sending = false;
      if (outcome === 'retry') {
        this.#counts.failures++;
        this.#backoffMs = this.#backoffMs === 0 ? this.opts.initialBackoffMs : Math.min(this.#backoffMs * 2, this.opts.maxBackoffMs);
        if (!this.#closing) this.#arm(this.#backoffMs);
      } else {
        this.#queue.splice(0, n);
        this.#counts[outcome === 'sent' ? 'sent' : 'rejected'] += n;
        this.#backoffMs = 0;
        if (this.#queue.length >= this.opts.maxBatchSize || (this.#closing && this.#queue.length > 0)) this.#pump(true);
        else if (this.#queue.length > 0 && !this.#closing) this.#arm(this.opts.maxBatchWaitMs);
      }
      if (!this.#sending) {
        this.#idle?.();
        this.#idle = undefined;
      }
    });
  }

  async #post(lines: readonly string[]): Promise<'sent' | 'rejected' | 'retry'> {
    try {
      const res = await undici().request(this.#target.url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { 'content-type': 'application/json', ...(this.#target.token !== undefined ? { authorization: `Bearer ${this.#target.token}` } : {}) },
        body: `${EVENT_LIST_HEAD}${lines.join(',')}]}`,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return 'sent';
      if (res.statusCode === 429 || res.statusCode >= 500) {
        this.onError(`audit webhook answered ${res.statusCode}; retrying`);
        return 'retry';
      }
      this.onError(`audit webhook refused a batch of ${lines.length} records with ${res.statusCode}; not retried`);
      return 'rejected';
    } catch (err) {
      this.onError(`audit webhook unreachable (${(err as Error).message}); retrying`);
      return 'retry';
    }
  }
}

/**
 * Reads a kubeconfig-format webhook file as kube-apiserver does: the current context (or the only
 * one) names the cluster (`server`, `certificate-authority[-data]`) and the user
 * (`client-certificate[-data]` + `client-key[-data]`, or `token` / `tokenFile`); relative paths
 * are relative to the file. Anything it cannot use is an error that names the file.
 */
export function readWebhookTarget(file: string): WebhookTarget {
  const fail = (what: string): never => {
    throw new Error(`${file}: ${what}`);
  };
  let doc: Record<string, unknown>;
  try {
    doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
  } catch (err) {
    return fail(`not a readable kubeconfig (${(err as Error).message})`);
  }
  const named = (key: string, inner: string, name: string | undefined): Record<string, unknown> | undefined => {
    const list = Array.isArray(doc[key]) ? (doc[key] as { name?: string }[]) : [];
    const hit = name === undefined ? (list.length === 1 ? list[0] : undefined) : list.find((e) => e.name === name);
    return hit ? ((hit as Record<string, unknown>)[inner] as Record<string, unknown> | undefined) : undefined;
  };
  const context = named('contexts', 'context', typeof doc['current-context'] === 'string' && doc['current-context'] !== '' ? doc['current-context'] : undefined);
  const cluster = named('clusters', 'cluster', context?.cluster as string | undefined) ?? fail('no cluster for the current context');
  const user = named('users', 'user', context?.user as string | undefined) ?? {};
  const base = dirname(resolve(file));
  const material = (data: unknown, path: unknown): string | undefined => {
    if (typeof data === 'string') return Buffer.from(data, 'base64').toString('utf8');
    if (typeof path === 'string') return readFileSync(resolve(base, path), 'utf8');
    return undefined;
  };
  const server = typeof cluster.server === 'string' ? cluster.server : fail('the cluster has no server');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return fail(`server ${server} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`server ${server} is neither https nor http`);
  // Audit records name people and what they did: in plain HTTP only to this very machine.
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) fail(`server ${server}: plain http only to a loopback address; use https`);
  if (cluster['insecure-skip-tls-verify'] === true) fail('insecure-skip-tls-verify is not supported: give certificate-authority');
  const ca = material(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = material(user['client-certificate-data'], user['client-certificate']);
  const key = material(user['client-key-data'], user['client-key']);
  if ((cert === undefined) !== (key === undefined)) fail('a client certificate needs its key, and a key its certificate');
  const token = typeof user.token === 'string' ? user.token : typeof user.tokenFile === 'string' ? readFileSync(resolve(base, user.tokenFile), 'utf8').trim() : undefined;
  return { url: url.toString(), ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert, key: key as string } : {}), ...(token !== undefined ? { token } : {}) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The webhook's counts on the proxy's registry, read at scrape time:
 * `portcullis_audit_webhook_records_total{result=sent|dropped|rejected}`,
 * `portcullis_audit_webhook_failed_posts_total` and `portcullis_audit_webhook_buffered_records`.
 */
export function exportWebhookMetrics(webhook: AuditWebhook, registry: Registry): void {
  const seen = { sent: 0, dropped: 0, rejected: 0, failures: 0 };
  const registers = [registry];
  const failed = new Counter({ name: 'portcullis_audit_webhook_failed_posts_total', help: 'Audit webhook POSTs that failed and were retried', registers });
  new Counter({
    name: 'portcullis_audit_webhook_records_total',
    help: 'Audit records by webhook result: sent, dropped (the buffer was full), rejected (a 4xx other than 429)',
    labelNames: ['result'],
    registers,
    collect() {
      const n = webhook.counts;
      for (const result of ['sent', 'dropped', 'rejected'] as const) {
        this.inc({ result }, n[result] - seen[result]);
        seen[result] = n[result];
      }
      failed.inc(n.failures - seen.failures);
      seen.failures = n.failures;
    },
  });
  new Gauge({
    name: 'portcullis_audit_webhook_buffered_records',
    help: 'Audit records waiting for the webhook',
    registers,
    collect() {
      this.set(webhook.counts.buffered);
    },
  });
}
