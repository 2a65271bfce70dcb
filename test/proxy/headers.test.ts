// SECURITY rule 6 at the unit level: the upstream header builder.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildUpstreamHeaders, encodeExtraKey, filterResponseHeaders } from '../../runtime-proxy/headers.ts';

const WHO = { authorization: 'Bearer proxy-sa', user: 'oidc:alice', groups: ['oidc:dev', 'portcullis:grant:x'], extra: { 'portcullis.dev/grant': 'g1', 'portcullis.dev/authenticated-by': 'https://idp' }, auditId: 'aid-1' };

describe('buildUpstreamHeaders (SECURITY rule 6)', () => {
  it('GIVEN every kind of identity header a client could send, in any case WHEN building upstream headers THEN none survive and the proxy sets its own once', () => {
    const raw = [
      'Authorization', 'Bearer client',
      'authorization', 'Bearer client2',
      'Impersonate-User', 'system:admin',
      'IMPERSONATE-GROUP', 'system:masters',
      'impersonate-uid', '1',
      'Impersonate-Extra-Scopes', 'x',
      'X-Remote-User', 'root',
      'x-remote-extra-foo', 'bar',
      'X-Forwarded-For', '1.2.3.4',
      'X-Forwarded-Host', 'evil',
      'Audit-ID', 'evil',
      'Accept', 'application/json',
      'User-Agent', 'kubectl',
    ];
    const h = buildUpstreamHeaders(raw, WHO);
    assert.deepEqual(h, {
      accept: 'application/json',
      'user-agent': 'kubectl',
      authorization: 'Bearer proxy-sa',
      'impersonate-user': 'oidc:alice',
      'impersonate-group': ['oidc:dev', 'portcullis:grant:x'],
      'impersonate-extra-portcullis.dev%2Fgrant': 'g1',
      'impersonate-extra-portcullis.dev%2Fauthenticated-by': 'https://idp',
      'audit-id': 'aid-1',
    });
  });

  it('GIVEN hop-by-hop headers and headers named in Connection WHEN building THEN they are dropped', () => {
    const h = buildUpstreamHeaders(['Connection', 'keep-alive, Accept-Language, X-Stream-Protocol-Version', 'Keep-Alive', '5', 'TE', 'trailers', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Accept-Language', 'de', 'X-Stream-Protocol-Version', 'v4.channel.k8s.io', 'Host', 'evil', 'Proxy-Authorization', 'x'], WHO);
    for (const k of ['connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'accept-language', 'x-stream-protocol-version', 'host', 'proxy-authorization']) assert.equal(h[k], undefined, k);
  });

  it('GIVEN an unknown client header WHEN building THEN it is not forwarded (allow-list, not deny-list)', () => {
    const h = buildUpstreamHeaders(['X-Custom-Thing', '1', 'Cookie', 'a=b', 'Forwarded', 'for=1.2.3.4'], WHO);
    assert.deepEqual(Object.keys(h).sort(), ['audit-id', 'authorization', 'impersonate-extra-portcullis.dev%2Fauthenticated-by', 'impersonate-extra-portcullis.dev%2Fgrant', 'impersonate-group', 'impersonate-user']);
  });

  it('GIVEN a WebSocket bearer subprotocol WHEN building an upgrade THEN only that entry is removed and Connection/Upgrade are the proxy\'s', () => {
    const h = buildUpstreamHeaders(
      ['Sec-WebSocket-Protocol', 'v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.dG9rZW4, v4.channel.k8s.io', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k'],
      WHO,
      'websocket',
    );
    assert.equal(h['sec-websocket-protocol'], 'v5.channel.k8s.io, v4.channel.k8s.io');
    assert.equal(h['connection'], 'Upgrade');
    assert.equal(h['upgrade'], 'websocket');
    assert.equal(h['sec-websocket-key'], 'k');
    const only = buildUpstreamHeaders(['Sec-WebSocket-Protocol', 'base64url.bearer.authorization.k8s.io.dG9rZW4'], WHO, 'websocket');
    assert.equal(only['sec-websocket-protocol'], undefined);
  });

  it('GIVEN client-certificate upstream auth WHEN building THEN no Authorization is sent at all', () => {
    const { authorization: _, ...noToken } = WHO;
    assert.equal(buildUpstreamHeaders(['Authorization', 'Bearer client'], noToken)['authorization'], undefined);
  });

  it('GIVEN a non-ASCII name WHEN building THEN the header carries its UTF-8 bytes (what Go reads), ASCII unchanged', () => {
    const h = buildUpstreamHeaders([], { ...WHO, user: 'oidc:jürgen', groups: ['oidc:開発'] });
    assert.deepEqual(Buffer.from(String(h['impersonate-user']), 'latin1'), Buffer.from('oidc:jürgen', 'utf8'));
    assert.deepEqual(Buffer.from(String((h['impersonate-group'] as string[])[0]), 'latin1'), Buffer.from('oidc:開発', 'utf8'));
    assert.equal(buildUpstreamHeaders([], WHO)['impersonate-user'], 'oidc:alice');
  });

  it('GIVEN extra keys WHEN encoding THEN they are percent-encoded as kube-apiserver unescapes them', () => {
    assert.equal(encodeExtraKey('portcullis.dev/grant'), 'portcullis.dev%2Fgrant');
    assert.equal(encodeExtraKey('A b'), 'a%20b');
  });

  it('GIVEN upstream response headers WHEN relaying THEN hop-by-hop ones are dropped', () => {
    assert.deepEqual(filterResponseHeaders({ connection: 'close, x-a', 'x-a': '1', 'transfer-encoding': 'chunked', 'content-type': 'application/json', 'audit-id': 'a' }), { 'content-type': 'application/json', 'audit-id': 'a' });
    // HTTP/2 upstream answers: pseudo-headers dropped, numbers as strings.
    assert.deepEqual(filterResponseHeaders({ ':status': 200, 'content-length': 12, 'content-type': 'application/json' }), { 'content-length': '12', 'content-type': 'application/json' });
  });
});
