#!/usr/bin/env node
// Entry point of the `portcullis` CLI. The project runs its TypeScript through
// tsx, so policies (TypeScript in git) load the same way as the tool itself.
import { register } from 'tsx/esm/api';

register();
// The in-cluster agent loads only what it runs (half the memory of the whole CLI).
const { main } = await import(process.argv[2] === 'agent' ? '../agent/main.ts' : '../cli/main.ts');
process.exitCode = await main(process.argv);
