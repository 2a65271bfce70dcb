import { expectAccess } from '../compiler/index.ts';
import { id } from './index.ts';

// What must hold whatever the policy becomes; `portcullis test` checks it against the signed
// bundles in generated/. A positive claim holds now; a negative one at any time, whichever
// break-glass grant is invoked.
const payments = id.corp.group('team-payments');

// Teams debug their own namespaces in dev, and only there.
expectAccess.that(payments).may('create', 'pods/exec').in('payments').on({ names: ['dev'] });
expectAccess.that(payments).may('create', 'pods/portforward').in('payments-jobs').on({ names: ['dev'] });
expectAccess.that(payments).mayNot('create', 'pods/exec').in('*').on({ labels: { env: 'prod' } });
expectAccess.that(payments).mayNot('create', 'pods/exec').in('search').on('all');

// Nobody outside SRE (the group, and the on-call people named for break-glass) reads secrets in prod.
expectAccess.nobodyExcept([id.sre, ...id.sreOnCall]).may(['get', 'list', 'watch'], 'secrets').in('*').on({ labels: { env: 'prod' } });

// Developers see prod, secrets apart.
expectAccess.that(id.developers).may(['get', 'list', 'watch'], 'deployments.apps').in('*').on({ labels: { env: 'prod' } });
expectAccess.that(id.developers).mayNot('get', 'secrets').in('payments').on({ labels: { env: 'prod' } });

// Only the apply workflow deletes namespaces, and only it writes RBAC.
expectAccess.nobodyExcept([id.policyApply]).may('delete', 'namespaces').on('all');
expectAccess.nobodyExcept([id.policyApply]).may(['create', 'patch', 'delete', 'bind', 'escalate'], 'clusterroles.rbac.authorization.k8s.io').on('all');
expectAccess.that(id.policyPlan).mayNot('patch', 'configmaps', 'portcullis-bundle').in('portcullis-system').on('all');
