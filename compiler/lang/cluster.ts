import { Construct } from 'constructs';
import type { SourceLocation } from '../../core/index.ts';
import { captureSource } from '../private/source-location.ts';
import type { Fleet } from './fleet.ts';

/** Properties of a cluster. */
export interface ClusterProps {
  /** The kube-apiserver URL (what apply and the proxy talk to). Leave it out for a cluster behind its agent. */
  readonly server?: string;
  /**
   * The cluster is reached through its in-cluster agent, which connects out to the proxy (no inbound
   * port, no credential outside the cluster; `portcullis cluster add` writes such a cluster). @default false
   */
  readonly agent?: boolean;
  /**
   * This cluster's URL through the Portcullis proxy, as kubeconfigs use it: a host name of its own
   * (`https://dev.portcullis.example`, the default to choose; docs/addressing.md) or the proxy's
   * path prefix (`https://portcullis.example/clusters/dev`). @default none
   */
  readonly proxyUrl?: string;
  /** Labels grants select clusters by (env, region, tier…). @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/** One Kubernetes cluster of the fleet. Its id is its name. */
export class Cluster extends Construct {
  readonly source: SourceLocation;
  readonly labels: Readonly<Record<string, string>>;
  constructor(
    scope: Fleet,
    readonly name: string,
    readonly props: ClusterProps,
  ) {
    // Kind-qualified, so a Namespace or a Grant may share the name ('dev').
    super(scope, `cluster:${name}`);
    this.source = captureSource();
    this.labels = props.labels ?? {};
  }
}
