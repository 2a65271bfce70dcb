/**
 * The canonical-target check (SECURITY.md rule 2: authorize and forward the
 * same bytes). A request target either is in the one canonical shape that
 * kube-apiserver and this proxy read identically, or it is refused with 400;
 * nothing is ever normalised.
 */

/** Why a request target was refused; tests assert these codes. */
export type RequestTargetCode =
  | 'NOT_ORIGIN_FORM'
  | 'FRAGMENT'
  | 'BAD_CHARACTER'
  | 'BACKSLASH'
  | 'EMPTY_SEGMENT'
  | 'DOT_SEGMENT'
  | 'BAD_ESCAPE'
  | 'ENCODED_SEPARATOR'
  | 'ENCODED_UNRESERVED'
  | 'INVALID_UTF8'
  | 'CONTROL_CHARACTER'
  | 'QUERY_SEMICOLON'
  | 'REPEATED_PARAMETER';

/** The outcome of `checkRequestTarget`. */
export type RequestTargetResult =
  | { readonly ok: true; readonly path: string; readonly query: URLSearchParams }
  | { readonly ok: false; readonly code: RequestTargetCode; readonly reason: string };

/** Parameters whose repetition could make the proxy and kube-apiserver (or its handlers) read different values. */
const SINGLE_PARAMETERS: readonly string[] = ['watch', 'fieldSelector', 'labelSelector'];

/**
 * Query parameters NewRequestInfo or the list machinery read: no control
 * characters at all there. Other values (an exec `command`) may carry tabs and
 * newlines, which are data forwarded in their encoded form; NUL never.
 */
const PARSED_PARAMETERS: ReadonlySet<string> = new Set([
  'watch', 'fieldSelector', 'labelSelector', 'limit', 'timeoutSeconds', 'resourceVersion',
  'resourceVersionMatch', 'continue', 'sendInitialEvents', 'allowWatchBookmarks',
]);

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const fail = (code: RequestTargetCode, reason: string): RequestTargetResult => ({ ok: false, code, reason });

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * Checks one percent-encoded component (a path segment, or a query key or
 * value with `+` already turned into a space) and decodes it as Go's
 * url.PathUnescape / url.QueryUnescape would. An encoded `/` or `\` is refused
 * in the path only: in the query it is ordinary data (kubectl sends
 * `labelSelector=app.kubernetes.io%2Fname%3Dweb`).
 */
function decodeComponent(raw: string, where: 'path' | 'query'): { ok: true; value: string } | { ok: false; result: RequestTargetResult } {
  // Most components have no escape at all: nothing to check or decode.
  if (raw.indexOf('%') === -1) return { ok: true, value: raw };
  for (let i = raw.indexOf('%'); i !== -1; i = raw.indexOf('%', i + 1)) {
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
      return { ok: false, result: fail('BAD_ESCAPE', `invalid % escape in the ${where}`) };
    }
    const byte = String.fromCharCode(parseInt(hex, 16));
    if (where === 'path' && (byte === '/' || byte === '\\')) {
      return { ok: false, result: fail('ENCODED_SEPARATOR', `encoded '/' or '\\' in the ${where}`) };
    }
    if (UNRESERVED.test(byte)) {
      // RFC 3986 §2.3: %2e and friends mean the same as the plain character; refuse, never normalise.
      return { ok: false, result: fail('ENCODED_UNRESERVED', `percent-encoded unreserved character in the ${where}`) };
    }
  }
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    return { ok: false, result: fail('INVALID_UTF8', `percent-encoding that is not UTF-8 in the ${where}`) };
  }
  return { ok: true, value };
}

/**
 * Checks the raw request-target exactly as it came off the wire (Node's
 * `req.url`) and returns the decoded path and query to parse with
 * `parseRequestInfo`.
 *
 * Contract: the proxy authorizes what this returns and forwards **exactly the
 * raw bytes it passed in** — never a re-serialisation of `path` or `query`.
 * That is sound because every accepted target decodes the same way here as in
 * kube-apiserver (Go's `url.ParseRequestURI`, `URL.Path`, `URL.Query()`):
 * only origin-form (`/…`) targets; printable ASCII only (no controls, spaces,
 * raw non-ASCII, `#` fragments or raw `\`); in the path no empty segment (so no
 * `//`, no `/namespaces//pods`, which kube reads as cluster-wide, and no
 * trailing slash: NewRequestInfo's splitPath trims it, but other layers need
 * not), no `.`/`..` segment, no encoded `/` or `\`, no percent-encoded
 * unreserved character (so no `%2e`), only valid `%XX` escapes of UTF-8; in
 * the query no `;` (Go drops such pairs, URLSearchParams keeps them), the same
 * escape rules (an encoded `/` is data there), no NUL, no control character
 * in a key or in a parameter the list machinery reads, and no repeated
 * `watch`, `fieldSelector` or `labelSelector`.
 * Kubernetes object names never contain any of these.
 *
 * Observed against the real kube-apiserver v1.34.4: `/api/v1/pods/` and
 * `/api/v1/namespaces/default/serviceaccounts//` are served as lists (splitPath
 * trims the slashes), `/api/v1/namespaces//pods` as the cluster-wide pod list,
 * `/api/v1/namespaces/%2e%2e/pods` as pods of a namespace named `..`. Every
 * target kubectl v1.34.4 sends (test/core/fixtures/requestinfo-kubectl-targets.txt)
 * is accepted.
 */
