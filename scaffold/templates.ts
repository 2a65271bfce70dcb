/**
 * The files `portcullis init` writes into a new policy repository, apart from the CI
 * workflows (those are this repository's own, scaffold/init.ts adapts them).
 */
export function policyFiles(fleetName: string): Readonly<Record<string, string>> {
  return {
    'policies/index.ts': `import { Fleet } from 'portcullis';
import { access } from './access.ts';
import { clusters } from './clusters.ts';
import { identities } from './identities.ts';

/** The fleet: \`portcullis compile\` loads the Fleet this module exports. */
const fleet = new Fleet('${fleetName}', {
  bundleValidityDays: 30,
  // Bundles are signed with the key in PORTCULLIS_SIGNING_KEY (a CI secret; \`portcullis keygen\` makes one).
});
/** Who can be named, for the assertions beside the policy (*.assert.ts) too. */
export const id = identities(fleet);
clusters(fleet);
access(fleet, id);

export default fleet;
`,
    'policies/clusters.ts': `import { Cluster, type Fleet } from 'portcullis';

/**
 * Every cluster the policy governs; labels select them in grants and denies. proxyUrl is where
 * people and CI reach each one through the Portcullis proxy: a host name per cluster, so every
 * kubectl command works (kubectl proxy and get --raw included).
 */
export function clusters(fleet: Fleet): void {
  new Cluster(fleet, 'dev', { server: 'https://dev.k8s.example.com:6443', proxyUrl: 'https://dev.portcullis.example.com', labels: { env: 'dev' } });
  new Cluster(fleet, 'prod', { server: 'https://prod.k8s.example.com:6443', proxyUrl: 'https://prod.portcullis.example.com', labels: { env: 'prod' } });
}
`,
    'policies/identities.ts': `import { IdentityProvider, type Fleet } from 'portcullis';

/** Who can be named: the company identity provider's users and groups. */
export function identities(fleet: Fleet) {
  const corp = new IdentityProvider(fleet, 'corp', { issuer: 'https://login.example.com', usernamePrefix: 'oidc:' });
  return {
    corp,
    sre: corp.group('sre'),
    payments: corp.group('team-payments'),
  };
}
export type Identities = ReturnType<typeof identities>;
`,
    'policies/access.ts': `import { Deny, Grant, Roles, Team, type Fleet } from 'portcullis';
import type { Identities } from './identities.ts';

/** Who may do what where. */
export function access(fleet: Fleet, id: Identities): void {
  const payments = new Team(fleet, 'payments', { group: id.payments, namespaces: ['payments'] });
  payments.grant('edit-dev', { role: Roles.edit, clusters: { labels: { env: 'dev' } } });
  payments.grant('view-prod', { role: Roles.view, clusters: { labels: { env: 'prod' } } });
  new Grant(fleet, 'sre-view', { to: [id.sre], role: Roles.view, clusters: 'all', namespaces: 'cluster' });
  new Deny(fleet, 'no-secrets-in-prod', {
    subjects: 'everyone',
    except: [id.sre],
    rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }],
    clusters: { labels: { env: 'prod' } },
  });
}
`,
    'policies/access.assert.ts': `import { expectAccess } from 'portcullis';
import { id } from './index.ts';

// What must hold whatever the policy becomes: \`npx portcullis test\` checks these claims against
// the signed bundles in generated/ and names the file and line of each that fails. A positive
// claim (may) must hold now; a negative one (mayNot, nobodyExcept) at any time.
expectAccess.that(id.payments).may(['create', 'patch'], 'deployments.apps').in('payments').on({ labels: { env: 'dev' } });
expectAccess.that(id.payments).mayNot(['create', 'patch'], 'deployments.apps').in('*').on({ labels: { env: 'prod' } });
expectAccess.nobodyExcept([id.sre]).may(['get', 'list', 'watch'], 'secrets').in('*').on({ labels: { env: 'prod' } });
`,
    'tsconfig.json': `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "lib": ["ES2023"],
    "strict": true,
    "noUncheckedIndexedAccess": true,
    "exactOptionalPropertyTypes": true,
    "verbatimModuleSyntax": true,
    "allowImportingTsExtensions": true,
    "noEmit": true,
    "skipLibCheck": true
  },
  "include": ["policies"]
}
`,
    'README.md': `# ${fleetName}: access policy

Who may do what on our Kubernetes clusters, as typed TypeScript in \`policies/\`,
compiled by [Portcullis](https://www.npmjs.com/package/portcullis) into
\`generated/\` (per-cluster RBAC and a signed rule bundle; committed).

\`\`\`sh
npx portcullis discover --cluster dev --kubeconfig ~/.kube/dev   # once per cluster: its API catalog
npx portcullis compile                                           # policies/ → generated/ (PORTCULLIS_SIGNING_KEY signs)
npx portcullis test                                              # the claims in policies/*.assert.ts hold
npx portcullis plan --kubeconfigs clusters.json                  # what would change, live
\`\`\`

A pull request runs \`.github/workflows/plan.yml\` (compile check, the assertions, the effective-access
diff, the plan against the live fleet as a sticky comment); a merge runs \`apply.yml\`;
\`renew.yml\` re-signs bundles before they expire.
`,
    '.gitignore': 'node_modules/\n*.key\n',
  };
}
