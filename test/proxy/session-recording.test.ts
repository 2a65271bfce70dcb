// Session recording (issue 15): real kubectl exec and attach through the proxy over WebSocket and
// SPDY against the sandbox's fake kubelet; each session is an asciicast v2 file named by its audit
// record with its SHA-256, and `portcullis replay` gives back exactly what kubectl printed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCast } from '../../runtime-proxy/recording/index.ts';
import type { AuditEvent } from '../../runtime-proxy/audit/event.ts';
import { grant, manifestsYaml, ns, ruleSet, startHarness, upstreamRole, user, type Harness } from './harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NS = 'proxy-recording';
const SESSION_RULES = [
  { verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] },
  { verbs: ['create'], apiGroups: [''], resources: ['pods/exec', 'pods/attach'] },
];
// Olivia's sessions record output only; Ian's grant records what he types as well.
const OUTPUT_ONLY = grant('ops-exec', [user('oidc:olivia')], SESSION_RULES, ns(NS), { line: 7 });
const WITH_INPUT = { ...grant('audited-exec', [user('oidc:ian')], SESSION_RULES, ns(NS), { line: 12 }), recordInput: true as const };
const RULES = ruleSet('dev', [OUTPUT_ONLY, WITH_INPUT]);
const RBAC = manifestsYaml(upstreamRole(NS, 'recording', [user('oidc:olivia'), user('oidc:ian')], [
  { verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] },
  { verbs: ['get', 'create'], apiGroups: [''], resources: ['pods/exec', 'pods/attach'] },
]));

