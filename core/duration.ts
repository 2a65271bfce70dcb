/** `90s`, `30m`, `2h`, `14d` (or combinations like `1h30m`) to seconds; undefined when malformed or zero. */
export function parseDuration(s: string): number | undefined {
  const t = s.trim();
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(t);
  if (!m || t === '') return undefined;
  const [d, h, mi, se] = [m[1], m[2], m[3], m[4]].map((x) => Number(x ?? 0)) as [number, number, number, number];
  const total = d * 86400 + h * 3600 + mi * 60 + se;
  return total > 0 && Number.isSafeInteger(total) ? total : undefined;
}

/** A duration in milliseconds for people: `13d 4h`, `5h 2m`, `40s`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  return m > 0 ? `${m}m` : `${s}s`;
}
