#!/usr/bin/env node
// Entry point of the `portcullis` CLI. The project runs its TypeScript through
// tsx, so policies (TypeScript in git) load the same way as the tool itself.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv);
