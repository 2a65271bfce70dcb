import type { Command } from 'commander';
import { initPolicyRepository } from './init.ts';

/** Registers `portcullis init`. */
export function registerScaffoldCommands(program: Command): void {
  program
    .command('init')
    .description('scaffold a policy repository here: policies/, tsconfig.json, the plan, apply and renewal workflows, a README')
    .option('--dir <dir>', 'where', '.')
    .option('--name <name>', 'the fleet name (default: the directory name)')
    .action((o: { dir: string; name?: string }) => {
      const r = initPolicyRepository(o.dir, o.name);
      for (const f of r.written) process.stdout.write(`wrote ${f}\n`);
      for (const f of r.kept) process.stdout.write(`kept  ${f} (exists)\n`);
      process.stdout.write('next: npm install, `npx portcullis keygen`, `npx portcullis discover` for each cluster, edit policies/clusters.ts, `npx portcullis compile`\n');
    });
}
