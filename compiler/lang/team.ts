import { Construct } from 'constructs';
import type { SourceLocation } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Fleet } from './fleet.ts';
import { Grant, type GrantProps } from './grant.ts';
import type { Principal } from './identity.ts';
import type { ClusterSelector, NamespaceSelector } from './selectors.ts';

/** The label every namespace of a team carries. */
export const TEAM_LABEL = 'portcullis.dev/team';

/** Properties of a team. */
export interface TeamProps {
  /** The team's identity-provider group. */
  readonly group: Principal;
  /** The people of the team (named so the proxy may impersonate them). @default [] */
  readonly members?: readonly Principal[];
  /** The team's namespaces, created on every cluster the team is on. */
  readonly namespaces: readonly string[];
  /** The clusters the team is on. @default 'all' */
  readonly clusters?: ClusterSelector;
  /** Extra labels on the team's namespaces. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/** What `team.grant()` takes: a grant whose subjects, clusters and namespaces default to the team's. */
export type TeamGrantProps = Omit<GrantProps, 'to' | 'clusters' | 'namespaces'> & {
  /** @default the team's group */
  readonly to?: GrantProps['to'];
  /** @default the team's clusters */
  readonly clusters?: ClusterSelector;
  /** @default the team's namespaces */
  readonly namespaces?: NamespaceSelector;
};

/** A team: its namespaces, its people and its grants, declared in one place. */
export class Team extends Construct {
  readonly source: SourceLocation;
  constructor(
    scope: Fleet,
    id: string,
    readonly props: TeamProps,
  ) {
    super(scope, id);
    this.source = captureSource();
  }

  /** The namespace selector of this team's namespaces. */
  get namespaceSelector(): NamespaceSelector {
    return { labels: { [TEAM_LABEL]: this.node.id } };
  }

  /** Grants a role, by default to the team's group in the team's namespaces on the team's clusters. */
  grant(id: string, props: TeamGrantProps): Grant {
    return new Grant(this, id, {
      ...props,
      to: props.to ?? [this.props.group],
      clusters: props.clusters ?? this.props.clusters ?? 'all',
      namespaces: props.namespaces ?? this.namespaceSelector,
    });
  }
}

/** Properties of a namespace declared outside a team. */
export interface NamespaceProps {
  /** The clusters it exists on. @default 'all' */
  readonly clusters?: ClusterSelector;
  /** Its labels. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/** A namespace the policy declares (and `apply` creates). Its id is its name. */
export class Namespace extends Construct {
  readonly source: SourceLocation;
  constructor(
    scope: Fleet,
    readonly name: string,
    readonly props: NamespaceProps = {},
  ) {
    // Kind-qualified, so a Cluster, a Team or a Grant may share the name ('dev').
    super(scope, `namespace:${name}`);
    this.source = captureSource();
  }
}
