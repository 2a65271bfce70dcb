import { Construct } from 'constructs';
import type { SourceLocation, Subject } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Fleet } from './fleet.ts';

/** A subject of the policy, remembering where it was declared. */
export interface Principal extends Subject {
  readonly source: SourceLocation;
}

/** Properties of an identity provider. */
export interface IdentityProviderProps {
  /** The OIDC issuer URL. */
  readonly issuer: string;
  /** Prefix of every username from this issuer, e.g. `oidc:`; never empty, so names cannot collide with `system:`. */
  readonly usernamePrefix: string;
  /** Prefix of every group from this issuer. @default the username prefix */
  readonly groupsPrefix?: string;
}

/** An OIDC identity provider: people, or CI workload identities such as GitHub Actions. */
export class IdentityProvider extends Construct {
  readonly source: SourceLocation;
  readonly groupsPrefix: string;
  constructor(
    scope: Fleet,
    id: string,
    readonly props: IdentityProviderProps,
  ) {
    super(scope, id);
    this.source = captureSource();
    this.groupsPrefix = props.groupsPrefix ?? props.usernamePrefix;
  }

  /** A person, by the username claim. */
  user(name: string): Principal {
    return { kind: 'User', name: `${this.props.usernamePrefix}${name}`, source: captureSource() };
  }

  /** A group, by the groups claim. */
  group(name: string): Principal {
    return { kind: 'Group', name: `${this.groupsPrefix}${name}`, source: captureSource() };
  }

  /** A CI workload identity, by its subject claim (e.g. `repo:ORG/APP:ref:refs/heads/main`). */
  workload(subject: string): Principal {
    return { kind: 'User', name: `${this.props.usernamePrefix}${subject}`, source: captureSource() };
  }
}
