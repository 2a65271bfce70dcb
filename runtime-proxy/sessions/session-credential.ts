import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** What every session credential starts with, so the authenticator tells it from a JWT at a glance. */
export const SESSION_CREDENTIAL_PREFIX = 'pcs1.';
const ID = /^[A-Za-z0-9_-]{22}$/;
const MAC = /^[A-Za-z0-9_-]{43}$/;

/**
 * A session credential: `pcs1.<session id>.<HMAC-SHA256(key, "pcs1.<id>")>`, base64url. Any replica
 * holding the shared key checks it without the store; the store says whether the session is still
 * live. The id is 128 random bits; the MAC makes a forged or altered credential fail before any
 * lookup. Pure apart from the random id.
 */
export function mintCredential(key: Buffer): { readonly id: string; readonly credential: string } {
  const id = randomBytes(16).toString('base64url');
  return { id, credential: `${SESSION_CREDENTIAL_PREFIX}${id}.${mac(key, id)}` };
}

/** The session id a credential names, if its MAC is right; undefined for anything else. */
export function verifyCredential(key: Buffer, credential: string): string | undefined {
  if (!credential.startsWith(SESSION_CREDENTIAL_PREFIX)) return undefined;
  const rest = credential.slice(SESSION_CREDENTIAL_PREFIX.length);
  const dot = rest.indexOf('.');
  const id = rest.slice(0, dot);
  const given = rest.slice(dot + 1);
  if (dot < 0 || !ID.test(id) || !MAC.test(given)) return undefined;
  const want = Buffer.from(mac(key, id), 'utf8');
  return timingSafeEqual(want, Buffer.from(given, 'utf8')) ? id : undefined;
}

function mac(key: Buffer, id: string): string {
  return createHmac('sha256', key).update(`${SESSION_CREDENTIAL_PREFIX}${id}`).digest('base64url');
}
