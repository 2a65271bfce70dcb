import type { Command } from 'commander';
import { runDemo } from './demo.ts';

/** Registers `portcullis demo`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('try Portcullis: a sandbox fleet with the example policy applied, a real OIDC issuer, the proxy, and kubectl commands to try')
    .option('--dir <dir>', 'sandbox directory', '.sandbox')
    .option('--reuse', 'use the sandbox already running in --dir')
    .option('--check', 'run scripted kubectl checks through the proxy, then stop everything and exit')
    .action(async (o: { dir: string; reuse?: boolean; check?: boolean }) => runDemo({ dir: o.dir, ...(o.reuse ? { reuse: true } : {}), ...(o.check ? { check: true } : {}) }));
}
