import { readFileSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { isCommitId, POLICY_COMMIT_ANNOTATION } from '../core/bundle.ts';
import type { BundleSourceConfig } from './config.ts';
import { configMapUrl } from './kube-api.ts';

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
      const url = configMapUrl(cm.serverUrl, src.namespace, src.name);
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
 * for directories, a Kubernetes watch of the one ConfigMap for ConfigMap
 * sources (so a new bundle, a revocation, is loaded within moments of its
 * delivery), plus a periodic poll for every kind, should a watch miss or fail.
 * Returns a stop function.
 */
export function watchBundleSource(src: BundleSourceConfig, onChange: () => void, cm?: ConfigMapEndpoint, onWatchState?: (state: WatchState) => void): () => void {
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  const stopConfigMap = src.kind === 'configMap' && cm !== undefined ? watchConfigMap(src, cm, onChange, onWatchState ?? (() => {})) : undefined;
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
    stopConfigMap?.();
    if (debounce) clearTimeout(debounce);
    clearInterval(poll);
  };
}

/** A ConfigMap watch started (`watching`) or failed and will retry (`failed`, with why); reported on changes only. */
export type WatchState = { readonly state: 'watching' } | { readonly state: 'failed'; readonly why: string; readonly retryInMs: number };

const WATCH_RETRY_MIN_MS = 1000;
const WATCH_RETRY_MAX_MS = 30_000;

/**
 * Watches the bundle's ConfigMap (a watch narrowed to its name, which the reader's Role allows
 * through resourceNames) and calls `onChange` for every event; the reload that follows reads the
 * ConfigMap and verifies it as always. Each (re)connection starts with the object's current
 * state, so nothing is missed between connections. Reconnects when the server ends the watch,
 * with backoff on errors (a reader without `watch` falls back to the poll).
 */
function watchConfigMap(src: Extract<BundleSourceConfig, { kind: 'configMap' }>, cm: ConfigMapEndpoint, onChange: () => void, onState: (state: WatchState) => void): () => void {
  let stopped = false;
  let reported: string | undefined;
  const report = (state: WatchState): void => {
    const key = state.state === 'failed' ? `failed:${state.why}` : state.state;
    if (key === reported) return;
    reported = key;
    onState(state);
  };
  let current: ReturnType<typeof https.get> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let backoff = WATCH_RETRY_MIN_MS;
  const again = (delay: number): void => {
    current = undefined;
    if (stopped) return;
    timer = setTimeout(() => void connect(), delay);
    timer.unref();
  };
  const connect = async (): Promise<void> => {
    let token: string;
    try {
      token = (await readFile(src.tokenFile, 'utf8')).trim();
    } catch (err) {
      backoff = Math.min(backoff * 2, WATCH_RETRY_MAX_MS);
      report({ state: 'failed', why: `token: ${(err as Error).message}`, retryInMs: backoff });
      again(backoff);
      return;
    }
    if (stopped) return;
    const selector = encodeURIComponent(`metadata.name=${src.name}`);
    const url = configMapUrl(cm.serverUrl, src.namespace, undefined, `watch=1&fieldSelector=${selector}&timeoutSeconds=600`);
    let done = false;
    const end = (ok: boolean, why = 'connection closed'): void => {
      if (done) return;
      done = true;
      if (ok) backoff = WATCH_RETRY_MIN_MS;
      else {
        backoff = Math.min(backoff * 2, WATCH_RETRY_MAX_MS);
        report({ state: 'failed', why, retryInMs: backoff });
      }
      again(ok ? WATCH_RETRY_MIN_MS : backoff);
    };
    const req = https.get(url, { ca: cm.ca, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        end(false, `HTTP ${res.statusCode ?? '?'}`);
        return;
      }
      report({ state: 'watching' });
      let pending = 0;
      res.on('data', (chunk: Buffer) => {
        // One JSON event per line; what matters is that one arrived.
        for (const b of chunk) if (b === 0x0a) onChange();
        pending += chunk.length;
        if (pending > MAX_FILE_BYTES * 4) req.destroy(new Error('watch stream too large'));
      });
      res.on('end', () => end(true));
      res.on('error', (err) => end(false, err.message));
    });
    req.on('socket', (sock) => sock.setKeepAlive(true, 30_000));
    req.on('error', (err) => end(false, err.message));
    req.on('close', () => end(false));
    current = req;
  };
  void connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    current?.destroy();
  };
}
