import { parseDuration, toMinutes, type TimeWindow } from '../../core/index.ts';
import type { GrantProps } from '../lang/grant.ts';
import type { ProblemCode } from '../problem.ts';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** Problems with a grant's time conditions and break-glass settings. */
export function checkConditions(p: GrantProps): { code: ProblemCode; message: string; hint?: string }[] {
  const out: { code: ProblemCode; message: string; hint?: string }[] = [];
  for (const [field, v] of [['notBefore', p.notBefore], ['expires', p.expires]] as const) {
    if (v !== undefined && Number.isNaN(Date.parse(v))) out.push({ code: 'INVALID_TIME', message: `${field} '${v}' is not an RFC 3339 time`, hint: "e.g. '2026-12-31T18:00:00Z'" });
  }
  if (p.notBefore && p.expires && Date.parse(p.notBefore) >= Date.parse(p.expires)) {
    out.push({ code: 'INVALID_TIME', message: `notBefore ${p.notBefore} is not before expires ${p.expires}` });
  }
  if (p.breakGlass !== undefined) {
    if (p.breakGlass.maxDuration === undefined || parseDuration(p.breakGlass.maxDuration) === undefined) {
      out.push({ code: 'BREAK_GLASS_NO_MAX_DURATION', message: `break-glass needs a maximum duration like '1h', got ${JSON.stringify(p.breakGlass.maxDuration)}` });
    }
  }
  if (p.approval !== undefined) {
    if (parseDuration(p.approval.maxDuration) === undefined) out.push({ code: 'BREAK_GLASS_NO_MAX_DURATION', message: `approval needs a maximum duration like '4h', got ${JSON.stringify(p.approval.maxDuration)}` });
    if (p.approval.approvers.length === 0) out.push({ code: 'EMPTY_RULE', message: 'approval names no approvers: nobody could ever approve a request', hint: 'approvers: [id.sre]' });
    if (p.breakGlass !== undefined) out.push({ code: 'EMPTY_RULE', message: 'a grant is break-glass or requestable, not both', hint: 'make two grants' });
  }
  for (const w of p.windows ?? []) {
    const why = windowNeverOpens(w);
    if (why) out.push({ code: 'WINDOW_NEVER_OPENS', message: `window ${JSON.stringify(w)} never opens: ${why}` });
  }
  if (p.windows !== undefined && p.windows.length === 0) out.push({ code: 'WINDOW_NEVER_OPENS', message: 'windows is an empty list: the grant would never be active' });
  return out;
}

function windowNeverOpens(w: TimeWindow): string | undefined {
  if (w.days.length === 0) return 'no days';
  const bad = w.days.filter((d) => !DAYS.includes(d));
  if (bad.length) return `unknown day ${bad.join(', ')} (use ${DAYS.join(', ')})`;
  const s = toMinutes(w.start);
  const e = toMinutes(w.end);
  if (Number.isNaN(s) || Number.isNaN(e)) return "times must be 'HH:MM'";
  if (s >= e) return `start ${w.start} is not before end ${w.end}`;
  if (!knownTimeZone(w.timeZone)) return `unknown time zone '${w.timeZone}'`;
  return undefined;
}

const zones = new Map<string, boolean>();
function knownTimeZone(tz: string): boolean {
  let ok = zones.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    zones.set(tz, ok);
  }
  return ok;
}
