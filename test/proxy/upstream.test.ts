// The proxy's own upstream credential: a token file re-read when it changes.
import assert from 'node:assert/strict';
import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createUpstream, upstreamPath } from '../../runtime-proxy/upstream.ts';
import { createLocalCa } from '../../sandbox/local-ca.ts';

describe('upstream', () => {
  it('GIVEN a token file WHEN it is rotated THEN the next requests within about a second use the new token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'upstream-'));
    const ca = createLocalCa();
    try {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 'first\n');
      const up = createUpstream({ url: 'https://127.0.0.1:6443', caFile: ca.caFile, tokenFile });
      assert.equal(up.authorization(), 'Bearer first');
      writeFileSync(tokenFile, 'second\n');
      utimesSync(tokenFile, new Date(), new Date(Date.now() + 5000));
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(up.authorization(), 'Bearer second');
      up.close();
    } finally {
      ca.remove();
    }
  });

  it('GIVEN client-certificate credentials WHEN asked for authorization THEN there is none (TLS carries the identity)', () => {
    const ca = createLocalCa();
    try {
      const leaf = ca.issue({ cn: 'proxy', usage: 'clientAuth' });
      const up = createUpstream({ url: 'https://127.0.0.1:6443/prefix', caFile: ca.caFile, clientCertFile: leaf.certFile, clientKeyFile: leaf.keyFile });
      assert.equal(up.authorization(), undefined);
      assert.ok(up.tls.cert && up.tls.key);
      assert.equal(upstreamPath(up.base, '/api/v1/pods?x=1'), '/prefix/api/v1/pods?x=1');
      up.close();
    } finally {
      ca.remove();
    }
  });
});
