import { Construct } from 'constructs';
import type { PolicyRule, SourceLocation } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Principal } from './identity.ts';
import type { IRole } from './role.ts';
import type { ClusterSelector, NamespaceSelector } from './selectors.ts';

/** Properties of a deny. */
export interface DenyProps {
  /** Whom it binds: subjects, or `'everyone'`. */
  readonly subjects: readonly Principal[] | 'everyone';
  /** Subjects it does not bind. @default [] */
  readonly except?: readonly Principal[];
  /** What is denied: RBAC rules or a role's rules. */
  readonly rules: readonly PolicyRule[] | IRole;
  /** On which clusters. */
  readonly clusters: ClusterSelector;
  /** Where in those clusters. @default 'cluster' (everywhere) */
  readonly namespaces?: NamespaceSelector;
}

/** Forbids what its rules match; wins over every grant, at the proxy and in the generated RBAC. */
export class Deny extends Construct {
  readonly source: SourceLocation;
  constructor(
    scope: Construct,
    id: string,
    readonly props: DenyProps,
  ) {
    super(scope, id);
    this.source = captureSource();
  }
}