export function checkRequestTarget(rawTarget: string): RequestTargetResult {
  if (!rawTarget.startsWith('/')) {
    return fail('NOT_ORIGIN_FORM', 'only origin-form request targets ("/path?query") are accepted');
  }
  if (rawTarget.includes('#')) return fail('FRAGMENT', 'a request target carries no fragment');
  if (rawTarget.includes('\\')) return fail('BACKSLASH', 'backslash in the request target');
  for (let i = 0; i < rawTarget.length; i++) {
    const c = rawTarget.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return fail('BAD_CHARACTER', 'the request target must be printable ASCII');
  }

  const q = rawTarget.indexOf('?');
  const rawPath = q === -1 ? rawTarget : rawTarget.slice(0, q);
  const rawQuery = q === -1 ? '' : rawTarget.slice(q + 1);

  const decoded: string[] = [];
  if (rawPath !== '/') {
    for (const segment of rawPath.slice(1).split('/')) {
      if (segment === '') return fail('EMPTY_SEGMENT', 'empty path segment (// or a trailing slash)');
      const d = decodeComponent(segment, 'path');
      if (!d.ok) return d.result;
      if (d.value === '.' || d.value === '..') return fail('DOT_SEGMENT', "'.' or '..' path segment");
      if (CONTROL.test(d.value)) return fail('CONTROL_CHARACTER', 'control character in the path');
      decoded.push(d.value);
    }
  }

  if (rawQuery.includes(';')) return fail('QUERY_SEMICOLON', "';' in the query");
  const query = new URLSearchParams();
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue; // skipped by Go and URLSearchParams alike
    const eq = pair.indexOf('=');
    const rawKey = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const key = decodeComponent(rawKey.replaceAll('+', ' '), 'query');
    if (!key.ok) return key.result;
    const value = decodeComponent(rawValue.replaceAll('+', ' '), 'query');
    if (!value.ok) return value.result;
    if (CONTROL.test(key.value) || value.value.includes('\u0000') || (PARSED_PARAMETERS.has(key.value) && CONTROL.test(value.value))) {
      return fail('CONTROL_CHARACTER', 'control character in the query');
    }
    if (SINGLE_PARAMETERS.includes(key.value) && query.has(key.value)) {
      return fail('REPEATED_PARAMETER', `repeated query parameter ${key.value}`);
    }
    query.append(key.value, value.value);
  }

  return { ok: true, path: '/' + decoded.join('/'), query };
}
