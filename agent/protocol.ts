/**
 * What the agent and the proxy agree on (docs/tunnel.md).
 *
 * The agent dials the proxy over TLS 1.3 and asks, in one HTTP/1.1 request,
 * to upgrade the connection to a tunnel. From the 101 on, the connection is
 * HTTP/2 with the roles turned round: the proxy is the HTTP/2 client and
 * opens one stream per request it forwards; the agent is the server and
 * relays each stream to its kube-apiserver with its own credential. Upgrades
 * (exec, attach, port-forward) travel as RFC 8441 extended CONNECT streams
 * whose `:protocol` is the upgrade token. The framing is nghttp2's, not ours.
 *
 * The agent proves who it is with an assertion: a JWT signed with the
 * cluster's agent key, naming the cluster and bound to the TLS connection it
 * travels on (an RFC 5705/8446 exporter), so it cannot be replayed on another
 * one. The first time, it also brings the registration credential from the
 * bootstrap manifest: a short-lived JWT signed by a registration key the
 * proxies trust, naming the cluster and the agent key's thumbprint, good once.
 * After that the proxy knows the cluster by that key alone.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, importJWK, jwtVerify, SignJWT, type JWK, type JWTPayload } from 'jose';

/** The path the agent asks to upgrade at, on the proxy's own TLS listener. */
export const TUNNEL_PATH = '/portcullis/v1/tunnel';
/** The `Upgrade` token of the tunnel. */
export const TUNNEL_UPGRADE = 'portcullis-tunnel/1';
/** The request header carrying the registration credential (first connection only). */
export const REGISTRATION_HEADER = 'portcullis-registration';
/** On an extended CONNECT stream: the method of the client's upgrade request (POST for SPDY exec, GET for WebSocket). */
export const METHOD_HEADER = 'portcullis-upgrade-method';
/** The response header saying why a tunnel was refused (one of TunnelRefusal). */
export const REFUSAL_HEADER = 'portcullis-tunnel-refusal';
/** The exporter label both ends derive the connection binding with. */
const EXPORTER_LABEL = 'EXPORTER-portcullis-tunnel';
const ASSERTION_TYP = 'portcullis-agent+jwt';
const REGISTRATION_TYP = 'portcullis-registration+jwt';
const AUDIENCE = 'portcullis-tunnel';
/** An assertion is good for this long; it is bound to one connection anyway. */
const ASSERTION_TTL_S = 60;

/** Why a tunnel was refused; the agent registers on `not-registered`, and backs off on the others. */
export type TunnelRefusal = 'bad-assertion' | 'not-registered' | 'bad-registration' | 'registration-used' | 'other-agent' | 'unknown-cluster' | 'unavailable';

/** A refusal with its reason, for the log of both ends. */
export class TunnelRefused extends Error {
  constructor(
    readonly reason: TunnelRefusal,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.name = 'TunnelRefused';
  }
}

/** The binding of an assertion to its TLS connection: 32 bytes both ends derive, nobody else can. */
export function connectionBinding(socket: TLSSocket): string {
  if (socket.getProtocol() !== 'TLSv1.3') throw new TunnelRefused('bad-assertion', `the tunnel needs TLS 1.3, not ${socket.getProtocol() ?? 'none'}`);
  return socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)).toString('base64url');
}

/** The RFC 7638 thumbprint of an agent's public key: how the proxy pins it. */
export async function keyThumbprint(publicKey: KeyObject | JWK): Promise<string> {
  const jwk: JWK = isKeyObject(publicKey) ? await exportJWK(publicKey) : publicKey;
  return calculateJwkThumbprint(jwk, 'sha256');
}

function isKeyObject(k: KeyObject | JWK): k is KeyObject {
  return typeof (k as KeyObject).export === 'function';
}

/** The agent's assertion for one connection. */
export async function signAssertion(privateKey: KeyObject, publicKey: KeyObject, cluster: string, binding: string, now = Date.now()): Promise<string> {
  const jwk = await exportJWK(publicKey);
  const iat = Math.floor(now / 1000);
  return new SignJWT({ cbnd: binding })
    .setProtectedHeader({ alg: 'EdDSA', typ: ASSERTION_TYP, jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x } as JWK })
    .setSubject(cluster)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ASSERTION_TTL_S)
    .sign(privateKey);
}

/** What a verified assertion says. */
export interface VerifiedAssertion {
  readonly cluster: string;
  /** The thumbprint of the key that signed it. */
  readonly thumbprint: string;
}

/**
 * Verifies an agent's assertion against the connection it came on: an Ed25519
 * signature by the key in its header, this audience and type, fresh, and bound
 * to this very TLS connection. Whether that key may serve the cluster is the
 * caller's question (the pin).
 */
export async function verifyAssertion(token: string, binding: string, now = Date.now()): Promise<VerifiedAssertion> {
  try {
    const header = decodeProtectedHeader(token);
    const jwk = header.jwk;
    if (header.alg !== 'EdDSA' || header.typ !== ASSERTION_TYP || !jwk || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
      throw new Error('not an Ed25519 agent assertion');
    }
    const key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'EdDSA');
    const { payload } = await jwtVerify(token, key, { algorithms: ['EdDSA'], typ: ASSERTION_TYP, audience: AUDIENCE, maxTokenAge: ASSERTION_TTL_S + 30, clockTolerance: 30, currentDate: new Date(now) });
    if (payload['cbnd'] !== binding) throw new Error('the assertion was made for another connection');
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('the assertion names no cluster');
    return { cluster: payload.sub, thumbprint: await keyThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }) };
  } catch (err) {
    throw new TunnelRefused('bad-assertion', (err as Error).message);
  }
}

/** What a registration credential grants: this cluster, to the agent key with this thumbprint, once, until `expiresAt`. */
export interface Registration {
  readonly cluster: string;
  readonly thumbprint: string;
  readonly id: string;
  readonly expiresAt: number;
}

/** Mints a registration credential (`portcullis cluster add`), signed with a registration key the proxies trust. */
export async function signRegistration(signingKey: KeyObject, keyId: string, cluster: string, thumbprint: string, ttlMs: number, now = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({ jkt: thumbprint })
    .setProtectedHeader({ alg: 'EdDSA', typ: REGISTRATION_TYP, kid: keyId })
    .setSubject(cluster)
    .setAudience(AUDIENCE)
    .setJti(randomUUID())
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.max(1, Math.floor(ttlMs / 1000)))
    .sign(signingKey);
}

/** Verifies a registration credential against the trusted registration keys (by key id); the algorithm is fixed here. */
export async function verifyRegistration(token: string, trusted: ReadonlyMap<string, KeyObject>, now = Date.now()): Promise<Registration> {
  let payload: JWTPayload;
  try {
    const kid = decodeProtectedHeader(token).kid;
    const key = kid === undefined ? undefined : trusted.get(kid);
    if (!key) throw new Error(`signed by a key this proxy does not trust (${kid ?? 'no key id'})`);
    ({ payload } = await jwtVerify(token, key, { algorithms: ['EdDSA'], typ: REGISTRATION_TYP, audience: AUDIENCE, currentDate: new Date(now), requiredClaims: ['exp', 'jti', 'sub'] }));
  } catch (err) {
    throw new TunnelRefused('bad-registration', (err as Error).message);
  }
  if (typeof payload['jkt'] !== 'string') throw new TunnelRefused('bad-registration', 'the credential names no agent key');
  return { cluster: String(payload.sub), thumbprint: payload['jkt'], id: String(payload.jti), expiresAt: (payload.exp ?? 0) * 1000 };
}
