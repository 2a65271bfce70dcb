import type { AuditEvent } from '../runtime-proxy/audit/event.ts';
import { AUDIT_ANNOTATION as A } from '../core/names.ts';

/** One audit record as the live feed shows it: who did what where, and what decided it. */
export interface ActivityItem {
  readonly at: string;
  readonly auditID: string;
  readonly stage: string;
  readonly cluster: string;
  readonly user: string;
  readonly verb: string;
  /** `namespace/resource/name` or the path of a non-resource request. */
  readonly target: string;
  readonly code: number;
  readonly decision: string;
  readonly reason: string;
  /** The grant that allowed it, if any. */
  readonly grant?: string;
  /** The deny that refused it, if any. */
  readonly deny?: string;
  /** The policy line of that grant or deny. */
  readonly source?: string;
  /** Why it was refused, as the record says (e.g. `no active grant (inactive: ID: why)`). */
  readonly detail?: string;
  /** A refusal for want of an active grant: the grants that would have allowed it, with their policy lines. */
  readonly missing?: readonly { readonly grant: string; readonly source: string; readonly why: string }[];
}

/** What a subscriber asked to see, beyond what it may see. */
export interface ActivityFilter {
  readonly cluster?: string;
  readonly user?: string;
  readonly verb?: string;
  readonly decision?: string;
}

/** The compact view of an audit record; undefined for the console's own requests (its pages and API), which stay in the log only. */
export function activityOf(e: AuditEvent): ActivityItem | undefined {
  if (e.requestURI.startsWith('/console')) return undefined;
  const an = e.annotations;
  const o = e.objectRef;
  const target = o ? [o.namespace, o.subresource ? `${o.resource ?? ''}/${o.subresource}` : o.resource, o.name].filter((x) => x !== undefined && x !== '').join('/') : e.requestURI.split('?')[0] ?? '';
  return {
    at: e.stageTimestamp,
    auditID: e.auditID,
    stage: e.stage,
    cluster: an[A.cluster] ?? '',
    user: e.user.username,
    verb: e.verb,
    target,
    code: e.responseStatus.code,
    decision: an[A.decision] ?? '',
    reason: an[A.reason] ?? '',
    ...(an[A.grant] !== undefined ? { grant: an[A.grant] } : {}),
    ...(an[A.deny] !== undefined ? { deny: an[A.deny] } : {}),
    ...(an[A.source] !== undefined ? { source: an[A.source] } : {}),
    ...(an[A.detail] !== undefined ? { detail: an[A.detail] } : {}),
  };
}

/**
 * A refusal for want of an active grant names, in its record's detail, the grants that would
 * have allowed it and why they were inactive (`no active grant (inactive: ID: why; …)`); this
 * adds each one's policy line from the cluster's rule set. Pure.
 */
export function withMissingGrants(item: ActivityItem, sourceOf: (cluster: string, grant: string) => string | undefined): ActivityItem {
  const m = /^no active grant \(inactive: (.*)\)$/.exec(item.detail ?? '');
  if (item.decision !== 'deny' || item.deny !== undefined || !m) return item;
  const missing = (m[1] ?? '').split('; ').flatMap((part) => {
    const i = part.indexOf(': ');
    const grant = i < 0 ? part : part.slice(0, i);
    const source = sourceOf(item.cluster, grant);
    return source !== undefined ? [{ grant, source, why: i < 0 ? '' : part.slice(i + 2) }] : [];
  });
  return missing.length > 0 ? { ...item, missing } : item;
}

/** Whether an item passes a subscriber's filter (every field given must match exactly). */
export function matches(item: ActivityItem, f: ActivityFilter): boolean {
  return (f.cluster === undefined || item.cluster === f.cluster) && (f.user === undefined || item.user === f.user) && (f.verb === undefined || item.verb === f.verb) && (f.decision === undefined || item.decision === f.decision);
}

type Listener = (item: ActivityItem) => void;

/**
 * The live feed: every audit record this replica writes (and, with a shared store, every other
 * replica's, through `relay`), fanned out to the console's subscribers. Each subscriber has its
 * own `visible` test (its own records, or an auditor's clusters) and filter; a slow subscriber
 * is the SSE stream's problem (bounded there), never the audit path's.
 */
export class ActivityFeed {
  readonly #listeners = new Set<Listener>();
  /** The last records, so a new subscriber's chart starts with the last minutes. */
  readonly #recent: ActivityItem[] = [];

  constructor(private readonly maxRecent = 500) {}

  /** A record written here or heard from another replica. */
  publish(item: ActivityItem): void {
    this.#recent.push(item);
    if (this.#recent.length > this.maxRecent) this.#recent.shift();
    for (const l of this.#listeners) l(item);
  }

  /** Subscribes; `visible` decides what this person may see at all. Returns the recent items they may see, and the unsubscribe. */
  subscribe(visible: (item: ActivityItem) => boolean, filter: ActivityFilter, send: Listener): { readonly recent: readonly ActivityItem[]; readonly stop: () => void } {
    const l: Listener = (item) => {
      if (visible(item) && matches(item, filter)) send(item);
    };
    this.#listeners.add(l);
    return { recent: this.#recent.filter((i) => visible(i) && matches(i, filter)), stop: () => void this.#listeners.delete(l) };
  }

  get subscribers(): number {
    return this.#listeners.size;
  }
}
