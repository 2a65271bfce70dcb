/**
 * Finds the one credential a request presents, from Node's `rawHeaders` so a
 * doubled header cannot hide behind header folding (SECURITY rule 8).
 */

/** The bearer-token entry prefix kubectl uses in `Sec-WebSocket-Protocol` (mirrors k8s.io/apiserver websocket protocol authenticator). */
export const BEARER_PROTOCOL_PREFIX = 'base64url.bearer.authorization.k8s.io.';

/** What the request presents. */
export type ExtractedCredential =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token: string; readonly source: 'authorization' | 'websocket-protocol' }
  | { readonly kind: 'error'; readonly code: 'INVALID_CREDENTIALS' | 'AMBIGUOUS_CREDENTIALS'; readonly message: string };

// RFC 7235 token68, which is what a JWT (base64url segments and dots) is made of.
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Extracts the bearer token from `Authorization` or the WebSocket subprotocol
 * entry. Two `Authorization` headers, two bearer subprotocol entries, or one
 * of each are ambiguous; an empty or malformed one, or another scheme, is
 * invalid. Never guesses which of two credentials was meant.
 */
export function extractCredential(rawHeaders: readonly string[]): ExtractedCredential {
  const authorization: string[] = [];
  const protocolTokens: string[] = [];
  let otherProtocols = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    const value = rawHeaders[i + 1] ?? '';
    if (name === 'authorization') authorization.push(value);
    else if (name === 'sec-websocket-protocol') {
      for (const entry of value.split(',')) {
        const p = entry.trim();
        if (p.toLowerCase().startsWith(BEARER_PROTOCOL_PREFIX)) protocolTokens.push(p.slice(BEARER_PROTOCOL_PREFIX.length));
        else if (p !== '') otherProtocols++;
      }
    }
  }
  const total = authorization.length + protocolTokens.length;
  if (total === 0) return { kind: 'none' };
  if (total > 1) {
    return { kind: 'error', code: 'AMBIGUOUS_CREDENTIALS', message: `${authorization.length} Authorization header(s) and ${protocolTokens.length} bearer subprotocol entries` };
  }
  const [header] = authorization;
  if (header !== undefined) {
    const m = /^([^ ]*) (.*)$/.exec(header);
    if (!m || (m[1] ?? '').toLowerCase() !== 'bearer') return invalid('Authorization is not a Bearer credential');
    const token = m[2] ?? '';
    if (token === '') return invalid('Authorization has an empty bearer token');
    if (!TOKEN68.test(token)) return invalid('bearer token has characters outside token68');
    return { kind: 'bearer', token, source: 'authorization' };
  }
  const encoded = protocolTokens[0] ?? '';
  if (encoded === '') return invalid('bearer subprotocol entry is empty');
  // Mirrors base64.RawURLEncoding.DecodeString: no padding, URL alphabet only.
  if (!BASE64URL.test(encoded) || encoded.length % 4 === 1) return invalid('bearer subprotocol entry is not base64url');
  const token = Buffer.from(encoded, 'base64url').toString('utf8');
  if (Buffer.from(token, 'utf8').toString('base64url') !== encoded) return invalid('bearer subprotocol entry is not canonical base64url');
  if (token === '' || !TOKEN68.test(token)) return invalid('bearer subprotocol token is empty or malformed');
  // Mirrors k8s.io/apiserver/pkg/authentication/request/websocket/protocol.go: the bearer entry must come
  // with another subprotocol, which is the one echoed back once the bearer entry is removed (SECURITY rule 19).
  if (otherProtocols === 0) return invalid('missing additional subprotocol');
  return { kind: 'bearer', token, source: 'websocket-protocol' };
}

function invalid(message: string): ExtractedCredential {
  return { kind: 'error', code: 'INVALID_CREDENTIALS', message };
}
