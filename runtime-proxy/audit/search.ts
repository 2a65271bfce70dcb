import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { AUDIT_ANNOTATION as A } from '../../core/names.ts';
import { CHECKPOINT_URI } from './chain.ts';
import type { AuditEvent } from './event.ts';

/**
 * `portcullis audit search`: the records of several replicas' files that match every filter
 * given, oldest first. The person is matched as the proxy authenticated them (`user.username`)
 * or as they acted upstream (`impersonatedUser.username`); the time range applies to when the
 * request was received. Checkpoint lines are the chain's, not requests: never matched.
 */
export interface AuditQuery {
  readonly user?: string;
  readonly cluster?: string;
  readonly grant?: string;
  readonly decision?: 'allow' | 'deny' | 'error';
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
  /** @default both stages */
  readonly stage?: 'ResponseStarted' | 'ResponseComplete';
}

/** Whether one record matches; pure. */
export function matches(e: AuditEvent, q: AuditQuery): boolean {
  if (e.requestURI === CHECKPOINT_URI) return false;
  const ann = e.annotations ?? {};
  if (q.user !== undefined && e.user?.username !== q.user && e.impersonatedUser?.username !== q.user) return false;
  if (q.cluster !== undefined && ann[A.cluster] !== q.cluster) return false;
  if (q.grant !== undefined && ann[A.grant] !== q.grant) return false;
  if (q.decision !== undefined && ann[A.decision] !== q.decision) return false;
  if (q.stage !== undefined && e.stage !== q.stage) return false;
  if (q.since !== undefined || q.until !== undefined) {
    const t = Date.parse(e.requestReceivedTimestamp);
    if (q.since !== undefined && !(t >= q.since)) return false;
    if (q.until !== undefined && !(t < q.until)) return false;
  }
  return true;
}

/** What a search found, and what it could not read (named by file:line, never silently skipped). */
export interface SearchResult {
  readonly events: readonly AuditEvent[];
  readonly scanned: number;
  readonly unreadable: readonly string[];
}

/** Streams every file (large logs are never held whole), keeps the matches, sorts them by time received. */
export async function searchAuditFiles(files: readonly string[], q: AuditQuery): Promise<SearchResult> {
  const events: AuditEvent[] = [];
  const unreadable: string[] = [];
  let scanned = 0;
  for (const file of files) {
    let n = 0;
    for await (const line of createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })) {
      n++;
      if (line === '') continue;
      let e: AuditEvent;
      try {
        e = JSON.parse(line) as AuditEvent;
      } catch {
        unreadable.push(`${file}:${n}`);
        continue;
      }
      scanned++;
      if (matches(e, q)) events.push(e);
    }
  }
  events.sort((a, b) => Date.parse(a.requestReceivedTimestamp) - Date.parse(b.requestReceivedTimestamp) || a.stageTimestamp.localeCompare(b.stageTimestamp));
  return { events, scanned, unreadable };
}

/** `--since 15m` or an ISO time; epoch ms. */
export function parseTime(text: string, now: number): number {
  const d = /^(\d+)(s|m|h|d)$/.exec(text);
  if (d) return now - Number(d[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`${text}: neither a duration (15m, 2h, 7d) nor a time (2026-12-04T10:00:00Z)`);
  return t;
}

/** One line per record: time, cluster, user, verb, URI, code, decision and the grant or deny that decided. */
export function formatRecord(e: AuditEvent): string {
  const ann = e.annotations ?? {};
  const who = e.user?.username ?? '?';
  const rule = ann[A.grant] ?? ann[A.deny] ?? ann[A.reason] ?? '';
  return [e.requestReceivedTimestamp, ann[A.cluster] ?? '-', who, e.verb, e.requestURI, String(e.responseStatus?.code ?? ''), ann[A.decision] ?? '-', rule, e.auditID].join('  ');
}
