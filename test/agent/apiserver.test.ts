// The agent's side of a tunnel stream, against a real kube-apiserver: whatever credential a
// stream carries, only the agent's own ServiceAccount token goes upstream.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiServer } from '../../agent/apiserver.ts';
import { getTestFleet, type TestCluster } from '../support/fleet.ts';

describe('the agent relays a stream with its own credential only', () => {
  let dir: string;
  let api: ApiServer;
  let server: http2.Http2Server;
  let port: number;
  let cluster: TestCluster;
  before(async () => {
    const fleet = await getTestFleet();
    cluster = fleet.cluster('dev');
    dir = mkdtempSync(join(tmpdir(), 'portcullis-agent-api-'));
    const admin = (args: string[]) => fleet.kubectl(args, { kubeconfig: cluster.adminKubeconfig });
    await admin(['create', 'serviceaccount', 'agent-relay-test', '-n', 'default']);
    const token = (await admin(['create', 'token', 'agent-relay-test', '-n', 'default'])).stdout.trim();
    writeFileSync(join(dir, 'token'), token);
    api = new ApiServer({ url: cluster.server, ca: readFileSync(cluster.caFile), tokenFile: join(dir, 'token') });
    server = http2.createServer({ settings: { enableConnectProtocol: true } });
    server.on('stream', (stream, headers) => api.serve(stream, headers));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(() => {
    api?.close();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ask = (headers: http2.OutgoingHttpHeaders) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const c = http2.connect(`http://127.0.0.1:${port}`);
      const s = c.request(headers, { endStream: true });
      let body = '';
      let status = 0;
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('data', (d: Buffer) => (body += d.toString()));
      s.on('end', () => {
        c.close();
        resolve({ status, body });
      });
      s.on('error', reject);
    });

  it('GIVEN a stream with a forged Authorization WHEN relayed THEN kube-apiserver sees the agent\'s ServiceAccount, not the forged credential', async () => {
    // The ServiceAccount may not read secrets: kube names who was refused. A forged token would be a 401.
    const r = await ask({ ':method': 'GET', ':path': '/api/v1/namespaces/default/secrets', authorization: 'Bearer forged' });
    assert.equal(r.status, 403, r.body);
    assert.match(r.body, /system:serviceaccount:default:agent-relay-test/);
  });

  it('GIVEN a stream with no path WHEN relayed THEN a 400 Status, nothing sent upstream', async () => {
    // HTTP/2 itself refuses most paths that do not start with a slash; '*' (OPTIONS) is one it lets through.
    const r = await ask({ ':method': 'OPTIONS', ':path': '*' });
    assert.equal(r.status, 400);
    assert.match(r.body, /"kind":"Status"/);
  });
});
