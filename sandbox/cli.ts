import type { Command } from 'commander';
import { ensureBinaries } from './build.ts';
import { downFleet, fleetFile, fleetStatus, readFleet, upFleet } from './fleet.ts';

/** Registers `portcullis sandbox up|status|down`. */
export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('Real Kubernetes control planes on this machine (etcd, kube-apiserver, a fake kubelet) for trying Portcullis and for tests');

  sandbox
    .command('build')
    .description('build kube-apiserver, kubectl, etcd and the sandbox agent from tools/ into the cache (or reuse it) and print their paths')
    .action(async () => {
      const bin = await ensureBinaries();
      for (const [name, path] of Object.entries(bin)) process.stdout.write(`${name.padEnd(14)} ${path}\n`);
    });

  sandbox
    .command('up')
    .description('build the binaries if needed, start N clusters on loopback, write kubeconfigs and DIR/fleet.json')
    .option('--clusters <n>', 'number of clusters (named dev, staging, prod-eu, cluster-4, …)', '3')
    .option('--dir <dir>', 'state directory', '.sandbox')
    .option('--owner-pid <pid>', 'process responsible for stopping the sandbox (test runners; lets a later run stop an orphan)')
    .action(async (opts: { clusters: string; dir: string; ownerPid?: string }) => {
      const fleet = await upFleet({
        dir: opts.dir,
        clusters: Number(opts.clusters),
        ...(opts.ownerPid ? { ownerPid: Number(opts.ownerPid) } : {}),
      });
      const lines = [`sandbox fleet is up (Kubernetes ${fleet.kubernetesVersion}); fleet file: ${fleetFile(fleet.dir)}`];
      for (const c of fleet.clusters) {
        lines.push(`  ${c.name.padEnd(10)} ${c.server}  kubectl --kubeconfig ${c.adminKubeconfig} get nodes`);
      }
      lines.push(
        `all clusters: KUBECONFIG=${fleet.kubeconfig} ${fleet.bin.kubectl} --context ${fleet.clusters[0]?.name ?? 'dev'} get nodes`,
        `stop it with: portcullis sandbox down --dir ${opts.dir}`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  sandbox
    .command('status')
    .description('show whether each sandbox cluster is running and ready')
    .option('--dir <dir>', 'state directory', '.sandbox')
    .option('--json', 'print JSON')
    .action(async (opts: { dir: string; json?: boolean }) => {
      readFleet(opts.dir);
      const health = await fleetStatus(opts.dir);
      if (opts.json) process.stdout.write(`${JSON.stringify(health, null, 2)}\n`);
      else {
        for (const h of health) {
          const procs = h.processes.map((p) => `${p.role}:${p.pid}${p.alive ? '' : '(dead)'}`).join(' ');
          process.stdout.write(`${h.name.padEnd(10)} ${h.ready ? 'ready   ' : 'NOT READY'} ${h.server}  ${procs}\n`);
        }
      }
      if (!health.every((h) => h.ready && h.processes.every((p) => p.alive))) process.exitCode = 1;
    });

  sandbox
    .command('down')
    .description('stop every sandbox process and remove the state directory')
    .option('--dir <dir>', 'state directory', '.sandbox')
    .action(async (opts: { dir: string }) => {
      const n = await downFleet(opts.dir);
      process.stdout.write(`sandbox down: stopped ${n} process(es), removed ${opts.dir}\n`);
    });
}
