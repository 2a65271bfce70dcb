// The browser shell's confinement, without a browser (SECURITY rule 30): each kubectl runs under
// setpriv + bubblewrap as an unprivileged uid, sees only its own directory, and ends with its
// terminal (idle timeout, or the page closing), taking its directory and credential along.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, type AddressInfo } from 'node:net';
import type { WebSocket } from 'ws';
import { ensureBinaries } from '../../sandbox/build.ts';
import type { TerminalConfig } from '../../console/config.ts';
import { loadPty, TerminalSession, type TerminalEnd } from '../../console/terminal/terminal-session.ts';

/** A WebSocket stand-in: what the page would send, and what it receives. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  out = '';
  closed: string | undefined;
  send(text: string): void {
    this.out += text;
  }
  close(_code: number, why: string): void {
    this.readyState = 3;
    this.closed = why;
  }
  type(text: string): void {
    this.emit('message', Buffer.from(JSON.stringify({ t: 'i', d: text })), false);
  }
  async waitFor(re: RegExp, from = 0, ms = 20_000): Promise<void> {
    const t = Date.now();
    while (!re.test(this.out.slice(from))) {
      if (Date.now() - t > ms) throw new Error(`no ${re} in ${this.out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const KUBECONFIG = (token: string, server = 'https://127.0.0.1:1') => `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${server}"}}]\nusers: [{name: u, user: {token: ${token}}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n`;

describe('the browser shell sandbox', { timeout: 120_000 }, () => {
  let cfg: TerminalConfig;
  let spawnPty: Awaited<ReturnType<typeof loadPty>>;
  let base: string;
  const open: TerminalSession[] = [];
  const start = (token: string, idleTimeoutMs = 60_000, server?: string) => {
    const ws = new FakeSocket();
    const ended: { why?: TerminalEnd } = {};
    const s = new TerminalSession(ws as unknown as WebSocket, { ...cfg, idleTimeoutMs }, KUBECONFIG(token, server), (why) => (ended.why = why), spawnPty);
    open.push(s);
    return { ws, s, ended };
  };

  before(async () => {
    const { kubectl } = await ensureBinaries({ log: () => undefined });
    spawnPty = await loadPty();
    base = mkdtempSync(join(tmpdir(), 'portcullis-terminal-test-'));
    // mkdtemp makes it 0700: the sandbox uid must be able to pass through to its own directory.
    chmodSync(base, 0o711);
    cfg = { kubectl, bwrap: '/usr/bin/bwrap', dir: join(base, 'terminals'), uid: 65534, idleTimeoutMs: 60_000, maxPerUser: 4 };
  });
  after(() => {
    for (const s of open) s.end('shutdown');
    rmSync(base, { recursive: true, force: true });
  });

  it('GIVEN a terminal WHEN kubectl runs THEN it reads its own kubeconfig (its only credential) as an unprivileged uid with no groups, no new privileges, in its own PID namespace', async () => {
    // A server that accepts and never answers: a kubectl asking it runs until its timeout, to look at from outside.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const { ws, s } = start('token-of-alice', 60_000, `https://127.0.0.1:${(silent.address() as AddressInfo).port}`);
    await ws.waitFor(/kubectl>/);
    const from = ws.out.length;
    ws.type('kubectl config view --minify --raw\r');
    await ws.waitFor(/token: token-of-alice/, from);
    await ws.waitFor(/kubectl>/, from);
    ws.type('kubectl get --raw /api --request-timeout=60s\r');
    const t0 = Date.now();
    const kubectlChild = (p: number | undefined): string => {
      try {
        return p === undefined ? '' : (readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(' ')[0] ?? '');
      } catch {
        return '';
      }
    };
    while (kubectlChild(s.running) === '' && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    const pid = s.running;
    assert.ok(pid);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534/m);
    assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534/m);
    assert.match(status, /^Groups:\s*$/m);
    assert.match(status, /^NoNewPrivs:\s+1/m);
    assert.match(status, /^CapEff:\s+0+$/m, 'no capabilities');
    // bubblewrap's child (kubectl) lives in a PID, mount and user namespace of its own.
    const child = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0] ?? '';
    assert.ok(child !== '');
    for (const ns of ['pid', 'mnt', 'user', 'ipc', 'uts']) assert.notEqual(readlinkSync(`/proc/${child}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), ns);
    assert.equal(readlinkSync(`/proc/${child}/ns/net`), readlinkSync(`/proc/self/ns/net`), 'the network is shared (it must reach the proxy on loopback)');
    s.end('closed');
    silent.close();
    const t = Date.now();
    while (existsSync(`/proc/${pid}`) && Date.now() - t < 3000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(`/proc/${pid}`), false, 'killed when the terminal ends');
    assert.equal(existsSync(s.dir), false, 'its directory is gone');
  });

  it('GIVEN two people\'s terminals WHEN one tries to read the other\'s kubeconfig, the proxy\'s files or the host\'s THEN nothing outside its own directory exists for it', async () => {
    const a = start('token-of-alice');
    const b = start('token-of-bob');
    await a.ws.waitFor(/kubectl>/);
    await b.ws.waitFor(/kubectl>/);
    for (const path of [join(b.s.dir, 'kubeconfig'), b.s.dir, '/etc/passwd', '/root', cfg.kubectl, '/proc/1/root/etc/passwd', '/home/term/../../etc/hostname']) {
      const from = a.ws.out.length;
      a.ws.type(`kubectl apply -f ${path}\r`);
      await a.ws.waitFor(/kubectl>\x1b\[0m $/, from);
      const out = a.ws.out.slice(from);
      assert.doesNotMatch(out, /token-of-bob/);
      assert.match(out, /does not exist|error/, `${path}: ${out}`);
    }
    const from = a.ws.out.length;
    a.ws.type(`kubectl apply -f ${join(b.s.dir, 'kubeconfig')}\r`);
    await a.ws.waitFor(/does not exist/, from);
    a.s.end('closed');
    b.s.end('closed');
  });

  it('GIVEN a terminal base the sandbox uid cannot reach THEN opening a terminal fails with the reason (not bubblewrap\'s)', async () => {
    const hidden = mkdtempSync(join(tmpdir(), 'portcullis-terminal-hidden-'));
    try {
      assert.throws(() => new TerminalSession(new FakeSocket() as unknown as WebSocket, { ...cfg, dir: join(hidden, 't') }, KUBECONFIG('x'), () => undefined, spawnPty), /not searchable by the sandbox uid 65534/);
    } finally {
      rmSync(hidden, { recursive: true, force: true });
    }
  });

  it('GIVEN a terminal nobody types in WHEN the idle timeout passes THEN it ends, and its directory with the credential is removed', async () => {
    const { ws, s, ended } = start('token-of-idle', 400);
    await ws.waitFor(/kubectl>/);
    const t = Date.now();
    while (ended.why === undefined && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(ended.why, 'idle');
    assert.equal(ws.closed, 'idle');
    assert.equal(existsSync(s.dir), false);
  });
});
