import { Fleet } from '../compiler/index.ts';
import { access } from './access.ts';
import { ci } from './ci.ts';
import { clusters } from './clusters.ts';
import { identities } from './identities.ts';
import { teams } from './teams.ts';

/** The example fleet: `portcullis compile` loads the Fleet this module exports. */
const fleet = new Fleet('acme', {
  bundleValidityDays: 30,
  // DEMO ONLY: the sandbox fleet trusts this committed key. A real fleet leaves
  // this out and sets PORTCULLIS_SIGNING_KEY from a CI secret.
  signingKeyFile: 'policies/demo-keys/signing.key',
});
/** The fleet's people and CI identities, for the assertions beside the policy (*.assert.ts). */
export const id = identities(fleet);
clusters(fleet);
teams(fleet, id);
access(fleet, id);
ci(fleet, id);

export default fleet;
