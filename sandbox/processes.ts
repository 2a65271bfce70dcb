import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { SandboxError } from './errors.ts';

/** One process the sandbox started, recorded so `down` (or a crashed run's successor) can stop it. */
export interface RecordedProcess {
  readonly role: string;
  readonly pid: number;
  /** Executable path, checked against /proc before killing so a reused pid is never hit. */
  readonly exe: string;
  readonly log: string;
}

const PIDS_FILE = 'pids.json';

/** Reads every process recorded under a cluster directory. */
export function readRecorded(clusterDir: string): RecordedProcess[] {
  const f = join(clusterDir, PIDS_FILE);
  if (!existsSync(f)) return [];
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as RecordedProcess[];
  } catch {
    return [];
  }
}

function record(clusterDir: string, p: RecordedProcess): void {
  const all = readRecorded(clusterDir).filter((x) => x.pid !== p.pid);
  all.push(p);
  writeFileSync(join(clusterDir, PIDS_FILE), JSON.stringify(all, null, 2));
}

/** True when `pid` is alive and (where /proc exists) still runs `exe`. */
export function isOurs(p: Pick<RecordedProcess, 'pid' | 'exe'>): boolean {
  try {
    process.kill(p.pid, 0);
  } catch {
    return false;
  }
  const cmdline = `/proc/${p.pid}/cmdline`;
  if (!existsSync('/proc/self/cmdline')) return true;
  try {
    const argv0 = readFileSync(cmdline, 'utf8').split('\0')[0] ?? '';
    return argv0 === p.exe;
  } catch {
    return false;
  }
}

/**
 * Starts a long-running sandbox process in its own process group (so a signal
 * to the group reaches anything it forks), output appended to `log`, detached
 * from this process so `sandbox up` can return while it runs. The pid is
 * recorded in the cluster directory before this returns.
 */
export function startProcess(clusterDir: string, role: string, exe: string, args: readonly string[], log: string): RecordedProcess {
  if (!existsSync(exe)) throw new SandboxError('SANDBOX_START', `${exe} does not exist; rebuild with ensureBinaries()`);
  const fd = openSync(log, 'a');
  try {
    const child = spawn(exe, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, GOTRACEBACK: 'single' } });
    if (child.pid === undefined) throw new SandboxError('SANDBOX_START', `could not start ${exe}`);
    child.on('error', () => undefined); // reported through the readiness checks and the log
    child.unref();
    const p: RecordedProcess = { role, pid: child.pid, exe, log };
    record(clusterDir, p);
    return p;
  } finally {
    closeSync(fd);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Stops processes (SIGTERM to each group, SIGKILL after `graceMs`), in the order given. */
export async function stopProcesses(procs: readonly RecordedProcess[], graceMs = 5000): Promise<void> {
  const live = procs.filter(isOurs);
  for (const p of live) signalGroup(p.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some((p) => isAlive(p.pid))) await sleep(100);
  for (const p of live) if (isAlive(p.pid)) signalGroup(p.pid, 'SIGKILL');
  const hard = Date.now() + 3000;
  while (Date.now() < hard && live.some((p) => isAlive(p.pid))) await sleep(50);
}

/** Synchronous SIGKILL of every recorded process group, for `exit` handlers where nothing async runs. */
export function killProcessesSync(procs: readonly RecordedProcess[]): void {
  for (const p of procs) if (isOurs(p)) signalGroup(p.pid, 'SIGKILL');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Every process recorded under any cluster directory of a sandbox directory. */
export function recordedUnder(sandboxDir: string): RecordedProcess[] {
  if (!existsSync(sandboxDir)) return [];
  const out: RecordedProcess[] = [];
  for (const name of readdirSync(sandboxDir, { withFileTypes: true })) {
    if (name.isDirectory()) out.push(...readRecorded(join(sandboxDir, name.name)));
  }
  return out;
}

/** Reserves `n` distinct free loopback TCP ports (held together, then released for the caller to bind). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    return typeof a === 'object' && a ? a.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
