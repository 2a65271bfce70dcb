#!/usr/bin/env node
// kubectl's plugin entry point: with this on PATH, `kubectl portcullis explain …` runs
// `portcullis explain …` (kubectl finds plugins by the name kubectl-NAME).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv, 'kubectl portcullis');
