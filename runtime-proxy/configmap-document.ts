import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { configMapUrl } from './kube-api.ts';

/** How to reach one ConfigMap that replicas share. */
export interface ConfigMapLocation {
  readonly serverUrl: string;
  readonly ca: Buffer;
  /** A token allowed only `get` and `update` on this one ConfigMap (resourceNames); it must exist. */
  readonly tokenFile: string;
  readonly namespace: string;
  readonly name: string;
}

interface ConfigMapObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: unknown;
  readonly data?: Record<string, string>;
}

const MAX_CONFLICTS = 5;

/**
 * One ConfigMap as a small shared document of string entries, read and updated by several
 * proxy replicas. An update sends back the resourceVersion it read, so two replicas never
 * overwrite each other: on 409 it reads again and re-applies the change (optimistic concurrency).
 */
export class ConfigMapDocument {
  constructor(readonly loc: ConfigMapLocation) {}

  /** The ConfigMap's data entries. */
  async read(): Promise<Readonly<Record<string, string>>> {
    return (await this.#get()).data ?? {};
  }

  /**
   * Applies `change` to the current entries and writes the result; `change` returns undefined
   * when nothing needs writing. Retries on conflicts; rejects when it could not be written.
   */
  async update(change: (data: Readonly<Record<string, string>>) => Record<string, string> | undefined): Promise<void> {
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const cm = await this.#get();
      const data = change(cm.data ?? {});
      if (data === undefined) return;
      const status = await this.#request('PUT', JSON.stringify({ ...cm, data }));
      if (status.code === 200) return;
      if (status.code !== 409) throw new Error(`updating ConfigMap ${this.#label()}: HTTP ${status.code}`);
    }
    throw new Error(`updating ConfigMap ${this.#label()}: too many conflicts`);
  }

  #label(): string {
    return `${this.loc.namespace}/${this.loc.name}`;
  }

  async #get(): Promise<ConfigMapObject> {
    const r = await this.#request('GET');
    if (r.code !== 200) throw new Error(`reading ConfigMap ${this.#label()}: HTTP ${r.code}`);
    return JSON.parse(r.body) as ConfigMapObject;
  }

  #request(method: 'GET' | 'PUT', body?: string): Promise<{ code: number; body: string }> {
    const token = readFileSync(this.loc.tokenFile, 'utf8').trim();
    const url = configMapUrl(this.loc.serverUrl, this.loc.namespace, this.loc.name);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method, ca: this.loc.ca, timeout: 5000, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
