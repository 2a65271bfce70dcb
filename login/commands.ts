import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, fetch, type Dispatcher } from 'undici';
import { LoginError } from './login-error.ts';
import { discover, loginWithBrowser, loginWithDevice } from './oidc-client.ts';
import { readSession, removeSession, writeSession, type SessionFile } from './session-file.ts';

/** Options of `portcullis login`. */
export interface LoginOptions {
  readonly proxy: string;
  /** Sign in on another device (RFC 8628) instead of this machine's browser. */
  readonly device?: boolean;
  /** Print the URL only; do not try to open a browser. */
  readonly browser?: boolean;
  /** A PEM bundle to trust for the proxy and the identity provider. @default the system trust store (and NODE_EXTRA_CA_CERTS) */
  readonly ca?: string;
}

/** Where messages for the person go (standard error: standard output stays clean for scripts). */
export type Say = (line: string) => void;

function dispatcherFor(ca: string | undefined): Dispatcher | undefined {
  if (ca === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(ca, 'utf8');
  } catch (err) {
    throw new LoginError('BAD_INPUT', `--ca ${ca}: ${(err as Error).message}`);
  }
  return new Agent({ connect: { ca: pem } });
}

/** Calls the proxy; a refusal becomes a LoginError with the proxy's own message. */
export async function proxyCall(s: { readonly proxy: string; readonly ca?: string | undefined }, path: string, init: { method?: string; token?: string; accept?: string; body?: unknown } = {}): Promise<string> {
  const dispatcher = dispatcherFor(s.ca);
  const url = `${s.proxy.replace(/\/$/, '')}${path}`;
  let r;
  try {
    r = await fetch(url, {
      method: init.method ?? 'GET',
      headers: { accept: init.accept ?? 'application/json', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      ...(dispatcher ? { dispatcher } : {}),
    });
  } catch (err) {
    const cause = (err as Error).cause;
    throw new LoginError('UNREACHABLE', `${url}: ${cause instanceof Error ? cause.message : (err as Error).message}`);
  }
  const text = await r.text();
  if (!r.ok) {
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not a Status: the text as it came
    }
    throw new LoginError('REFUSED', `${url}: ${r.status} ${message}`.trim());
  }
  return text;
}

/**
 * `portcullis login`: asks the proxy which identity provider to use, signs in there (a browser
 * with PKCE, or the device grant), exchanges the ID token at the proxy for a session, and keeps
 * the session credential (0600). Returns the session file.
 */
export async function login(o: LoginOptions, say: Say): Promise<SessionFile> {
  if (!o.proxy.startsWith('https://')) throw new LoginError('BAD_INPUT', `--proxy ${o.proxy}: the proxy must be reached over https (the ID token and the session credential go there)`);
  const cfg = JSON.parse(await proxyCall(o, '/portcullis/v1/login')) as { issuer: string; clientId: string; scopes: string[] };
  const dispatcher = dispatcherFor(o.ca);
  const idp = { issuer: cfg.issuer, clientId: cfg.clientId, scopes: cfg.scopes, ...(dispatcher ? { dispatcher } : {}) };
  const d = await discover(idp);
  const idToken = o.device
    ? await loginWithDevice(idp, d, (uri, code, complete) => say(`To sign in, open ${uri} on any device and enter the code ${code}${complete ? ` (or open ${complete})` : ''}`))
    : await loginWithBrowser(idp, d, (url) => {
        say(`Sign in through your browser: ${url}`);
        if (o.browser !== false) openBrowser(url);
      });
  const created = JSON.parse(await proxyCall(o, '/portcullis/v1/sessions', { method: 'POST', token: idToken })) as { credential: string; user: string; groups: string[]; expiresAt: string };
  const s: SessionFile = { proxy: o.proxy, credential: created.credential, user: created.user, groups: created.groups, expiresAt: created.expiresAt, ...(o.ca !== undefined ? { ca: o.ca } : {}) };
  writeSession(s);
  say(`Logged in as ${s.user}${s.groups.length ? ` (groups ${s.groups.join(', ')})` : ''} until ${s.expiresAt}. Next: portcullis kubeconfig --out ~/.kube/portcullis.yaml`);
  return s;
}

/** `portcullis logout`: ends the session on every replica, then forgets it here. */
export async function logout(say: Say): Promise<void> {
  const s = readSession();
  if (!s) throw new LoginError('NO_SESSION', 'not logged in');
  try {
    await proxyCall(s, '/portcullis/v1/sessions/current', { method: 'DELETE', token: s.credential });
  } catch (err) {
    // A session that already ended is as good as logged out; anything else is said.
    if (!(err instanceof LoginError && err.code === 'REFUSED' && / 401 /.test(err.message))) throw err;
  }
  removeSession();
  say('Logged out: the session credential no longer works on any replica.');
}

/** The fleet kubeconfig of the current session, from the proxy (a context for each cluster the identity has some grant on). */
export async function sessionKubeconfig(): Promise<string> {
  const s = readSession();
  if (!s) throw new LoginError('NO_SESSION', 'not logged in: run portcullis login --proxy URL (or pass --user for a kubelogin kubeconfig)');
  return proxyCall(s, '/portcullis/v1/kubeconfig', { token: s.credential, accept: 'application/yaml' });
}

/** Best effort: the desktop's browser, if there is one. */
function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : 'xdg-open';
  try {
    const p = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    p.on('error', () => undefined);
    p.unref();
  } catch {
    // the URL was printed
  }
}
