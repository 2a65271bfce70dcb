// A real Redis server (Debian's redis-server) for the tests that share state between proxy
// replicas: on a free loopback port, no persistence, stopped with the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePorts } from '../../sandbox/processes.ts';

/** A running redis-server. */
export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** Stops it (SIGKILL: a store that vanishes). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  restart(): Promise<void>;
  /** Stops it answering without closing anything (SIGSTOP: a stalled host, a failover in progress). */
  pause(): void;
  /** Lets it answer again (SIGCONT). */
  resume(): void;
  stop(): Promise<void>;
}

/** Starts redis-server on 127.0.0.1; fails with the install hint when it is missing. */
export async function startRedis(): Promise<TestRedis> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: 'ignore' });
    child = p;
    await new Promise<void>((resolve, reject) => {
      p.once('error', (err) => reject(new Error(`redis-server: ${err.message} (apt-get install redis-server; .ci/run installs it)`)));
      const deadline = Date.now() + 10_000;
      const probe = (): void => {
        const s = createConnection(port, '127.0.0.1', () => {
          s.end('PING\r\n');
          resolve();
        });
        s.on('error', () => (Date.now() > deadline ? reject(new Error('redis-server did not start')) : setTimeout(probe, 50)));
      };
      probe();
    });
  };
  const kill = async (): Promise<void> => {
    const p = child;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };
  await launch();
  const signal = (sig: NodeJS.Signals) => () => void child?.kill(sig);
  return { url: `redis://127.0.0.1:${port}`, port, kill, restart: launch, stop: kill, pause: signal('SIGSTOP'), resume: signal('SIGCONT') };
}
