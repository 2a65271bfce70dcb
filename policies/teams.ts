import { Roles, Team, type Fleet } from '../compiler/index.ts';
import type { Identities } from './identities.ts';

/** Four product teams: their namespaces everywhere, edit where it is safe, exec and port-forward in dev, view in prod. */
export function teams(fleet: Fleet, id: Identities): Team[] {
  const specs = [
    { name: 'payments', members: ['alice@acme.example', 'bob@acme.example'], namespaces: ['payments', 'payments-jobs'] },
    { name: 'search', members: ['carol@acme.example'], namespaces: ['search'] },
    { name: 'checkout', members: ['dave@acme.example'], namespaces: ['checkout', 'checkout-web'] },
    { name: 'data', members: ['erin@acme.example'], namespaces: ['data-pipeline'] },
  ];
  return specs.map((s) => {
    const team = new Team(fleet, s.name, {
      group: id.corp.group(`team-${s.name}`),
      members: s.members.map((m) => id.corp.user(m)),
      namespaces: s.namespaces,
    });
    team.grant('edit', { role: Roles.edit, clusters: { labels: { tier: 'sandbox' } } });
    team.grant('edit-staging', { role: Roles.edit, clusters: { names: ['staging'] } });
    team.grant('debug-dev', { role: Roles.exec, clusters: { names: ['dev'] } });
    team.grant('port-forward-dev', { role: Roles.portForward, clusters: { names: ['dev'] } });
    team.grant('logs-prod', { role: Roles.logs, clusters: { labels: { env: 'prod' } } });
    return team;
  });
}
