/**
 * Upstream request headers (SECURITY rule 6). Built from an allow-list of
 * client headers, never by deleting from the client's set; then the proxy's
 * own credential, impersonation and Audit-ID are set last, replacing anything.
 */

/** Client headers that may pass upstream (lower case). Everything else is dropped. */
const ALLOWED = new Set([
  'accept',
  'accept-encoding',
  'accept-language',
  'content-type',
  'content-encoding',
  'content-length',
  'user-agent',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'kubectl-command',
  'kubectl-session',
  'x-stream-protocol-version',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  // Not sec-websocket-extensions: without it no extension (permessage-deflate) is negotiated, so
  // the frames of an exec or attach session are plain and its recording can read them.
  'traceparent',
  'tracestate',
]);

/** Never forwarded even if someone adds them to the allow-list (checked again, by prefix where it applies). */
const FORBIDDEN_PREFIXES = ['impersonate-', 'x-remote-', 'x-forwarded-'];
const FORBIDDEN = new Set(['authorization', 'audit-id', 'proxy-authorization', 'forwarded', 'cookie']);
/** RFC 9110 §7.6.1 hop-by-hop headers, plus the legacy ones proxies drop. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'host']);

/** The WebSocket subprotocol entry that carries a bearer token (kubectl / client-go). */
export const BEARER_SUBPROTOCOL_PREFIX = 'base64url.bearer.authorization.k8s.io.';

/** What the proxy asserts upstream for one request. */
export interface UpstreamIdentity {
  /** `Bearer …` from the proxy's own credential, or absent with client-certificate upstream auth. */
  readonly authorization?: string | undefined;
  readonly user: string;
  readonly groups: readonly string[];
  readonly extra: Readonly<Record<string, string>>;
  readonly auditId: string;
}

/** Upstream header map for node:http(s).request; arrays become repeated header lines. */
export type UpstreamHeaders = Record<string, string | string[]>;

/**
 * Builds upstream headers from the client's raw header list (name, value, name, value …).
 * `upgrade` is the protocol for upgrade requests (the proxy sets Connection/Upgrade itself).
 */
export function buildUpstreamHeaders(rawHeaders: readonly string[], who: UpstreamIdentity, upgrade?: string): UpstreamHeaders {
  // Headers the client's Connection header nominates are hop-by-hop too (rare: a set only when there is one).
  let nominated: Set<string> | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i] ?? '';
    if (raw.length !== CONNECTION.length || raw.toLowerCase() !== CONNECTION) continue;
    nominated ??= new Set();
    for (const t of (rawHeaders[i + 1] ?? '').split(',')) nominated.add(t.trim().toLowerCase());
  }
  const out: UpstreamHeaders = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    if (!ALLOWED.has(name) || nominated?.has(name) || HOP_BY_HOP.has(name) || FORBIDDEN.has(name) || hasForbiddenPrefix(name)) continue;
    let value = rawHeaders[i + 1] ?? '';
    if (name === 'sec-websocket-protocol') {
      value = value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '' && !s.startsWith(BEARER_SUBPROTOCOL_PREFIX))
        .join(', ');
      if (value === '') continue;
    }
    const prev = out[name];
    out[name] = prev === undefined ? value : `${String(prev)}, ${value}`;
  }
  if (upgrade !== undefined) {
    out['connection'] = 'Upgrade';
    out['upgrade'] = upgrade;
  }
  // Set, never append: these keys were not copied above, and each is assigned once.
  if (who.authorization !== undefined) out['authorization'] = who.authorization;
  out['impersonate-user'] = utf8Header(who.user);
  if (who.groups.length > 0) out['impersonate-group'] = who.groups.map(utf8Header);
  for (const k in who.extra) out[`impersonate-extra-${encodeExtraKey(k)}`] = utf8Header(who.extra[k] as string);
  out['audit-id'] = who.auditId;
  return out;
}

const CONNECTION = 'connection';

function hasForbiddenPrefix(name: string): boolean {
  for (const p of FORBIDDEN_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}

/**
 * Node writes header strings as latin1; kube-apiserver (Go) reads header bytes
 * as UTF-8. Passing the UTF-8 bytes as a latin1 string makes a non-ASCII name
 * arrive intact (identity for ASCII). Control characters never get here: the
 * authenticate stage refuses names that contain them.
 */
export function utf8Header(v: string): string {
  return ASCII.test(v) ? v : Buffer.from(v, 'utf8').toString('latin1');
}

const ASCII = /^[\x00-\x7f]*$/;
const extraKeys = new Map<string, string>();

/** Percent-encodes an extra key the way kube-apiserver's unescapeExtraKey expects (e.g. `portcullis.dev%2fgrant`). */
export function encodeExtraKey(key: string): string {
  // The proxy's extra keys are a handful of constants: encode each once.
  let e = extraKeys.get(key);
  if (e === undefined) {
    e = encodeURIComponent(key.toLowerCase()).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    if (extraKeys.size < 64) extraKeys.set(key, e);
  }
  return e;
}

/**
 * Response headers to relay to the client: without hop-by-hop ones (HTTP/2
 * forbids them outright) and without HTTP/2 pseudo-headers (`:status`), with
 * numbers as strings. One pass, since it runs for every response.
 */
export function filterResponseHeaders(headers: Readonly<Record<string, string | string[] | number | undefined>>): Record<string, string | string[]> {
  const connection = headers['connection'];
  const nominated = connection === undefined ? undefined : new Set(String(connection).split(',').map((s) => s.trim().toLowerCase()));
  const out: Record<string, string | string[]> = {};
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(k) || nominated?.has(k)) continue;
    out[k] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}