const TRANSPORTS = [
  ['WebSocket', { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true' }],
  ['SPDY', { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' }],
] as const;

function replay(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(ROOT, 'bin/portcullis.js'), 'replay', ...args], { cwd: ROOT, encoding: 'utf8' });
}

/**
 * The records of another proxy's log that `pick` selects, once a ResponseComplete is among them:
 * a session's last record is written when the proxy sees the connection close, which may be just
 * after kubectl exits (polls for up to 5 s).
 */
async function recordsOf(proxy: { audit: { flush(): void } }, file: string, pick: (e: AuditEvent) => boolean): Promise<AuditEvent[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    proxy.audit.flush();
    const records = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent).filter(pick);
    if (records.some((e) => e.stage === 'ResponseComplete') || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('exec and attach sessions are recorded', () => {
  let h: Harness;
  let pod: string;
  let olivia: string;
  let ian: string;
  let recordings: string;
  before(async () => {
    h = await startHarness({ namespaces: [NS], rbac: RBAC, impersonable: RULES.impersonable, ruleSet: RULES });
    pod = await h.fleet.createPod(h.cluster, NS, { name: 'recorded' });
    olivia = h.kubeconfig(await h.token('olivia', []));
    ian = h.kubeconfig(await h.token('ian', []));
    recordings = h.config.audit.recordings?.dir ?? '';
  });
  after(async () => {
    await h?.stop();
  });

  /** The session's last record, once written (it waits for the recording's digest). */
  async function sessionEnd(marker: string): Promise<AuditEvent> {
    const find = (es: AuditEvent[]) => es.find((e) => e.stage === 'ResponseComplete' && e.requestURI.includes(marker));
    const e = find(await h.auditEventsWhen((es) => find(es) !== undefined));
    assert.ok(e, `no ResponseComplete record for ${marker}`);
    return e;
  }

  for (const [name, env] of TRANSPORTS) {
    it(`GIVEN kubectl exec over ${name} WHEN the command prints UTF-8 on stdout and stderr THEN its recording, named with its digest by the audit record, replays byte for byte what kubectl printed`, async () => {
      const marker = `grüße-${name}-✓`;
      const r = await h.kubectl(olivia, ['exec', pod, '-n', NS, '--', 'echo', marker, 'ünïcode', '日本'], env);
      assert.equal(r.status, 0, r.stderr);
      const end = await sessionEnd(encodeURIComponent(marker));
      const id = end.annotations['portcullis.dev/recording'];
      assert.equal(id, end.auditID, 'the recording is named by the session\'s audit ID');
      const started = h.auditEvents().find((e) => e.auditID === id && e.stage === 'ResponseStarted');
      assert.equal(started?.annotations['portcullis.dev/recording'], id, 'the session\'s first record names its recording too');
      const file = join(recordings, `${id}.cast`);
      const bytes = readFileSync(file);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), end.annotations['portcullis.dev/recording-sha256']);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const cast = parseCast(bytes.toString('utf8'));
      assert.equal(cast.header.portcullis.transport, name === 'SPDY' ? 'spdy' : 'websocket');
      assert.equal(cast.header.portcullis.user, 'oidc:olivia');
      assert.equal(cast.header.portcullis.pod, pod);
      assert.equal(cast.header.command, `echo ${marker} ünïcode 日本`);

      const p = replay([id ?? '', '--dir', recordings, '--no-wait', '--audit', h.auditFile]);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(p.stdout, r.stdout);
      assert.match(p.stderr, /digest matches its audit record/);

      const e = await h.kubectl(olivia, ['exec', pod, '-n', NS, '--', 'echo-err', `to-stderr-${name}`], env);
      assert.equal(e.status, 0, e.stderr);
      const errEnd = await sessionEnd(`to-stderr-${name}`);
      const errCast = parseCast(readFileSync(join(recordings, `${errEnd.auditID}.cast`), 'utf8'));
      assert.deepEqual(errCast.events.filter((x) => x[1] === 'o').map((x) => x[2]).join(''), e.stderr);
    });

    it(`GIVEN stdin piped to kubectl exec -i over ${name} WHEN the grant does not record input THEN the output is recorded and the input is not; WHEN it does THEN both are`, async () => {
      const typed = `typed over ${name}: ✓\n`;
      for (const [kc, who, withInput] of [[olivia, 'olivia', false], [ian, 'ian', true]] as const) {
        const before = new Set(h.auditEvents().map((x) => x.auditID));
        const r = await h.kubectl(kc, ['exec', '-i', pod, '-n', NS, '--', 'cat'], env, typed);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, typed);
        const events = await h.auditEventsWhen((es) => es.some((x) => !before.has(x.auditID) && x.stage === 'ResponseComplete' && x.annotations['portcullis.dev/recording-sha256'] !== undefined));
        const end = events.find((x) => !before.has(x.auditID) && x.stage === 'ResponseComplete' && x.annotations['portcullis.dev/recording'] !== undefined);
        assert.ok(end, `no record for ${who}`);
        const cast = parseCast(readFileSync(join(recordings, `${end.auditID}.cast`), 'utf8'));
        const input = cast.events.filter((x) => x[1] === 'i').map((x) => x[2]).join('');
        const output = cast.events.filter((x) => x[1] === 'o').map((x) => x[2]).join('');
        assert.equal(output, typed, `${who}'s output`);
        assert.equal(input, withInput ? typed : '', `${who}'s input`);
        assert.equal(cast.header.portcullis.input, withInput);
      }
    });
  }

  it('GIVEN kubectl attach -i WHEN the container greets and echoes THEN the attach session is recorded too', async () => {
    const r = await h.kubectl(olivia, ['attach', '-i', pod, '-n', NS], {}, 'hello attach\n');
    assert.equal(r.status, 0, r.stderr);
    const end = await sessionEnd('/attach?');
    const cast = parseCast(readFileSync(join(recordings, `${end.annotations['portcullis.dev/recording']}.cast`), 'utf8'));
    assert.equal(cast.header.portcullis.subresource, 'attach');
    assert.match(cast.events.map((x) => x[2]).join(''), /attached to .*recorded[\s\S]*hello attach/);
  });

  it('GIVEN a recording WHEN a byte of it is changed, or it is cut short THEN replay --audit refuses it (exit 1), naming the digest its record holds', async () => {
    const r = await h.kubectl(olivia, ['exec', pod, '-n', NS, '--', 'echo', 'tamper-me'], {});
    assert.equal(r.status, 0, r.stderr);
    const end = await sessionEnd('tamper-me');
    const file = join(recordings, `${end.auditID}.cast`);
    const good = readFileSync(file);
    writeFileSync(file, Buffer.from(good.toString('utf8').replace('tamper-me', 'tamper-ME')));
    let p = replay([end.auditID, '--dir', recordings, '--no-wait', '--audit', h.auditFile]);
    assert.equal(p.status, 1);
    assert.match(p.stderr, new RegExp(`is not the ${end.annotations['portcullis.dev/recording-sha256']} its audit record names`));
    writeFileSync(file, good.subarray(0, good.length - 5));
    p = replay([end.auditID, '--dir', recordings, '--no-wait', '--audit', h.auditFile]);
    assert.equal(p.status, 2, 'a cut line is not asciicast');
    writeFileSync(file, good);
    appendFileSync(file, '[9.0, "o", "added later"]\n');
    p = replay([end.auditID, '--dir', recordings, '--no-wait', '--audit', h.auditFile]);
    assert.equal(p.status, 1, p.stderr);
    p = replay(['no-such-recording', '--dir', recordings]);
    assert.equal(p.status, 2);
    assert.match(p.stderr, /no such recording/);
  });

  it('GIVEN recordings cannot be written WHEN onFailure is deny (the default) THEN exec is refused with 503 and nothing reaches the pod; WHEN it is serve THEN the session runs and its records say it was not recorded', async () => {
    const blocked = join(h.dir, 'not-a-directory');
    writeFileSync(blocked, 'a file where the recordings directory should be\n');
    for (const onFailure of ['deny', 'serve'] as const) {
      const x = await h.extraProxy((c) => ({ ...c, audit: { ...c.audit, file: { ...c.audit.file!, path: join(h.dir, `audit-${onFailure}.log`) }, onFailure, recordings: { dir: join(blocked, 'recordings'), maxBytes: 1 << 20 } } }));
      const kc = join(h.dir, `kc-${onFailure}.yaml`);
      writeFileSync(kc, readFileSync(olivia, 'utf8').replace(`127.0.0.1:${h.port}`, `127.0.0.1:${x.port}`));
      const r = await h.kubectl(kc, ['exec', pod, '-n', NS, '--', 'echo', `unrecorded-${onFailure}`], {});
      const records = await recordsOf(x.proxy, join(h.dir, `audit-${onFailure}.log`), (e) => e.requestURI.includes(`unrecorded-${onFailure}`));
      const end = records.find((e) => e.stage === 'ResponseComplete');
      if (onFailure === 'deny') {
        assert.notEqual(r.status, 0);
        assert.doesNotMatch(r.stdout, /unrecorded/);
        assert.match(r.stderr, /audit log|ServiceUnavailable|503/i);
        assert.equal(end?.responseStatus.code, 503);
        assert.equal(end?.annotations['portcullis.dev/error'], 'AUDIT_UNAVAILABLE');
        assert.match(end?.annotations['portcullis.dev/detail'] ?? '', /session recording cannot be written/);
        assert.ok(!records.some((e) => e.stage === 'ResponseStarted'), 'the session never started');
      } else {
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, 'unrecorded-serve\n');
        assert.match(end?.annotations['portcullis.dev/recording-error'] ?? '', /ENOTDIR|not a directory/i);
        assert.equal(end?.annotations['portcullis.dev/recording'], undefined);
      }
      // Under deny, kubectl tries WebSocket, then falls back to SPDY: each refusal is counted.
      const refused = onFailure === 'deny' ? records.filter((e) => e.annotations['portcullis.dev/error'] === 'AUDIT_UNAVAILABLE').length : 1;
      const m = await h.scrape('/metrics', x.metricsPort);
      assert.deepEqual(m.body.split('\n').filter((l) => l.startsWith('portcullis_session_recordings_total')), [`portcullis_session_recordings_total{cluster="dev",result="failed"} ${refused}`]);
    }
  });

  it('GIVEN a recording that cannot go on mid-session (its size limit) WHEN onFailure is deny THEN the live session is cut and audited stream-end: recording-failed', async () => {
    const dir = join(h.dir, 'small-recordings');
    const x = await h.extraProxy((c) => ({ ...c, audit: { ...c.audit, file: { ...c.audit.file!, path: join(h.dir, 'audit-small.log') }, recordings: { dir, maxBytes: 2048 } } }));
    const kc = join(h.dir, 'kc-small.yaml');
    writeFileSync(kc, readFileSync(olivia, 'utf8').replace(`127.0.0.1:${h.port}`, `127.0.0.1:${x.port}`));
    const live = h.spawnKubectl(kc, ['exec', '-i', pod, '-n', NS, '--', 'cat'], { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true' });
    try {
      live.write(`${'x'.repeat(1000)}\n`);
      await live.waitFor(/x{1000}/);
      live.write(`${'y'.repeat(3000)}\n`);
      const code = await Promise.race([live.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      assert.notEqual(code, 0, 'kubectl saw its session cut');
    } finally {
      live.kill();
    }
    const end = (await recordsOf(x.proxy, join(h.dir, 'audit-small.log'), (e) => e.objectRef?.subresource === 'exec')).find((e) => e.stage === 'ResponseComplete');
    assert.equal(end?.annotations['portcullis.dev/stream-end'], 'recording-failed');
    assert.match(end?.annotations['portcullis.dev/recording-error'] ?? '', /limit of 2048 bytes/);
  });
});
