import { formatDuration } from './duration.ts';

/**
 * How far a bundle is from its `notAfter`, the one place the product decides it:
 * `compile --check` (margin: the renewal window), the proxy's readiness and its
 * warning (margin: `bundleExpiry.warnBeforeMs`). Pure; the clock is passed in.
 */
export type BundleExpiry =
  | { readonly state: 'valid'; readonly notAfter: number; readonly remainingMs: number }
  | { readonly state: 'expiring'; readonly notAfter: number; readonly remainingMs: number }
  | { readonly state: 'expired'; readonly notAfter: number };

/** Classifies `notAfter` (ms since the epoch) at `now`: expired at and after it, expiring within `marginMs` before it. */
export function bundleExpiry(notAfter: number, now: number, marginMs: number): BundleExpiry {
  if (!(now < notAfter)) return { state: 'expired', notAfter };
  const remainingMs = notAfter - now;
  return { state: remainingMs <= marginMs ? 'expiring' : 'valid', notAfter, remainingMs };
}

/** One line for people: `expires 2026-12-22T11:30:12.214Z (in 5d 3h)` or `expired at …`. */
export function describeExpiry(e: BundleExpiry): string {
  const at = new Date(e.notAfter).toISOString();
  return e.state === 'expired' ? `expired at ${at}` : `expires ${at} (in ${formatDuration(e.remainingMs)})`;
}
