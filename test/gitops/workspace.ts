/**
 * A scratch copy of the repository's policy and generated output, for
 * end-to-end tests of plan and apply: `policies/` and `generated/` copied
 * (its bundles signed again now, so no test depends on the committed signatures),
 * `compiler/`, `core/` and `node_modules/` linked, so the real compiler can
 * recompile an edited policy with the demo signing key.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signedExampleGenerated } from '../support/example-bundles.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(repoRoot, 'bin', 'portcullis.js');

/** What a CLI run printed and how it ended. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A scratch repository. */
export interface Workspace {
  readonly dir: string;
  /** Runs `portcullis ARGS` in the workspace. */
  cli(args: readonly string[], env?: Readonly<Record<string, string>>): Promise<CliResult>;
  /** Rewrites a file of the workspace. */
  edit(rel: string, fn: (text: string) => string): void;
  read(rel: string): string;
  /** `git ARGS` in the workspace (a fixed author, no signing); throws on failure, returns trimmed stdout. */
  git(...args: string[]): string;
  /** Commits policies/ and generated/ as they are; returns the new commit id. */
  commitAll(subject: string): string;
  remove(): void;
}

/** Creates a workspace from the repository's current policies/ and generated/. */
export function makeWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-gitops-'));
  cpSync(join(repoRoot, 'policies'), join(dir, 'policies'), { recursive: true });
  cpSync(signedExampleGenerated(), join(dir, 'generated'), { recursive: true });
  for (const d of ['compiler', 'core', 'node_modules']) symlinkSync(join(repoRoot, d), join(dir, d));
  cpSync(join(repoRoot, 'package.json'), join(dir, 'package.json'));
  return {
    dir,
    cli: (args, env = {}) => runNode([bin, ...args], dir, env),
    edit(rel, fn) {
      const p = join(dir, rel);
      writeFileSync(p, fn(readFileSync(p, 'utf8')));
    },
    read: (rel) => readFileSync(join(dir, rel), 'utf8'),
    git: (...args) => git(dir, args),
    commitAll(subject) {
      git(dir, ['add', 'policies', 'generated']);
      git(dir, ['commit', '-q', '-m', subject]);
      return git(dir, ['rev-parse', 'HEAD']);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function git(dir: string, args: readonly string[]): string {
  const r = spawnSync('git', ['-C', dir, '-c', 'user.name=Pat Auditor', '-c', 'user.email=pat@example.com', '-c', 'commit.gpgsign=false', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

function runNode(args: readonly string[], cwd: string, env: Readonly<Record<string, string>>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const e: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete e['PORTCULLIS_SIGNING_KEY'];
    const child = spawn(process.execPath, [...args], { cwd, env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** A loopback port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A kubeconfig for a cluster that is down: a closed loopback port. */
export function downKubeconfig(path: string, port: number): void {
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'down', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'nobody', user: { token: 'x' } }],
      contexts: [{ name: 'down', context: { cluster: 'down', user: 'nobody' } }],
      'current-context': 'down',
    }),
    { mode: 0o600 },
  );
}

/** Appends a statement before the closing brace of the last function in a file. */
export function appendToLastFunction(text: string, statement: string): string {
  const i = text.trimEnd().lastIndexOf('}');
  return `${text.slice(0, i)}  ${statement}\n}\n`;
}
