// Ordinary requests through the proxy's upstream pool (undici) against the real
// kube-apiserver: a large response to a client that stops reading for a while
// (the relay pauses and resumes), a client that goes away mid-response (audited,
// the pool still serving), a chunked request body, and an upload upstream
// refuses before reading it (the answer arrives, the connection stays usable).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { grant, group, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, type Harness } from './harness.ts';

const NS = 'proxy-forward';
// dev-secrets is in the bundle but not in upstream RBAC: kube-apiserver refuses it (403) before reading the body.
const RULES = ruleSet('dev', [
  grant('dev-edit', [group('oidc:developers')], [{ verbs: ['get', 'list', 'create'], apiGroups: [''], resources: ['configmaps'] }], ns(NS)),
  grant('dev-secrets', [group('oidc:developers')], [{ verbs: ['create'], apiGroups: [''], resources: ['secrets'] }], ns(NS)),
], { users: ['oidc:alice'] });
const RBAC = manifestsYaml(upstreamRole(NS, 'dev-edit', [group('oidc:developers')], [{ verbs: ['get', 'list', 'create'], apiGroups: [''], resources: ['configmaps'] }]));

describe('ordinary requests through the upstream pool', () => {
  let h: Harness;
  let alice: string;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
    alice = await h.token('alice', ['developers']);
  });
  after(async () => {
    await h?.stop();
  });

  /** A GET through the proxy on its own connection; `onResponse` decides how the body is read. */
  const get = (path: string, onResponse: (res: IncomingMessage, done: (body: Buffer | undefined) => void) => void): Promise<{ status: number; auditId: string; body: Buffer | undefined }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: h.port, path, ca: h.proxyCa.caPem, agent: false, headers: { authorization: `Bearer ${alice}` } }, (res) => {
        onResponse(res, (body) => resolve({ status: res.statusCode ?? 0, auditId: String(res.headers['audit-id']), body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('GIVEN a multi-megabyte response WHEN the client stops reading for a second THEN the relay resumes and the whole body arrives intact', { timeout: 90_000 }, async () => {
    const direct = JSON.parse(h.admin(['get', '--raw', '/openapi/v2']).stdout) as { paths: Record<string, unknown> };
    const r = await get('/clusters/dev/openapi/v2', (res, done) => {
      res.pause();
      const chunks: Buffer[] = [];
      setTimeout(() => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(Buffer.concat(chunks)));
        res.resume();
      }, 1000);
    });
    assert.equal(r.status, 200);
    assert.ok((r.body?.length ?? 0) > 2_000_000, `a large body (${r.body?.length} bytes), more than the sockets between hold`);
    const through = JSON.parse((r.body as Buffer).toString('utf8')) as { paths: Record<string, unknown> };
    assert.deepEqual(Object.keys(through.paths).sort(), Object.keys(direct.paths).sort());
    const ev = h.auditEvents().find((e) => e.auditID === r.auditId && e.stage === 'ResponseComplete');
    assert.equal(ev?.responseStatus?.code, 200);
    assert.equal(ev?.annotations['portcullis.dev/stream-end'], undefined);
  });

  it('GIVEN a large response WHEN the client goes away after the first bytes THEN the record says client-closed with the status, and the pool keeps serving', async () => {
    const r = await get('/clusters/dev/openapi/v2', (res, done) => {
      res.once('data', () => {
        res.destroy();
        done(undefined);
      });
    });
    assert.equal(r.status, 200);
    let ev;
    for (let i = 0; i < 50 && !ev; i++, await sleep(100)) ev = h.auditEvents().find((e) => e.auditID === r.auditId && e.stage === 'ResponseComplete');
    assert.ok(ev, 'the cut request is audited');
    assert.equal(ev.responseStatus?.code, 200);
    assert.equal(ev.annotations['portcullis.dev/stream-end'], 'client-closed');
    for (let i = 0; i < 5; i++) {
      const next = await h.request('GET', `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, [['Authorization', `Bearer ${alice}`]]);
      assert.equal(next.status, 200);
    }
  });

  it('GIVEN a request body sent in chunks without a length WHEN it creates an object THEN it is forwarded and the object exists', async () => {
    const name = `chunked-${Date.now()}`;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: h.port, method: 'POST', path: `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, ca: h.proxyCa.caPem, agent: false, headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      assert.equal(req.getHeader('content-length'), undefined);
      req.write(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"${name}"},`);
      setTimeout(() => req.end('"data":{"k":"v"}}'), 200);
    });
    assert.equal(status, 201);
    assert.equal(h.admin(['get', 'configmap', name, '-n', NS, '-o', 'jsonpath={.data.k}']).stdout, 'v');
  });

  it('GIVEN an upload upstream refuses before reading it WHEN the client sends the rest THEN the 403 arrives and the same connection serves the next request', { timeout: 60_000 }, async () => {
    const s = tlsConnect({ host: '127.0.0.1', port: h.port, ca: h.proxyCa.caPem, ALPNProtocols: ['http/1.1'] });
    await once(s, 'secureConnect');
    s.on('error', () => undefined); // a failing run may see the proxy reset the connection
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    const until = async (re: RegExp, what: string): Promise<void> => {
      for (let i = 0; i < 200 && !re.test(got); i++) await sleep(50);
      assert.match(got, re, what);
    };
    const total = 2_000_000;
    s.write(`POST /clusters/dev/api/v1/namespaces/${NS}/secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`);
    s.write(Buffer.alloc(64 * 1024, 0x20));
    await until(/^HTTP\/1\.1 403 [\s\S]*"code":403/, 'upstream RBAC refuses the upload before reading its body');
    s.write(Buffer.alloc(total - 64 * 1024, 0x20));
    s.write(`GET /clusters/dev/api/v1/namespaces/${NS}/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n\r\n`);
    await until(/HTTP\/1\.1 200 /, 'the next request on the same connection is answered');
    s.destroy();
  });
});
