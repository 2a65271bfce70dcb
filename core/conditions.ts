import type { Conditions, TimeWindow, Weekday } from './rule-set.ts';

/** Whether a grant's conditions hold at `now`, and if not, why. */
export type ConditionResult = { readonly active: true } | { readonly active: false; readonly why: string };

const ACTIVE: ConditionResult = { active: true };
const DAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * Pure: the clock and the set of activated grants (break-glass invoked, request approved) are passed in.
 * A grant is active only if every condition holds.
 */
export function evaluateConditions(
  grantId: string,
  c: Conditions,
  now: number,
  breakGlass: ReadonlySet<string>,
): ConditionResult {
  if (c.notBefore !== undefined && now < Date.parse(c.notBefore)) return { active: false, why: `not before ${c.notBefore}` };
  if (c.expires !== undefined && now >= Date.parse(c.expires)) return { active: false, why: `expired at ${c.expires}` };
  if (c.windows !== undefined && !c.windows.some((w) => inWindow(w, now))) return { active: false, why: 'outside its time windows' };
  if (c.breakGlass !== undefined && !breakGlass.has(grantId)) return { active: false, why: 'break-glass not invoked' };
  // Approved requests are activations like break-glass invocations: the same set says which are live.
  if (c.approval !== undefined && !breakGlass.has(grantId)) return { active: false, why: 'no approved request' };
  return ACTIVE;
}

/** The instant a grant stops being active on its own (expiry or window end), for closing long-running requests. */
export function activeUntil(c: Conditions, now: number): number {
  let until = Number.POSITIVE_INFINITY;
  if (c.expires !== undefined) until = Math.min(until, Date.parse(c.expires));
  if (c.windows !== undefined) {
    // Walk forward minute by minute is too slow; step to each window's end instead.
    const ends = c.windows.filter((w) => inWindow(w, now)).map((w) => windowEnd(w, now));
    if (ends.length > 0) until = Math.min(until, Math.max(...ends));
  }
  return until;
}

/** Whether `now` falls in the weekly window, in the window's time zone. */
export function inWindow(w: TimeWindow, now: number): boolean {
  const { day, minutes } = localTime(w.timeZone, now);
  return w.days.includes(day) && minutes >= toMinutes(w.start) && minutes < toMinutes(w.end);
}

function windowEnd(w: TimeWindow, now: number): number {
  const { minutes } = localTime(w.timeZone, now);
  return now - (now % 60_000) + (toMinutes(w.end) - minutes) * 60_000;
}

/** "HH:MM" to minutes after midnight; NaN when malformed. */
export function toMinutes(hhmm: string): number {
  const m = /^([01]\d|2[0-4]):([0-5]\d)$/.exec(hhmm);
  if (!m) return Number.NaN;
  const v = Number(m[1]) * 60 + Number(m[2]);
  return v > 24 * 60 ? Number.NaN : v;
}

function localTime(timeZone: string, now: number): { day: Weekday; minutes: number } {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  let day: Weekday = 'sun';
  let hour = 0;
  let minute = 0;
  for (const p of f.formatToParts(now)) {
    if (p.type === 'weekday') day = DAYS[['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(p.value)] ?? 'sun';
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day, minutes: hour * 60 + minute };
}
