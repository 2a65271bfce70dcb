import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { Agent, fetch } from 'undici';
import { discover, type Discovery } from '../login/oidc-client.ts';
import { MemoryPendingSignIns, type PendingSignIns } from './pending-sign-ins.ts';

/** How long a sign-in may take between leaving for the identity provider and coming back. */
const PENDING_MS = 10 * 60_000;

interface Pending {
  readonly state: string;
  readonly verifier: string;
  readonly nonce: string;
  readonly at: number;
}

/** A sign-in that cannot finish, with a message safe to show. */
export class SignInError extends Error {
  override readonly name = 'SignInError';
}

/**
 * The console's sign-in: authorization code with PKCE (RFC 7636, S256) done by the proxy, as a
 * public web client. The verifier, state and nonce wait in `pending` (the replicas' shared
 * store, so the callback may reach any replica) under a random key the browser holds in a
 * cookie, and are taken once. The state and the ID token's nonce tie the callback to this
 * browser; the session itself is made by the proxy's session service from the verified ID token.
 */
export class ConsoleSignIn {
  readonly #dispatcher: Agent | undefined;
  #discovery: Discovery | undefined;

  constructor(
    private readonly idp: { readonly issuer: string; readonly clientId: string; readonly scopes: readonly string[]; readonly caPem?: string },
    private readonly clock: () => number,
    private readonly pending: PendingSignIns = new MemoryPendingSignIns(clock),
  ) {
    this.#dispatcher = idp.caPem !== undefined ? new Agent({ connect: { ca: idp.caPem } }) : undefined;
  }

  async #disco(): Promise<Discovery> {
    this.#discovery ??= await discover({ issuer: this.idp.issuer, clientId: this.idp.clientId, scopes: this.idp.scopes, ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}) });
    return this.#discovery;
  }

  /** Starts a sign-in: the cookie key and the identity provider's URL to send the browser to. */
  async start(redirectUri: string): Promise<{ readonly key: string; readonly url: string }> {
    const d = await this.#disco();
    const p: Pending = { state: rand(), verifier: rand(48), nonce: rand(), at: this.clock() };
    const key = rand();
    await this.pending.put(key, JSON.stringify(p), PENDING_MS);
    const u = new URL(d.authorization_endpoint);
    u.search = new URLSearchParams({
      response_type: 'code',
      client_id: this.idp.clientId,
      redirect_uri: redirectUri,
      scope: this.idp.scopes.join(' '),
      state: p.state,
      nonce: p.nonce,
      code_challenge: createHash('sha256').update(p.verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    return { key, url: u.href };
  }

  /** Finishes the sign-in the cookie `key` names: checks the state, redeems the code with the verifier, checks the nonce; returns the ID token. */
  async finish(key: string | undefined, query: URLSearchParams, redirectUri: string): Promise<string> {
    const raw = key !== undefined && /^[A-Za-z0-9_-]{32}$/.test(key) ? await this.pending.take(key) : undefined;
    const p = raw !== undefined ? (JSON.parse(raw) as Pending) : undefined;
    if (!p || this.clock() - p.at > PENDING_MS) throw new SignInError('no sign-in in progress in this browser (or it took longer than 10 minutes): sign in again');
    const err = query.get('error');
    if (err !== null) throw new SignInError(`the identity provider refused: ${err} ${query.get('error_description') ?? ''}`.trim());
    if (query.get('state') !== p.state) throw new SignInError('the sign-in came back with another state: sign in again');
    const code = query.get('code');
    if (code === null || code === '') throw new SignInError('the identity provider sent no code');
    const d = await this.#disco();
    const r = await fetch(d.token_endpoint, {
      method: 'POST',
      headers: { accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: this.idp.clientId, code_verifier: p.verifier }),
      ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
    });
    const body = (await r.json().catch(() => ({}))) as { id_token?: unknown; error?: unknown };
    if (!r.ok || typeof body.id_token !== 'string') throw new SignInError(`the identity provider did not redeem the code (${r.status} ${String(body.error ?? '')})`);
    let nonce: unknown;
    try {
      nonce = decodeJwt(body.id_token).nonce;
    } catch {
      throw new SignInError('the identity provider sent no valid ID token');
    }
    if (nonce !== p.nonce) throw new SignInError('the ID token is not for this sign-in (nonce)');
    return body.id_token;
  }

  async close(): Promise<void> {
    await this.pending.close();
    await this.#dispatcher?.close();
  }
}

function rand(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
