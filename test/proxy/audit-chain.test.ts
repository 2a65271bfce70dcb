// The tamper-evident audit log: a real log written by the sink (rotated, restarted), and
// `portcullis audit verify` finding each kind of tampering at its first line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { CHAIN } from '../../runtime-proxy/audit/chain.ts';
import { toAuditEvent } from '../../runtime-proxy/audit/event.ts';
import { AuditSink } from '../../runtime-proxy/audit/sink.ts';
import { verifyAuditFiles } from '../../runtime-proxy/audit/verify-files.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const event = (i: number) =>
  toAuditEvent({ auditId: `id-${i}`, stage: 'ResponseComplete', requestURI: `/api/v1/namespaces/n/configmaps/c${i}`, method: 'GET', receivedAt: 0, at: 0, sourceIP: '127.0.0.1', transport: 'http1', decision: 'allow', reason: 'grant', code: 200 });

/** 60 records by one sink, 25 more by a second (a restart), rotated at 8 KB, a checkpoint every 10. */
function writeLog(dir: string): string[] {
  const path = join(dir, 'audit.log');
  let n = 0;
  for (const count of [60, 25]) {
    const sink = new AuditSink({ file: { path, maxBytes: 8000, maxFiles: 9 }, stdout: false, flushIntervalMs: 3_600_000, checkpointEvery: 10 });
    for (let i = 0; i < count; i++) {
      sink.write(event(n++));
      sink.flush();
    }
    sink.close();
  }
  return [path, ...Array.from({ length: 9 }, (_, i) => `${path}.${i + 1}`)].filter(existsSync);
}

/** A copy of the log in a fresh directory, with `tamper` applied to the lines of one file. */
function tampered(files: readonly string[], which: number, tamper: (lines: string[]) => string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'audit-tampered-'));
  return files.map((f, i) => {
    const name = join(dir, f.slice(f.lastIndexOf('/') + 1));
    const lines = readFileSync(f, 'utf8').split('\n').slice(0, -1);
    writeFileSync(name, `${(i === which ? tamper(lines) : lines).join('\n')}\n`);
    for (const side of ['.pub.pem', '.head']) if (i === 0 && existsSync(f + side)) writeFileSync(name + side, readFileSync(f + side));
    return name;
  });
}

describe('tamper-evident audit log', () => {
  let files: string[];
  before(() => {
    files = writeLog(mkdtempSync(join(tmpdir(), 'audit-chain-')));
  });

  it('GIVEN a log rotated into several files and continued after a restart WHEN verified THEN the chain is unbroken and every record is counted, whatever order the files are given in', () => {
    assert.ok(files.length >= 3, files.join());
    const r = verifyAuditFiles([...files].reverse());
    assert.equal(r.ok, true, r.text);
    assert.match(r.text, /^ok: 85 records, 9 checkpoints, chain unbroken$/);
    // Still audit.k8s.io/v1 Events.
    for (const f of files) for (const l of readFileSync(f, 'utf8').trim().split('\n')) assert.equal((JSON.parse(l) as { apiVersion: string }).apiVersion, 'audit.k8s.io/v1');
  });

  const cases: [string, (lines: string[]) => string[], RegExp][] = [
    ['an edited record', (l) => l.map((x, i) => (i === 3 ? x.replace('"code":200', '"code":403') : x)), /:5: does not follow the line before it/],
    ['a deleted record', (l) => l.filter((_, i) => i !== 3), /:4: record \d+ where \d+ was next \(records deleted\)/],
    ['two records swapped', (l) => [l[0], l[2], l[1], ...l.slice(3)] as string[], /:2: record \d+ where \d+ was next/],
    ['a partial last line', (l) => [...l.slice(0, -1), (l.at(-1) as string).slice(0, 40)], /not a JSON line|does not end with a whole line/],
    ['the newest records cut off (whole lines)', (l) => l.slice(0, -3), /the log was cut short/],
    ['a checkpoint re-signed with another key', (l) => l.map((x) => (x.includes(CHAIN.checkpoint) ? resign(x) : x)), /checkpoint signed by unknown key/],
    ['a checkpoint whose signature was altered', (l) => l.map((x) => (x.includes(CHAIN.checkpoint) ? x.replace(/("portcullis.dev\/checkpoint-signature":")(.)/, (_, a: string, c: string) => a + (c === 'A' ? 'B' : 'A')) : x)), /signature does not verify \(forged\)/],
  ];
  for (const [name, tamper, expected] of cases) {
    it(`GIVEN ${name} WHEN verified THEN audit verify names the first line where the chain breaks`, () => {
      // The newest file (audit.log) for truncation; the oldest for the rest.
      const which = /cut off|partial/.test(name) ? 0 : files.length - 1;
      const r = verifyAuditFiles(tampered(files, which, tamper));
      assert.equal(r.ok, false, r.text);
      assert.match(r.text, expected);
    });
  }

  it('GIVEN `portcullis audit verify` WHEN run on the log and on a tampered copy THEN it exits 0, then 1 naming the line', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin', 'portcullis.js'), 'audit', 'verify', ...args], { encoding: 'utf8' });
    const ok = cli(files);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: 85 records/);
    const bad = cli(tampered(files, files.length - 1, (l) => l.filter((_, i) => i !== 5)));
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, /^BROKEN .*audit\.log\.\d+:6: record/);
  });
});

/** The checkpoint line signed again by a key of an attacker's own, over the same text. */
function resign(line: string): string {
  const e = JSON.parse(line) as { annotations: Record<string, string> };
  const { privateKey } = generateKeyPairSync('ed25519');
  const text = Buffer.from(`portcullis audit checkpoint\n${e.annotations[CHAIN.seq]}\n${e.annotations[CHAIN.prev]}\n`);
  e.annotations[CHAIN.checkpoint] = sign(null, text, privateKey).toString('base64');
  e.annotations[CHAIN.key] = 'f'.repeat(16);
  return JSON.stringify(e);
}
