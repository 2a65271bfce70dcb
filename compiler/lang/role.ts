import { Construct } from 'constructs';
import type { PolicyRule, SourceLocation } from '../../core/index.ts';
import { AUDIT_PATH, LOCKS_PATH } from '../../core/names.ts';
import bootstrap from '../data/bootstrap-roles.json' with { type: 'json' };
import { captureSource } from '../private/source-location.ts';
import type { Fleet } from './fleet.ts';

/** Anything a grant can give: a built-in template or a custom Role. */
export interface IRole {
  readonly roleName: string;
  readonly rules: readonly PolicyRule[];
  /** Escalation-prone rights this role is acknowledged to carry, with why. @default none */
  readonly acknowledgeEscalation?: string;
  /** A built-in template: Kubernetes' own rules, not checked against the catalog (they name legacy groups such as `extensions`). @default false */
  readonly builtin?: boolean;
}

/** Options of a rule added with a verb method. */
export interface AllowOptions {
  /** API groups; `''` is the core group. @default [''] */
  readonly apiGroups?: readonly string[];
  /** Only these object names. @default every name */
  readonly resourceNames?: readonly string[];
}

/** Properties of a custom role. */
export interface RoleProps {
  /** Rules with exactly RBAC's PolicyRule meaning. @default [] */
  readonly rules?: readonly PolicyRule[];
  /** Acknowledges escalation-prone rights (bind, escalate, impersonate, nodes/proxy, `*` on `*`), with the reason. @default none */
  readonly acknowledgeEscalation?: string;
}

/** A custom role: RBAC rules under a name. */
export class Role extends Construct implements IRole {
  readonly source: SourceLocation;
  readonly roleName: string;
  readonly acknowledgeEscalation?: string;
  private readonly list: PolicyRule[];

  constructor(scope: Fleet, id: string, props: RoleProps = {}) {
    super(scope, id);
    this.source = captureSource();
    this.roleName = id;
    this.list = [...(props.rules ?? [])];
    if (props.acknowledgeEscalation !== undefined) this.acknowledgeEscalation = props.acknowledgeEscalation;
  }

  /** The role's rules. */
  get rules(): readonly PolicyRule[] {
    return this.list;
  }

  /** Allows verbs on resources (`pods`, `pods/log`, `deployments`…). */
  allow(verbs: readonly string[], resources: readonly string[], opts: AllowOptions = {}): this {
    this.list.push({
      apiGroups: opts.apiGroups ?? [''],
      resources,
      verbs,
      ...(opts.resourceNames ? { resourceNames: opts.resourceNames } : {}),
    });
    return this;
  }

  /** Allows get, list and watch on resources. */
  allowRead(resources: readonly string[], opts: AllowOptions = {}): this {
    return this.allow(['get', 'list', 'watch'], resources, opts);
  }

  /** Allows verbs on non-resource URLs (`/healthz`, `/metrics`, `/logs/*`). */
  allowNonResource(verbs: readonly string[], urls: readonly string[]): this {
    this.list.push({ nonResourceURLs: urls, verbs });
    return this;
  }
}

const template = (roleName: string, rules: readonly PolicyRule[]): IRole => ({
  roleName,
  rules,
  builtin: true,
  // edit and admin carry impersonate on serviceaccounts by Kubernetes' design.
  acknowledgeEscalation: `Kubernetes' built-in ${roleName} role`,
});

/**
 * Built-in role templates. view, edit and admin carry exactly the rules
 * Kubernetes aggregates into its own view, edit and admin ClusterRoles
 * (compiler/data/bootstrap-roles.json, from `portcullis discover --bootstrap-roles`).
 */
export const Roles = {
  /** Kubernetes' `view`: read most namespaced objects, not secrets. */
  view: template('view', bootstrap.view),
  /** Kubernetes' `edit`: change most namespaced objects, read and write secrets, no RBAC. */
  edit: template('edit', bootstrap.edit),
  /** Kubernetes' `admin`: edit plus Roles and RoleBindings in the namespace. */
  admin: template('admin', bootstrap.admin),
  /** Read pods and their logs. */
  logs: template('logs', [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  ]),
  /** Exec into and attach to pods (create on pods/exec and pods/attach, as kube-apiserver authorizes them), and debug with ephemeral containers. */
  exec: template('exec', [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods/exec', 'pods/attach'], verbs: ['create', 'get'] },
    { apiGroups: [''], resources: ['pods/ephemeralcontainers'], verbs: ['patch', 'update'] },
  ]),
  /**
   * Set, lift and list locks (`portcullis lock`): a lock cuts a person, a group, a cluster or a
   * grant off everywhere within a second. Grant it cluster-wide (`namespaces: 'cluster'`); on any
   * cluster it allows locking people, groups and grants, and on its own cluster, locking the cluster.
   */
  locker: template('locker', [{ nonResourceURLs: [LOCKS_PATH], verbs: ['get', 'post', 'delete'] }]),
  /**
   * Watch the whole fleet's audit events in the console (live activity, filterable) and ask
   * explain and who-can there. Grant it cluster-wide (`namespaces: 'cluster'`): an auditor of a
   * cluster sees that cluster's events; one of every cluster also sees the front door's.
   */
  auditor: template('auditor', [{ nonResourceURLs: [AUDIT_PATH], verbs: ['get'] }]),
  /** Port-forward to pods. */
  portForward: template('port-forward', [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create', 'get'] },
  ]),
} as const satisfies Record<string, IRole>;
