import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The console page's own defences, in one place (SECURITY rules 28-31): its cookies, the CSRF
 * token, the Origin check and the Content-Security-Policy. Pure apart from the random nonce.
 */

/** Where the console lives on the proxy's listener. */
export const CONSOLE_PREFIX = '/console';
/** The session cookie: the Portcullis session credential, never readable by script. */
export const SESSION_COOKIE = 'portcullis_console';
/** The sign-in cookie: names the server-side PKCE state of a sign-in in progress (no credential). */
export const LOGIN_COOKIE = 'portcullis_console_login';
/** The header every state-changing call carries the CSRF token in. */
export const CSRF_HEADER = 'x-portcullis-csrf';

/**
 * The session cookie: HttpOnly (script cannot read it), Secure (https only), SameSite=Strict
 * (no cross-site request carries it), Path=/console (the cluster API paths never see it).
 */
export function sessionCookie(credential: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${credential}; HttpOnly; Secure; SameSite=Strict; Path=${CONSOLE_PREFIX}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`;
}

/** Clears the session cookie (logout). */
export const clearSessionCookie = `${SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=${CONSOLE_PREFIX}; Max-Age=0`;

/**
 * The sign-in cookie: SameSite=Lax, since the identity provider sends the person back with a
 * top-level cross-site navigation, which a Strict cookie would not survive. It holds only the
 * random key of the server-side state; the PKCE verifier never leaves the proxy.
 */
export function loginCookie(key: string): string {
  return `${LOGIN_COOKIE}=${key}; HttpOnly; Secure; SameSite=Lax; Path=${CONSOLE_PREFIX}/callback; Max-Age=600`;
}
export const clearLoginCookie = `${LOGIN_COOKIE}=; HttpOnly; Secure; SameSite=Lax; Path=${CONSOLE_PREFIX}/callback; Max-Age=0`;

/** A cookie's value from the request's Cookie headers; undefined when absent or given twice (ambiguous). */
export function cookieValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const raw = headers.cookie;
  const all = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).flatMap((h) => h.split(';'));
  const found = all.map((c) => c.trim()).filter((c) => c.startsWith(`${name}=`));
  if (found.length !== 1) return undefined;
  const v = (found[0] ?? '').slice(name.length + 1);
  return v === '' ? undefined : v;
}

/**
 * The CSRF token of a session: an HMAC of the session credential under the replicas' shared
 * session key, so every replica derives the same token and no store is needed. The page reads
 * it from /console/api/me (same-origin only, by CSP and CORS defaults) and sends it back in
 * {@link CSRF_HEADER}; another site can neither read it nor set the header cross-origin.
 */
export function csrfToken(key: Buffer, credential: string): string {
  return createHmac('sha256', key).update(`portcullis-console-csrf\0${credential}`).digest('base64url');
}

/** Whether `given` is the session's CSRF token (constant time). */
export function csrfMatches(key: Buffer, credential: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const want = Buffer.from(csrfToken(key, credential));
  const got = Buffer.from(given);
  return want.length === got.length && timingSafeEqual(want, got);
}

/**
 * Whether the request comes from the console's own origin: `Origin` must be present and name
 * the host the request came to, over https. Browsers send Origin on every POST/DELETE and on
 * every WebSocket handshake, so a missing one is refused too (fail closed): this is what stops
 * cross-site WebSocket hijacking, which no SameSite cookie alone prevents in every browser.
 */
export function sameOrigin(headers: IncomingHttpHeaders): boolean {
  const origin = headers.origin;
  const host = headers[':authority'] ?? headers.host;
  if (typeof origin !== 'string' || typeof host !== 'string') return false;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  return o.protocol === 'https:' && o.host.toLowerCase() === host.toLowerCase() && o.pathname === '/' && origin === o.origin;
}

/** A fresh nonce for one page's style elements (xterm.js makes its own <style> elements at run time). */
export function styleNonce(): string {
  return randomBytes(16).toString('base64');
}

/**
 * The Content-Security-Policy of every console response: only the console's own scripts (no
 * inline script, no eval), styles from the console or carrying this response's nonce (xterm.js
 * creates <style> elements; the page's loader gives them the nonce), connections only to the
 * proxy, no framing, no base URI, forms only to the proxy.
 */
export function contentSecurityPolicy(nonce?: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self'${nonce !== undefined ? ` 'nonce-${nonce}'` : ''}`,
    "connect-src 'self'",
    "img-src 'self'",
    "font-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
}

/** Headers every console response carries. */
export function securityHeaders(nonce?: string): Record<string, string> {
  return {
    'content-security-policy': contentSecurityPolicy(nonce),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': 'no-store',
  };
}
