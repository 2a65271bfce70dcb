import { Construct } from 'constructs';
import type { SourceLocation } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Fleet } from './fleet.ts';
import type { ClusterSelector } from './selectors.ts';

/** Properties of session limits. */
export interface SessionLimitsProps {
  /** The clusters they apply to, e.g. `{ labels: { env: 'prod' } }`. */
  readonly clusters: ClusterSelector;
  /** Unused for this long, a session no longer reaches these clusters (e.g. `'15m'`). @default the proxy's idleTimeoutMs */
  readonly idleTimeout?: string;
  /** This long after login, a session no longer reaches these clusters (e.g. `'4h'`). @default the proxy's maxLifetimeMs */
  readonly maxLifetime?: string;
}

/**
 * Shortens `portcullis login` sessions on some clusters: a session that is still good elsewhere
 * stops reaching a cluster these limits select once it has been idle, or alive, for longer. Limits
 * only shorten: the proxy's own timeouts still hold, and where several select a cluster the
 * shortest wins.
 */
export class SessionLimits extends Construct {
  readonly source: SourceLocation;
  constructor(
    scope: Fleet,
    id: string,
    readonly props: SessionLimitsProps,
  ) {
    super(scope, id);
    this.source = captureSource();
  }
}
