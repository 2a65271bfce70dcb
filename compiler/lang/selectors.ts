/** Selects clusters by name and/or labels; `'all'` selects every cluster. Both given: a cluster must match both. */
export type ClusterSelector =
  | 'all'
  | {
      /** Cluster names. @default every name */
      readonly names?: readonly string[];
      /** Labels every selected cluster has. @default no constraint */
      readonly labels?: Readonly<Record<string, string>>;
    };

/**
 * Where in a cluster a grant or deny applies: `'cluster'` is cluster-wide
 * (a ClusterRoleBinding), a list names namespaces, `labels` selects the
 * namespaces the policy declares (e.g. every namespace of a team).
 */
export type NamespaceSelector = 'cluster' | readonly string[] | { readonly labels: Readonly<Record<string, string>> };

/** Whether labels satisfy an equality selector. */
export function labelsMatch(labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
