/**
 * The attributes of one request, as kube-apiserver's authorizer sees them
 * (mirrors k8s.io/apiserver/pkg/authorization/authorizer.Attributes).
 */
export interface RequestAttributes {
  readonly user: string;
  readonly groups: readonly string[];
  readonly verb: string;
  readonly isResourceRequest: boolean;
  /** The request path, for non-resource requests. */
  readonly path: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
}
