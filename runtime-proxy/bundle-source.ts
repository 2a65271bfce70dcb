import { readFileSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { isCommitId, POLICY_COMMIT_ANNOTATION } from '../core/bundle.ts';
import type { BundleSourceConfig } from './config.ts';

/** The files of a bundle as fetched from its source, before any verification. */
export type BundleFiles = ReadonlyMap<string, Uint8Array>;

/** What a source delivered: the files, and the git commit `apply` says they came from (ConfigMap only). */
export interface FetchedBundle {
  readonly files: BundleFiles;
  /** From the ConfigMap's portcullis.dev/policy-commit annotation, when it is a full commit id. Unsigned. */
  readonly commit?: string;
}

/** The three files a bundle consists of (design.md); URL sources fetch exactly these. */
const URL_FILES = ['bundle.sig.json', 'rbac.yaml', 'rules.json'] as const;
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** Where the ConfigMap source talks to: the cluster's API server with a read-only token. */
export interface ConfigMapEndpoint {
  readonly serverUrl: string;
  readonly ca: Buffer;
}

/** Fetches the current files of a bundle source. */
export async function fetchBundle(src: BundleSourceConfig, cm?: ConfigMapEndpoint): Promise<FetchedBundle> {
  switch (src.kind) {
    case 'directory':
      return { files: readDirectory(src.path) };
    case 'url': {
      const ca = src.caFile !== undefined ? await readFile(src.caFile) : undefined;
      const out = new Map<string, Uint8Array>();
      const base = src.url.endsWith('/') ? src.url : `${src.url}/`;
      for (const name of URL_FILES) out.set(name, await httpsGet(new URL(name, base), ca, {}));
      return { files: out };
    }
    case 'configMap': {
      if (cm === undefined) throw new Error('no API server for the ConfigMap bundle source');
      const token = (await readFile(src.tokenFile, 'utf8')).trim();
      const url = new URL(`api/v1/namespaces/${encodeURIComponent(src.namespace)}/configmaps/${encodeURIComponent(src.name)}`, withSlash(cm.serverUrl));
      const body = JSON.parse(Buffer.from(await httpsGet(url, cm.ca, { authorization: `Bearer ${token}` })).toString('utf8')) as {
        metadata?: { annotations?: Record<string, unknown> };
        data?: Record<string, string>;
        binaryData?: Record<string, string>;
      };
      const out = new Map<string, Uint8Array>();
      for (const [k, v] of Object.entries(body.data ?? {})) out.set(k, Buffer.from(v, 'utf8'));
      for (const [k, v] of Object.entries(body.binaryData ?? {})) out.set(k, Buffer.from(v, 'base64'));
      // Anything but a full commit id is ignored: the value goes into every audit record verbatim.
      const commit = body.metadata?.annotations?.[POLICY_COMMIT_ANNOTATION];
      return isCommitId(commit) ? { files: out, commit } : { files: out };
    }
    default:
      throw new Error('unknown bundle source');
  }
}

function withSlash(u: string): string {
  return u.endsWith('/') ? u : `${u}/`;
}

function readDirectory(dir: string): BundleFiles {
  const out = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue; // editors' and atomic-rename temporaries
    const p = join(dir, name);
    const st = statSync(p);
    if (!st.isFile()) continue;
    if (st.size > MAX_FILE_BYTES) throw new Error(`${name} is larger than ${MAX_FILE_BYTES} bytes`);
    out.set(name, readFileSync(p));
  }
  return out;
}

function httpsGet(url: URL, ca: Buffer | undefined, headers: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...(ca ? { ca } : {}), headers, timeout: 10_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url.pathname}: HTTP ${res.statusCode ?? '?'}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_FILE_BYTES) req.destroy(new Error(`${url.pathname} is too large`));
        else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: timed out`)));
    req.on('error', reject);
  });
}

/**
 * Calls `onChange` when a bundle source may have changed: fs.watch (debounced)
 * for directories, plus a periodic poll for every kind. Returns a stop function.
 */
export function watchBundleSource(src: BundleSourceConfig, onChange: () => void): () => void {
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  if (src.kind === 'directory') {
    try {
      watcher = watch(src.path, () => {
        if (debounce) clearTimeout(debounce);
        debounce = setTimeout(onChange, 50);
      });
      watcher.on('error', () => undefined); // the poll still runs
    } catch {
      // the directory may not exist yet; the poll picks it up
    }
  }
  const poll = setInterval(onChange, src.pollIntervalMs);
  poll.unref();
  return () => {
    watcher?.close();
    if (debounce) clearTimeout(debounce);
    clearInterval(poll);
  };
}
