import { IdentityProvider, type Fleet } from '../compiler/index.ts';

/** Where people and CI jobs come from. Prefixes keep their names apart from each other and from `system:`. */
export function identities(fleet: Fleet) {
  const corp = new IdentityProvider(fleet, 'corp', { issuer: 'https://login.acme.example', usernamePrefix: 'oidc:' });
  const github = new IdentityProvider(fleet, 'github-actions', { issuer: 'https://token.actions.githubusercontent.com', usernamePrefix: 'github:' });
  return {
    corp,
    github,
    developers: corp.group('developers'),
    sre: corp.group('sre'),
    platform: corp.group('platform'),
    sreOnCall: [corp.user('frank@acme.example'), corp.user('grace@acme.example')],
    contractor: corp.user('zoe@contractor.example'),
    shopDeployer: github.workload('repo:acme/shop:ref:refs/heads/main'),
    // This repository's workflows: plan on pull requests, apply from the protected production environment.
    policyPlan: github.workload('repo:acme/fleet-policy:pull_request'),
    policyApply: github.workload('repo:acme/fleet-policy:environment:production'),
  };
}

/** The identities of the example fleet. */
export type Identities = ReturnType<typeof identities>;
