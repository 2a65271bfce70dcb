import type { Grant } from '../core/rule-set.ts';

/** The group every authenticated identity carries for authorization, as kube-apiserver adds it (user.AllAuthenticated). */
export const ALL_AUTHENTICATED = 'system:authenticated';

/**
 * Discovery and OpenAPI for every authenticated identity, exactly the
 * non-resource URLs of kube's `system:discovery` and `system:public-info-viewer`
 * ClusterRoles (bound to system:authenticated upstream too). kubectl and helm
 * need these before any request; they reveal the API shape, not objects.
 * Also the self-review APIs of kube's `system:basic-user` (SelfSubjectAccessReview,
 * SelfSubjectRulesReview, SelfSubjectReview), which `kubectl auth can-i` and
 * `kubectl auth whoami` use; upstream answers them for the impersonated identity.
 * Denies in the policy still win over this grant.
 */
export const DISCOVERY_GRANT: Grant = {
  id: 'builtin:discovery',
  source: { file: 'runtime-proxy/discovery.ts', line: 16 },
  subjects: [{ kind: 'Group', name: ALL_AUTHENTICATED }],
  rules: [
    {
      verbs: ['get'],
      nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/openapi', '/openapi/*', '/version', '/version/', '/healthz', '/livez', '/readyz'],
    },
    { verbs: ['create'], apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'] },
    { verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'] },
  ],
  scope: { kind: 'cluster' },
  conditions: {},
};
