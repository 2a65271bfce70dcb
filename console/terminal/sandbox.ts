import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TerminalConfig } from '../config.ts';

/** Where the sandbox sees its own directory (its HOME and working directory). */
export const SANDBOX_HOME = '/home/term';

/**
 * A terminal's sandbox directory: `BASE/t-RANDOM`, owned by the sandbox uid, mode 0700, holding
 * only the kubeconfig with this person's session credential (0600). Removed when the terminal ends.
 */
export function makeTerminalDir(cfg: TerminalConfig, kubeconfigYaml: string): string {
  prepareBase(cfg);
  const dir = mkdtempSync(join(cfg.dir, 't-'));
  chmodSync(dir, 0o700);
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, kubeconfigYaml, { mode: 0o600 });
  chownSync(kc, cfg.uid, cfg.uid);
  chownSync(dir, cfg.uid, cfg.uid);
  return dir;
}

/** Removes a terminal's directory (its credential with it). */
export function removeTerminalDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The base directory (0711: the sandbox uid can reach its own directory in it, list nothing) and
 * a copy of kubectl in it (0555, owned by root): the configured binary may sit where the sandbox
 * uid cannot reach (root's cache), and nobody in a sandbox may change the one it runs.
 */
export function prepareBase(cfg: TerminalConfig): string {
  mkdirSync(join(cfg.dir, 'bin'), { recursive: true, mode: 0o711 });
  // bubblewrap binds as the sandbox uid: every directory above must let it pass (fail with the reason, not bwrap's).
  for (let d = dirname(cfg.dir); d !== dirname(d); d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0 && st.uid !== cfg.uid) throw new Error(`console.terminal.dir ${cfg.dir}: ${d} (mode ${(st.mode & 0o777).toString(8)}) is not searchable by the sandbox uid ${cfg.uid}; choose a directory it can reach`);
  }
  chmodSync(cfg.dir, 0o711);
  chmodSync(join(cfg.dir, 'bin'), 0o711);
  const bin = join(cfg.dir, 'bin', 'kubectl');
  const src = statSync(cfg.kubectl);
  if (!existsSync(bin) || statSync(bin).size !== src.size || statSync(bin).mtimeMs < src.mtimeMs) {
    const tmp = `${bin}.${process.pid}.tmp`;
    copyFileSync(cfg.kubectl, tmp);
    chmodSync(tmp, 0o555);
    // rename is atomic: a terminal starting now runs the old or the new copy, never half of one.
    renameSync(tmp, bin);
  }
  return bin;
}

/**
 * The command that runs one kubectl in its sandbox (console/README.md, "Confinement"):
 * `setpriv` drops to the unprivileged uid/gid with no supplementary groups before anything else
 * runs; bubblewrap then builds a new user, mount, PID, IPC, UTS and cgroup namespace whose file
 * system holds only kubectl (read-only at /usr/bin/kubectl), the terminal's own directory (at
 * /home/term), a fresh /proc and /dev and an empty /tmp; the environment is cleared but for
 * HOME, KUBECONFIG, PATH and TERM; it dies with the proxy. The network is shared: kubectl must
 * reach the proxy on loopback, and can reach nothing else it is not pointed at (its only
 * credential is the session in the kubeconfig, and the command line cannot change the server).
 */
export function sandboxCommand(cfg: TerminalConfig, dir: string, argv: readonly string[]): { readonly file: string; readonly args: readonly string[] } {
  const kubectl = join(cfg.dir, 'bin', 'kubectl');
  return {
    file: '/usr/bin/setpriv',
    args: [
      `--reuid=${cfg.uid}`,
      `--regid=${cfg.uid}`,
      '--clear-groups',
      '--inh-caps=-all',
      cfg.bwrap,
      '--unshare-user',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--hostname',
      'portcullis-console',
      '--die-with-parent',
      '--clearenv',
      '--setenv',
      'HOME',
      SANDBOX_HOME,
      '--setenv',
      'KUBECONFIG',
      `${SANDBOX_HOME}/kubeconfig`,
      '--setenv',
      'PATH',
      '/usr/bin',
      '--setenv',
      'TERM',
      'xterm-256color',
      '--ro-bind',
      kubectl,
      '/usr/bin/kubectl',
      '--bind',
      dir,
      SANDBOX_HOME,
      '--chdir',
      SANDBOX_HOME,
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--tmpfs',
      '/tmp',
      '--',
      '/usr/bin/kubectl',
      ...argv.slice(1),
    ],
  };
}
