import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { fetch, type Dispatcher } from 'undici';
import { LoginError } from './login-error.ts';

/** What the identity provider's discovery document says, as far as login needs it. */
export interface Discovery {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly device_authorization_endpoint?: string;
}

/** How to reach the identity provider. */
export interface IdpClient {
  readonly issuer: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly dispatcher?: Dispatcher;
}

/** Reads `<issuer>/.well-known/openid-configuration` and checks it names the same issuer. */
export async function discover(c: IdpClient): Promise<Discovery> {
  if (!c.issuer.startsWith('https://')) throw new LoginError('BAD_INPUT', `${c.issuer}: the identity provider must be reached over https`);
  const d = (await getJson(`${c.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, c.dispatcher)) as Partial<Discovery>;
  if (d.issuer !== c.issuer || typeof d.authorization_endpoint !== 'string' || typeof d.token_endpoint !== 'string') {
    throw new LoginError('IDP', `${c.issuer}: the discovery document does not describe this issuer`);
  }
  return d as Discovery;
}

/**
 * Authorization code with PKCE (RFC 7636, S256) through the browser, with a loopback redirect
 * (RFC 8252 §7.3: `http://127.0.0.1:PORT/callback`, the port chosen now). `show` gets the URL to
 * open; the promise resolves with the ID token once the browser comes back with a code whose
 * `state` is ours, exchanged together with the verifier (so a code taken on the way is useless).
 */
export async function loginWithBrowser(c: IdpClient, d: Discovery, show: (url: string) => void, timeoutMs = 300_000): Promise<string> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  const nonce = randomBytes(16).toString('base64url');
  let server: Server | undefined;
  try {
    const got = new Promise<{ code: string; redirectUri: string }>((resolve, reject) => {
      server = createServer((req, res) => {
        const u = new URL(req.url ?? '/', 'http://127.0.0.1');
        if (u.pathname !== '/callback') {
          res.writeHead(404).end();
          return;
        }
        const error = u.searchParams.get('error');
        const ok = error === null && u.searchParams.get('state') === state && u.searchParams.get('code');
        res.writeHead(ok ? 200 : 400, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(ok ? 'Signed in to Portcullis. You can close this window.\n' : 'Sign-in failed; see the terminal.\n');
        if (error !== null) reject(new LoginError('IDP', `the identity provider refused: ${error} ${u.searchParams.get('error_description') ?? ''}`.trim()));
        else if (u.searchParams.get('state') !== state) reject(new LoginError('IDP', 'the browser came back with a state this login did not send'));
        else resolve({ code: u.searchParams.get('code') ?? '', redirectUri: `http://127.0.0.1:${(server?.address() as AddressInfo).port}/callback` });
      });
      server.listen(0, '127.0.0.1', () => {
        const redirectUri = `http://127.0.0.1:${(server?.address() as AddressInfo).port}/callback`;
        const url = new URL(d.authorization_endpoint);
        for (const [k, v] of Object.entries({ response_type: 'code', client_id: c.clientId, redirect_uri: redirectUri, scope: c.scopes.join(' '), state, nonce, code_challenge: challenge, code_challenge_method: 'S256' })) url.searchParams.set(k, v);
        show(url.href);
      });
      setTimeout(() => reject(new LoginError('TIMEOUT', `no sign-in within ${timeoutMs / 1000} s`)), timeoutMs).unref();
    });
    const { code, redirectUri } = await got;
    const t = await postForm(d.token_endpoint, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: c.clientId, code_verifier: verifier }, c.dispatcher);
    const token = idToken(t);
    // The ID token must answer this login (OpenID Connect Core §3.1.3.7): its nonce is ours.
    if (decodeJwt(token).nonce !== nonce) throw new LoginError('IDP', 'the ID token does not carry the nonce this login sent');
    return token;
  } finally {
    server?.closeAllConnections();
    server?.close();
  }
}

/** The device authorization grant (RFC 8628): `show` tells the person where to go and which code to type; polls until they have. */
export async function loginWithDevice(c: IdpClient, d: Discovery, show: (verificationUri: string, userCode: string, complete: string | undefined) => void, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<string> {
  if (d.device_authorization_endpoint === undefined) throw new LoginError('IDP', `${c.issuer} offers no device authorization endpoint; log in with a browser instead`);
  const a = (await postForm(d.device_authorization_endpoint, { client_id: c.clientId, scope: c.scopes.join(' ') }, c.dispatcher)) as { device_code?: string; user_code?: string; verification_uri?: string; verification_uri_complete?: string; interval?: number; expires_in?: number };
  if (typeof a.device_code !== 'string' || typeof a.user_code !== 'string' || typeof a.verification_uri !== 'string') throw new LoginError('IDP', 'the device authorization response lacks device_code, user_code or verification_uri');
  show(a.verification_uri, a.user_code, a.verification_uri_complete);
  let interval = (a.interval ?? 5) * 1000;
  for (;;) {
    await sleep(interval);
    const r = await postForm(d.token_endpoint, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: a.device_code, client_id: c.clientId }, c.dispatcher, true);
    const error = (r as { error?: string }).error;
    if (error === undefined) return idToken(r);
    if (error === 'authorization_pending') continue;
    if (error === 'slow_down') interval += 5000;
    else if (error === 'expired_token') throw new LoginError('EXPIRED', 'the device code expired before sign-in finished; run portcullis login again');
    else if (error === 'access_denied') throw new LoginError('IDP', 'sign-in was refused at the identity provider');
    else throw new LoginError('IDP', `the identity provider refused: ${error}`);
  }
}

function idToken(t: unknown): string {
  const id = (t as { id_token?: unknown }).id_token;
  if (typeof id !== 'string') throw new LoginError('IDP', 'the token response has no id_token (is the openid scope allowed for this client?)');
  return id;
}

async function getJson(url: string, dispatcher: Dispatcher | undefined): Promise<unknown> {
  let r;
  try {
    r = await fetch(url, dispatcher ? { dispatcher } : {});
  } catch (err) {
    throw new LoginError('UNREACHABLE', `${url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  if (!r.ok) throw new LoginError('IDP', `${url}: ${r.status}`);
  return r.json();
}

/** POSTs a form; an OAuth error body is returned when `errorsAreAnswers`, thrown otherwise. */
async function postForm(url: string, form: Readonly<Record<string, string>>, dispatcher: Dispatcher | undefined, errorsAreAnswers = false): Promise<unknown> {
  let r;
  try {
    r = await fetch(url, { method: 'POST', body: new URLSearchParams(form), headers: { accept: 'application/json' }, ...(dispatcher ? { dispatcher } : {}) });
  } catch (err) {
    throw new LoginError('UNREACHABLE', `${url}: ${(err as Error).message}`);
  }
  const body = (await r.json().catch(() => ({}))) as { error?: string; error_description?: string };
  if (r.ok || (errorsAreAnswers && typeof body.error === 'string')) return body;
  throw new LoginError('IDP', `${url}: ${r.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim());
}
