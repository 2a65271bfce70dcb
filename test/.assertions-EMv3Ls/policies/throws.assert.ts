import { expectAccess } from '../../../compiler/index.ts';
import { id } from '../../../policies/index.ts';

expectAccess.that(id.sre).may('get', '/healthz').in('x').on('all');
