// The audit sink's blocking mode at 10,000 records/s: how long a response waits for its record
// (written with the records of concurrent requests, group commit), side by side with batch mode,
// where it waits for nothing and a crash loses up to flushIntervalMs of records. Issue 15's target:
// at most 1 ms added at p99, 0 lost.
//
// Run: node bin/run-ts.js bench/audit.ts [--seconds N]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toAuditEvent } from '../runtime-proxy/audit/event.ts';
import { benchAuditFacts } from './proxy-support.ts';
import { AuditSink } from '../runtime-proxy/audit/sink.ts';
import { Chain, headAfter } from '../runtime-proxy/audit/chain.ts';

const args = process.argv.slice(2);
const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 5;
const RATE = 10_000;

const facts = (i: number, now: number) => benchAuditFacts(i, now, 'bench');

/** Offers RATE records/s for `seconds` (10 every 1 ms), each "response" waiting for `committed()`. */
async function run(mode: 'blocking' | 'batch'): Promise<{ p50: number; p99: number; max: number; queued: number; lines: number; rate: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'audit-bench-'));
  const path = join(dir, 'audit.log');
  const sink = new AuditSink({ stdout: false, file: { path, maxBytes: 1 << 30, maxFiles: 1 }, flushIntervalMs: 200, mode });
  const waits: number[] = [];
  let queued = 0;
  const perMs = RATE / 1000;
  const total = RATE * seconds;
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let ms = 0; queued < total && ms < seconds * 1000 * 3; ms++) {
    for (let j = 0; j < perMs && queued < total; j++) {
      const at = performance.now();
      sink.write(toAuditEvent(facts(queued++, Date.now())));
      pending.push(sink.committed().then(() => void waits.push(performance.now() - at)));
    }
    const wait = t0 + (ms + 1) - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - t0) / 1000;
  sink.close();
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0 && !l.includes('"verb":"checkpoint"')).length;
  rmSync(dir, { recursive: true });
  waits.sort((a, b) => a - b);
  const q = (p: number) => waits[Math.min(waits.length - 1, Math.floor(p * waits.length))] ?? 0;
  return { p50: q(0.5), p99: q(0.99), max: waits.at(-1) ?? 0, queued, lines, rate: queued / elapsed };
}

const blocking = await run('blocking');
const batch = await run('batch');
const row = (name: string, r: typeof blocking) =>
  `${name.padEnd(9)} ${r.rate.toFixed(0).padStart(7)}/s  wait p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  max ${r.max.toFixed(2)} ms  records ${r.queued}, in the file at the end ${r.lines} (checkpoints apart)`;
console.log(`audit sink, ${RATE} records/s offered for ${seconds} s (each response waits for its record in blocking mode)`);
console.log(row('blocking', blocking));
console.log(row('batch', batch));
console.log(`added p99 latency, blocking over batch: ${(blocking.p99 - batch.p99).toFixed(3)} ms (target ≤ 1 ms); batch loses up to flushIntervalMs (200 ms) of records on kill -9`);

// The hash chain and checkpoints: the cost per record of linking (the previous line's SHA-256 and
// the sequence number, one more stringify) and of a signed checkpoint every 1,000, against
// serializing the line alone. Issue 15's target: at most 5 µs per record.
{
  const n = 200_000;
  const events = Array.from({ length: 1000 }, (_, i) => toAuditEvent(facts(i, Date.now())));
  const chain = new Chain(headAfter(undefined));
  for (let i = 0; i < 20_000; i++) chain.link(events[i % 1000] as ReturnType<typeof toAuditEvent>);
  let t = performance.now();
  let bytes = 0;
  for (let i = 0; i < n; i++) bytes += JSON.stringify(events[i % 1000]).length;
  const plain = ((performance.now() - t) * 1000) / n;
  t = performance.now();
  for (let i = 0; i < n; i++) {
    bytes += chain.link(events[i % 1000] as ReturnType<typeof toAuditEvent>).length;
    if (i % 1000 === 999) bytes += chain.checkpoint(Date.now()).length;
  }
  const chained = ((performance.now() - t) * 1000) / n;
  console.log(`line per record: plain ${plain.toFixed(2)} µs, chained with a checkpoint every 1,000 ${chained.toFixed(2)} µs: ${(chained - plain).toFixed(2)} µs added (target ≤ 5 µs), ${(chained / plain).toFixed(2)}× (${bytes} bytes)`);
}
