import { Cluster, type Fleet } from '../compiler/index.ts';

/**
 * The fleet's clusters. Grants select them by label, so a new `env: prod` cluster is covered by every prod grant.
 * Each is reached through the proxy at a host name of its own (docs/addressing.md: every kubectl command works there).
 */
export function clusters(fleet: Fleet): void {
  new Cluster(fleet, 'dev', {
    server: 'https://dev.k8s.acme.example:6443',
    proxyUrl: 'https://dev.portcullis.acme.example',
    labels: { env: 'dev', region: 'eu-west', tier: 'sandbox' },
  });
  new Cluster(fleet, 'staging', {
    server: 'https://staging.k8s.acme.example:6443',
    proxyUrl: 'https://staging.portcullis.acme.example',
    labels: { env: 'staging', region: 'eu-west', tier: 'pre-production' },
  });
  new Cluster(fleet, 'prod-eu', {
    server: 'https://prod-eu.k8s.acme.example:6443',
    proxyUrl: 'https://prod-eu.portcullis.acme.example',
    labels: { env: 'prod', region: 'eu-west', tier: 'production' },
  });
}
