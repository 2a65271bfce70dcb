// Run by audit-sink.test.ts inside a mount namespace of its own, with DIR a 256 KiB tmpfs:
// fills the file system, writes audit chunks until one fails part-way, frees space, writes on,
// and prints what it saw as JSON.
import { rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toAuditEvent } from '../../runtime-proxy/audit/event.ts';
import { AuditSink } from '../../runtime-proxy/audit/sink.ts';

const dir = process.argv[2] ?? '';
const path = join(dir, 'audit.log');
const filler = join(dir, 'filler');
const free = (): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};
writeFileSync(filler, Buffer.alloc(free() - 96 * 1024));
const sink = new AuditSink({ file: { path, maxBytes: 1e9, maxFiles: 1 }, stdout: false, flushIntervalMs: 3_600_000 });
const event = (i: number) =>
  toAuditEvent({ auditId: `id-${i}`, stage: 'ResponseComplete', requestURI: `/api/v1/namespaces/n/configmaps/${'x'.repeat(200)}`, method: 'GET', receivedAt: 0, at: 0, sourceIP: '127.0.0.1', transport: 'http1', decision: 'allow', reason: 'grant', code: 200 });
let next = 0;
let failure: { freeBefore: number; sizeBefore: number; sizeAfter: number } | undefined;
while (!failure && next < 10_000) {
  for (let i = 0; i < 50; i++) sink.write(event(next++));
  const freeBefore = free();
  const sizeBefore = statSync(path).size;
  if (!sink.flush()) failure = { freeBefore, sizeBefore, sizeAfter: statSync(path).size };
}
const retriedWhileFull = sink.flush();
rmSync(filler);
const recovered = sink.flush();
for (let i = 0; i < 50; i++) sink.write(event(next++));
sink.close();
process.stdout.write(JSON.stringify({ failure, retriedWhileFull, recovered, queued: next }));
