import { Construct } from 'constructs';
import type { SourceLocation } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';

/** Properties of a fleet. */
export interface FleetProps {
  /** Days a signed bundle stays valid before the proxy refuses it; renew with `compile --renew`. @default 30 */
  readonly bundleValidityDays?: number;
  /** Path (repo-relative) of the Ed25519 signing key used when PORTCULLIS_SIGNING_KEY is unset. @default none: the environment must provide it */
  readonly signingKeyFile?: string;
}

/** The root of a policy: every cluster, identity, role, grant and deny is declared under one fleet. */
export class Fleet extends Construct {
  readonly source: SourceLocation;
  constructor(
    readonly name: string,
    readonly props: FleetProps = {},
  ) {
    // A root construct has no scope, as in cdk8s' App.
    super(undefined as unknown as Construct, '');
    this.source = captureSource();
  }
}
