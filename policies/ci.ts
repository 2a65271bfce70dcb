import { Grant, Role, type Fleet } from '../compiler/index.ts';
import type { Identities } from './identities.ts';

// What this repository's own workflows do to each cluster through its proxy, and no more
// (gitops/kubectl.ts is every call they make). The managed kinds are gitops/objects.ts's.
const CORE_KINDS = ['namespaces', 'serviceaccounts'];
const RBAC_KINDS = ['roles', 'rolebindings', 'clusterroles', 'clusterrolebindings'];
const RBAC = 'rbac.authorization.k8s.io';
const BUNDLE = { namespace: 'portcullis-system', configMap: 'portcullis-bundle' };

/** The plan and apply workflows (.github/workflows/plan.yml, apply.yml), by their GitHub OIDC identities. */
export function ci(fleet: Fleet, id: Identities): void {
  // Plan, on every pull request: list what Portcullis manages, read the live bundle.
  const planner = new Role(fleet, 'policy-planner')
    .allow(['get', 'list'], CORE_KINDS)
    .allow(['get', 'list'], RBAC_KINDS, { apiGroups: [RBAC] });
  new Grant(fleet, 'policy-plan', { to: [id.policyPlan], role: planner, clusters: 'all', namespaces: 'cluster' });
  const bundleReader = new Role(fleet, 'policy-bundle-reader').allow(['get'], ['configmaps'], { resourceNames: [BUNDLE.configMap] });
  new Grant(fleet, 'policy-plan-bundle', { to: [id.policyPlan, id.policyApply], role: bundleReader, clusters: 'all', namespaces: [BUNDLE.namespace] });

  // Apply, on merge to main from the protected production environment: server-side apply
  // (patch, and create for what is new) and delete of the managed kinds. Writing a role or
  // binding that carries rights the applier lacks needs bind and escalate: Kubernetes lets
  // nobody else do it, so this identity is as strong as the policy it applies.
  const applier = new Role(fleet, 'policy-applier', {
    acknowledgeEscalation: 'the apply workflow writes every role and binding the policy compiles to, which Kubernetes allows only with bind and escalate',
  })
    .allow(['get', 'list', 'create', 'patch', 'delete'], CORE_KINDS)
    .allow(['get', 'list', 'create', 'patch', 'delete'], RBAC_KINDS, { apiGroups: [RBAC] })
    .allow(['bind', 'escalate'], ['roles', 'clusterroles'], { apiGroups: [RBAC] });
  new Grant(fleet, 'policy-apply', { to: [id.policyApply], role: applier, clusters: 'all', namespaces: 'cluster' });
  // The bundle delivery: create the ConfigMap once, then patch that one only (RBAC cannot name what create makes).
  const bundleWriter = new Role(fleet, 'policy-bundle-writer')
    .allow(['create'], ['configmaps'])
    .allow(['patch'], ['configmaps'], { resourceNames: [BUNDLE.configMap] });
  new Grant(fleet, 'policy-apply-bundle', { to: [id.policyApply], role: bundleWriter, clusters: 'all', namespaces: [BUNDLE.namespace] });
}
