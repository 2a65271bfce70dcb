import { Construct } from 'constructs';
import type { SourceLocation, TimeWindow } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Principal } from './identity.ts';
import type { IRole } from './role.ts';
import type { ClusterSelector, NamespaceSelector } from './selectors.ts';

/** Break-glass: inactive until invoked with a reason. */
export interface BreakGlassProps {
  /** The longest one invocation may last, e.g. `'1h'`, `'30m'`. Required: break-glass without a bound is refused. */
  readonly maxDuration: string;
  /** Webhook URLs told about every invocation. @default [] */
  readonly notify?: readonly string[];
}

/** Access on request: a person the grant names asks, someone else approves. */
export interface ApprovalProps {
  /** Who may approve (never the requester, even if named here). */
  readonly approvers: readonly Principal[];
  /** The longest one approval may last, e.g. `'4h'`. Required. */
  readonly maxDuration: string;
}

/** Properties of a grant. */
export interface GrantProps {
  /** Who gets the role. */
  readonly to: readonly Principal[];
  /** What they get. */
  readonly role: IRole;
  /** On which clusters. */
  readonly clusters: ClusterSelector;
  /** Where in those clusters. */
  readonly namespaces: NamespaceSelector;
  /** Not active before this instant (RFC 3339). @default active now */
  readonly notBefore?: string;
  /** Not active from this instant on (RFC 3339): time-bound access. @default never expires */
  readonly expires?: string;
  /** Active only inside one of these weekly windows. @default always */
  readonly windows?: readonly TimeWindow[];
  /** Inactive until invoked with a reason. @default not break-glass */
  readonly breakGlass?: BreakGlassProps;
  /** Inactive until a request for it is approved by someone else (`portcullis request`, `approve`). @default not requestable */
  readonly approval?: ApprovalProps;
  /**
   * Exec and attach sessions this grant allows are recorded with their input (what is typed), not
   * only their output. Input can hold secrets typed at a prompt: turn it on where the audit needs it.
   * @default false: output only
   */
  readonly recordInput?: boolean;
  /** Acknowledges escalation-prone rights in the role, with the reason. @default none */
  readonly acknowledgeEscalation?: string;
}

/** Gives subjects a role in a place, possibly under conditions. Its id is stable: the construct path. */
export class Grant extends Construct {
  readonly source: SourceLocation;
  constructor(
    scope: Construct,
    id: string,
    readonly props: GrantProps,
  ) {
    super(scope, id);
    this.source = captureSource();
  }
}
