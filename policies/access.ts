import { Deny, Grant, Role, Roles, type Fleet } from '../compiler/index.ts';
import type { Identities } from './identities.ts';

/** Fleet-wide access: developers, SRE on call, platform, CI and a contractor; and the denies that hold over all of it. */
export function access(fleet: Fleet, id: Identities): void {
  // Developers read (not secrets: Kubernetes' view has none) in prod.
  new Grant(fleet, 'developers-read-prod', {
    to: [id.developers],
    role: Roles.view,
    clusters: { labels: { env: 'prod' } },
    namespaces: 'cluster',
  });

  // SRE: read and logs everywhere, every day.
  new Grant(fleet, 'sre-view', { to: [id.sre], role: Roles.view, clusters: 'all', namespaces: 'cluster' });
  new Grant(fleet, 'sre-logs', { to: [id.sre], role: Roles.logs, clusters: 'all', namespaces: 'cluster' });

  // On-call SRE: break-glass admin in prod, for at most an hour, with a reason, and everyone hears of it.
  new Grant(fleet, 'sre-break-glass-prod', {
    to: id.sreOnCall,
    role: Roles.admin,
    clusters: { labels: { env: 'prod' } },
    namespaces: 'cluster',
    breakGlass: { maxDuration: '1h', notify: ['https://hooks.acme.example/portcullis/break-glass'] },
    // Admin in prod under break-glass: its exec sessions record what is typed, not only what is shown.
    recordInput: true,
  });

  // Platform engineers edit everywhere; in prod the deny below takes reading secrets away, in RBAC too.
  new Grant(fleet, 'platform-edit', { to: [id.platform], role: Roles.edit, clusters: 'all', namespaces: 'cluster' });

  // The shop's CI deploys during office hours only.
  const deployer = new Role(fleet, 'deployer')
    .allow(['get', 'list', 'watch', 'create', 'update', 'patch'], ['deployments', 'replicasets', 'statefulsets'], { apiGroups: ['apps'] })
    .allow(['get', 'list', 'watch', 'create', 'update', 'patch'], ['services', 'configmaps'])
    .allowRead(['pods']);
  new Grant(fleet, 'shop-ci-deploy', {
    to: [id.shopDeployer],
    role: deployer,
    clusters: { labels: { region: 'eu-west' } },
    namespaces: ['payments', 'checkout', 'checkout-web'],
    windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '18:00', timeZone: 'Europe/Berlin' }],
  });

  // An external contractor helps search in staging until the end of March.
  new Grant(fleet, 'contractor-search-staging', {
    to: [id.contractor],
    role: Roles.view,
    clusters: { names: ['staging'] },
    namespaces: ['search'],
    expires: '2027-03-31T00:00:00Z',
  });

  // Nobody outside SRE reads secrets in prod. On-call SREs are named as people
  // (their break-glass grant is to them), so they are excepted by name too.
  new Deny(fleet, 'no-secrets-in-prod', {
    subjects: 'everyone',
    except: [id.sre, ...id.sreOnCall],
    rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }],
    clusters: { labels: { env: 'prod' } },
  });
}
