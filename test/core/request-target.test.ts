/**
 * SECURITY rule 2: authorize and forward the same bytes. Non-canonical request
 * targets are refused, never normalised; every accepted target decodes here
 * exactly as Go's net/http decodes it in kube-apiserver (checked against the
 * golden file the real Go parser produced).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { authorizationVerb, parseRequestInfo } from '../../core/request-info.ts';
import { checkRequestTarget, type RequestTargetCode } from '../../core/request-target.ts';

describe('checkRequestTarget: valid targets', () => {
  const valid: [string, string, [string, string][]][] = [
    ['/', '/', []],
    ['/api', '/api', []],
    ['/api/v1/namespaces/default/pods', '/api/v1/namespaces/default/pods', []],
    ['/api/v1/pods?watch=', '/api/v1/pods', [['watch', '']]],
    ['/api/v1/pods?watch=1&resourceVersion=10&allowWatchBookmarks=true', '/api/v1/pods', [['watch', '1'], ['resourceVersion', '10'], ['allowWatchBookmarks', 'true']]],
    ['/api/v1/pods?fieldSelector=metadata.name%3Dfoo&labelSelector=app%20in%20(a%2Cb)', '/api/v1/pods', [['fieldSelector', 'metadata.name=foo'], ['labelSelector', 'app in (a,b)']]],
    ['/api/v1/pods?labelSelector=a+in+(b)', '/api/v1/pods', [['labelSelector', 'a in (b)']]],
    ['/api/v1/pods?fieldSelector=metadata.name%3Da%5C%2Cb', '/api/v1/pods', [['fieldSelector', 'metadata.name=a\\,b']]],
    ['/api/v1/pods?labelSelector=app.kubernetes.io%2Fname%3Dweb', '/api/v1/pods', [['labelSelector', 'app.kubernetes.io/name=web']]],
    ['/api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command=echo%20hi&stdout=true', '/api/v1/namespaces/default/pods/web-0/exec', [['command', 'sh'], ['command', '-c'], ['command', 'echo hi'], ['stdout', 'true']]],
    ['/api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command=echo%20a%0Aecho%09b', '/api/v1/namespaces/default/pods/web-0/exec', [['command', 'sh'], ['command', '-c'], ['command', 'echo a\necho\tb']]],
    ['/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:job-controller', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:job-controller', []],
    ['/api/v1/namespaces/default/services/http:web:80/proxy/a%20b', '/api/v1/namespaces/default/services/http:web:80/proxy/a b', []],
    ['/api/v1/namespaces/default/pods/f%C3%B6%C3%B6', '/api/v1/namespaces/default/pods/föö', []],
    ['/.well-known/openid-configuration', '/.well-known/openid-configuration', []],
    ['/openapi/v3/apis/apps/v1?hash=ABC123', '/openapi/v3/apis/apps/v1', [['hash', 'ABC123']]],
    ['/livez?verbose', '/livez', [['verbose', '']]],
    ['/api/v1/pods?', '/api/v1/pods', []],
    ['/api/v1/pods?&limit=5&', '/api/v1/pods', [['limit', '5']]],
    ['/api/v1/pods/...', '/api/v1/pods/...', []],
  ];
  for (const [target, path, query] of valid) {
    it(`GIVEN ${target} WHEN checked THEN accepted as ${path} ${JSON.stringify(query)}`, () => {
      const r = checkRequestTarget(target);
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.path, path);
      assert.deepEqual([...r.query], query);
    });
  }
});

describe('checkRequestTarget: invalid targets', () => {
  const invalid: [string, RequestTargetCode][] = [
    // only origin-form
    ['', 'NOT_ORIGIN_FORM'],
    ['http://evil.example/api/v1/secrets', 'NOT_ORIGIN_FORM'],
    ['https://kube/api/v1/pods', 'NOT_ORIGIN_FORM'],
    ['kube.example:443', 'NOT_ORIGIN_FORM'],
    ['*', 'NOT_ORIGIN_FORM'],
    ['api/v1/pods', 'NOT_ORIGIN_FORM'],
    // fragments
    ['/api/v1/pods#x', 'FRAGMENT'],
    ['/api/v1/pods?watch=1#x', 'FRAGMENT'],
    // empty segments, trailing slashes
    ['//api/v1/pods', 'EMPTY_SEGMENT'],
    ['/api//v1/pods', 'EMPTY_SEGMENT'],
    ['/api/v1/namespaces//pods', 'EMPTY_SEGMENT'],
    ['/api/v1/namespaces/default//pods', 'EMPTY_SEGMENT'],
    ['/api/v1/pods/', 'EMPTY_SEGMENT'],
    ['/api/v1/namespaces/default/pods/foo/', 'EMPTY_SEGMENT'],
    ['/apis/', 'EMPTY_SEGMENT'],
    // dot segments, also encoded
    ['/api/v1/namespaces/default/pods/..', 'DOT_SEGMENT'],
    ['/api/v1/namespaces/default/pods/.', 'DOT_SEGMENT'],
    ['/api/v1/namespaces/x/../kube-system/secrets', 'DOT_SEGMENT'],
    ['/api/v1/namespaces/%2e%2e/pods', 'ENCODED_UNRESERVED'],
    ['/api/v1/namespaces/%2E%2e/pods', 'ENCODED_UNRESERVED'],
    ['/api/v1/namespaces/.%2e/pods', 'ENCODED_UNRESERVED'],
    ['/api/v1/namespaces/%2e/pods', 'ENCODED_UNRESERVED'],
    ['/api/v1/namespaces/default/pods/%66oo', 'ENCODED_UNRESERVED'],
    ['/api/v1/pods?%77atch=1', 'ENCODED_UNRESERVED'],
    // encoded separators
    ['/api/v1/namespaces/a%2Fb/pods', 'ENCODED_SEPARATOR'],
    ['/api/v1/namespaces/a%2fb/pods', 'ENCODED_SEPARATOR'],
    ['/api/v1/namespaces/default/pods/a%5Cb', 'ENCODED_SEPARATOR'],
    ['/api/v1/namespaces/default/pods/a%5cb', 'ENCODED_SEPARATOR'],
    // raw backslashes
    ['/api/v1/namespaces/default/pods/a\\b', 'BACKSLASH'],
    ['/api/v1\\namespaces', 'BACKSLASH'],
    ['/api/v1/pods?fieldSelector=metadata.name=a\\,b', 'BACKSLASH'],
    // invalid escapes
    ['/api/v1/namespaces/default/pods/%zz', 'BAD_ESCAPE'],
    ['/api/v1/namespaces/default/pods/a%', 'BAD_ESCAPE'],
    ['/api/v1/namespaces/default/pods/a%2', 'BAD_ESCAPE'],
    ['/api/v1/pods?a=%zz&fieldSelector=metadata.name%3Dfoo', 'BAD_ESCAPE'],
    ['/api/v1/pods?fieldSelector=metadata.name%3Dfoo%', 'BAD_ESCAPE'],
    ['/api/v1/pods?%=1', 'BAD_ESCAPE'],
    // invalid UTF-8 (Go keeps the raw bytes, URLSearchParams would substitute U+FFFD)
    ['/api/v1/namespaces/default/pods/%FF', 'INVALID_UTF8'],
    ['/api/v1/pods?fieldSelector=metadata.name%3D%C3', 'INVALID_UTF8'],
    ['/api/v1/pods/%ED%A0%80', 'INVALID_UTF8'],
    // NUL and control characters, raw or encoded; spaces and raw non-ASCII
    ['/api/v1/pods/a\u0000', 'BAD_CHARACTER'],
    ['/api/v1/pods/a\tb', 'BAD_CHARACTER'],
    ['/api/v1/pods/a b', 'BAD_CHARACTER'],
    ['/api/v1/pods/a\u007f', 'BAD_CHARACTER'],
    ['/api/v1/pods/föö', 'BAD_CHARACTER'],
    ['/api/v1/pods/a%00', 'CONTROL_CHARACTER'],
    ['/api/v1/pods/a%0A', 'CONTROL_CHARACTER'],
    ['/api/v1/pods?labelSelector=a%00b', 'CONTROL_CHARACTER'],
    ['/api/v1/pods?labelSelector=a%C2%85', 'CONTROL_CHARACTER'],
    ['/api/v1/pods?labelSelector=a%09in%09(b)', 'CONTROL_CHARACTER'],
    ['/api/v1/pods?watch=%0A', 'CONTROL_CHARACTER'],
    ['/api/v1/pods?x%0A=1', 'CONTROL_CHARACTER'],
    ['/api/v1/namespaces/default/pods/web-0/exec?command=a%00b', 'CONTROL_CHARACTER'],
    // ';' anywhere in the query (Go drops such pairs, URLSearchParams keeps them)
    ['/api/v1/pods?fieldSelector=metadata.name%3Dfoo;watch=1', 'QUERY_SEMICOLON'],
    ['/api/v1/pods?;', 'QUERY_SEMICOLON'],
    ['/api/v1/pods?a=%3B&b=;', 'QUERY_SEMICOLON'],
    // repeated parameters that decide the verb or the name
    ['/api/v1/pods?watch=false&watch=true', 'REPEATED_PARAMETER'],
    ['/api/v1/pods?watch&watch', 'REPEATED_PARAMETER'],
    ['/api/v1/pods?fieldSelector=metadata.name%3Da&fieldSelector=metadata.name%3Db', 'REPEATED_PARAMETER'],
    ['/api/v1/pods?labelSelector=a&labelSelector=b', 'REPEATED_PARAMETER'],
    ['/api/v1/pods?label%53elector=a&labelSelector=b', 'ENCODED_UNRESERVED'],
  ];
  for (const [target, code] of invalid) {
    it(`GIVEN ${JSON.stringify(target)} WHEN checked THEN refused with ${code}`, () => {
      const r = checkRequestTarget(target);
      assert.equal(r.ok, false, JSON.stringify(r));
      if (!r.ok) {
        assert.equal(r.code, code, r.reason);
        assert.ok(r.reason.length > 0);
      }
    });
  }
});

interface GoldenCase {
  method: string;
  target: string;
  readError?: string;
  path: string;
  query: [string, string][];
  validUTF8: boolean;
}

describe('checkRequestTarget agrees with Go (golden file from net/http + the real NewRequestInfo)', () => {
  const golden = JSON.parse(readFileSync(new URL('./fixtures/requestinfo-golden.json', import.meta.url), 'utf8')) as GoldenCase[];

  it('GIVEN every corpus target WHEN accepted here THEN Go parsed it to the same path and the same query values', () => {
    let accepted = 0;
    let refused = 0;
    for (const c of golden) {
      const r = checkRequestTarget(c.target);
      if (!r.ok) {
        refused++;
        continue;
      }
      accepted++;
      assert.equal(c.readError, undefined, c.target);
      assert.equal(c.validUTF8, true, c.target);
      assert.equal(r.path, c.path, c.target);
      const ours = [...r.query].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      assert.deepEqual(ours, c.query, c.target);
    }
    assert.ok(accepted > 300 && refused > 30, `accepted ${accepted}, refused ${refused}`);
  });

  it('GIVEN the targets Go reads differently from URLSearchParams THEN all are refused', () => {
    for (const t of [
      '/api/v1/pods?fieldSelector=metadata.name=foo;x=y',
      '/api/v1/pods?a=%zz&fieldSelector=metadata.name=foo',
      '/api/v1/pods?fieldSelector=metadata.name=%FF',
      '/api/v1/namespaces/default/pods/%FF',
      '/api/v1/namespaces//pods',
      '/api/v1/namespaces/a%2Fb/pods',
    ]) {
      assert.ok(golden.some((g) => g.target === t), `${t} is in the corpus`);
      assert.equal(checkRequestTarget(t).ok, false, t);
    }
  });
});

describe('real kubectl traffic', () => {
  const lines = readFileSync(new URL('./fixtures/requestinfo-kubectl-targets.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));

  it('GIVEN every target kubectl v1.34.4 sent in a recorded session WHEN checked THEN all are accepted', () => {
    assert.ok(lines.length > 50);
    const refused = lines.filter((l) => !checkRequestTarget(l.split(' ')[1] ?? '').ok);
    assert.deepEqual(refused, []);
  });

  it('GIVEN kubectl exec over WebSocket (GET) and SPDY (POST) THEN both authorize as create on pods/exec', () => {
    const execs = lines.filter((l) => l.includes('/exec?'));
    assert.ok(execs.some((l) => l.startsWith('GET ')) && execs.some((l) => l.startsWith('POST ')));
    for (const l of execs) {
      const [method = '', target = ''] = l.split(' ');
      const r = checkRequestTarget(target);
      assert.ok(r.ok, l);
      const info = parseRequestInfo(method, r.path, r.query);
      assert.equal(info.subresource, 'exec', l);
      assert.equal(authorizationVerb(info, { isUpgrade: true }), 'create', l);
    }
  });
});

describe('the wire: Node hands the proxy the raw target as req.url', () => {
  let server: Server;
  let port = 0;
  const seen: string[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function send(target: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => s.end(`GET ${target} HTTP/1.1\r\nHost: kube\r\nConnection: close\r\n\r\n`));
      let out = '';
      s.setTimeout(5000, () => s.destroy(new Error('timeout')));
      s.on('data', (d) => (out += d.toString('latin1')));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
  }

  for (const [target, accepted] of [
    ['/api/v1/namespaces/%2e%2e/pods', false],
    ['/api/v1/namespaces//pods', false],
    ['http://evil.example/api/v1/secrets', false],
    ['/api/v1/pods?watch=1;x', false],
    ['/api/v1/namespaces/default/pods?watch=', true],
  ] as const) {
    it(`GIVEN ${target} on the wire WHEN Node parses it THEN req.url is the raw target and the check ${accepted ? 'accepts' : 'refuses'} it`, async () => {
      const before = seen.length;
      const response = await send(target);
      assert.match(response, /^HTTP\/1\.1 204/);
      assert.equal(seen[before], target);
      assert.equal(checkRequestTarget(target).ok, accepted);
    });
  }

  it('GIVEN an accepted target THEN parseRequestInfo reads it as kube does', () => {
    const r = checkRequestTarget('/api/v1/namespaces/default/pods?watch=');
    assert.ok(r.ok);
    const info = parseRequestInfo('GET', r.path, r.query);
    assert.equal(info.verb, 'watch');
    assert.equal(info.namespace, 'default');
  });
});
