import type { IPty, spawn } from 'node-pty';
import type { WebSocket } from 'ws';
import type { TerminalConfig } from '../config.ts';
import { parseCommandLine } from './command-line.ts';
import { makeTerminalDir, removeTerminalDir, sandboxCommand } from './sandbox.ts';

const PROMPT = '\x1b[1mkubectl>\x1b[0m ';
const BANNER = 'Portcullis console shell: kubectl only, through the proxy as you (every command authorized and audited).\r\nType e.g. kubectl get pods -n NAMESPACE. No shell: pipes, redirects and other programs are refused.\r\n';

/** Why a terminal ended (audited). */
export type TerminalEnd = 'closed' | 'idle' | 'session-ended' | 'logout' | 'shutdown' | 'error';

/**
 * One browser terminal: a line editor on the server (no shell), and for each accepted line one
 * kubectl in its sandbox on a pseudo-terminal, whose input and output the WebSocket carries
 * (so `kubectl exec -it` gets a real TTY). Ended by the page, the idle timeout, the session's
 * end (logout, lock, expiry) or shutdown; ending kills the running kubectl and removes the
 * terminal's directory with its credential.
 */
export class TerminalSession {
  readonly dir: string;
  #line = '';
  #pty: IPty | undefined;
  #cols = 80;
  #rows = 24;
  #idle: NodeJS.Timeout | undefined;
  #ended = false;
  /** Every kubectl this terminal ran (pids), for the record and the tests. */
  readonly pids: number[] = [];

  constructor(
    private readonly ws: WebSocket,
    private readonly cfg: TerminalConfig,
    kubeconfigYaml: string,
    private readonly onEnd: (why: TerminalEnd, commands: number) => void,
    /** node-pty's spawn (an optional dependency, loaded by {@link loadPty}). */
    private readonly spawnPty: typeof spawn,
    /** Hears every line: run, or refused and why (the proxy logs them; a refused line may be an escape attempt). */
    private readonly onLine: (line: string, refused?: string) => void = () => undefined,
  ) {
    this.dir = makeTerminalDir(cfg, kubeconfigYaml);
    ws.on('message', (data, isBinary) => this.#message(isBinary ? '' : data.toString()));
    ws.on('close', () => this.end('closed'));
    ws.on('error', () => this.end('error'));
    this.#touch();
    this.#send(BANNER + PROMPT);
  }

  /** The kubectl running now, if any. */
  get running(): number | undefined {
    return this.#pty?.pid;
  }

  #send(text: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(text);
  }

  #touch(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.end('idle'), this.cfg.idleTimeoutMs);
    this.#idle.unref();
  }

  #message(raw: string): void {
    let m: { t?: unknown; d?: unknown; c?: unknown; r?: unknown };
    try {
      m = JSON.parse(raw) as typeof m;
    } catch {
      return;
    }
    if (m.t === 'r' && typeof m.c === 'number' && typeof m.r === 'number') {
      this.#cols = clamp(m.c, 10, 500);
      this.#rows = clamp(m.r, 2, 200);
      this.#pty?.resize(this.#cols, this.#rows);
      return;
    }
    if (m.t !== 'i' || typeof m.d !== 'string') return;
    this.#touch();
    if (this.#pty) return void this.#pty.write(m.d);
    this.#edit(m.d);
  }

  /** Line editing while no kubectl runs: printable characters, backspace, Enter, Ctrl-C; escape sequences are dropped. */
  #edit(data: string): void {
    const clean = data.replace(/\x1b\[[0-9;?]*[A-Za-z~]|\x1bO[A-Za-z]/g, '');
    for (const ch of clean) {
      if (this.#pty) return void this.#pty.write(ch);
      if (ch === '\r' || ch === '\n') {
        this.#send('\r\n');
        const line = this.#line;
        this.#line = '';
        this.#run(line);
      } else if (ch === '\x7f' || ch === '\b') {
        if (this.#line.length > 0) {
          this.#line = this.#line.slice(0, -1);
          this.#send('\b \b');
        }
      } else if (ch === '\x03') {
        this.#line = '';
        this.#send(`^C\r\n${PROMPT}`);
      } else if (ch >= ' ' && this.#line.length < 2000) {
        this.#line += ch;
        this.#send(ch);
      }
    }
  }

  #run(line: string): void {
    const p = parseCommandLine(line);
    if (!p.ok) {
      this.onLine(line, p.error);
      return this.#send(`${p.error}\r\n${PROMPT}`);
    }
    if (p.argv.length === 0) return this.#send(PROMPT);
    this.onLine(line);
    const cmd = sandboxCommand(this.cfg, this.dir, p.argv);
    let pty: IPty;
    try {
      pty = this.spawnPty(cmd.file, [...cmd.args], { name: 'xterm-256color', cols: this.#cols, rows: this.#rows, cwd: this.dir, env: {} });
    } catch (err) {
      return this.#send(`cannot start kubectl: ${(err as Error).message}\r\n${PROMPT}`);
    }
    this.#pty = pty;
    this.pids.push(pty.pid);
    let last = '';
    pty.onData((d) => {
      if (d !== '') last = d.slice(-1);
      this.#send(d);
    });
    pty.onExit(({ exitCode }) => {
      if (this.#pty === pty) this.#pty = undefined;
      // The prompt starts a line: after a raw-mode TTY's bare \n, or output with no newline at all.
      const eol = last === '' ? '' : last === '\n' ? '\r' : last === '\r' ? '' : '\r\n';
      if (!this.#ended) this.#send(`${eol}${exitCode !== 0 ? `\x1b[2m(exit ${exitCode})\x1b[0m\r\n` : ''}${PROMPT}`);
    });
  }

  /** Ends the terminal: kills its kubectl, closes the socket, removes its directory; once. */
  end(why: TerminalEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#idle) clearTimeout(this.#idle);
    const pty = this.#pty;
    this.#pty = undefined;
    if (pty) {
      try {
        pty.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    if (this.ws.readyState === this.ws.OPEN) {
      this.ws.send(`\r\n\x1b[1m[terminal ended: ${why}]\x1b[0m\r\n`);
      this.ws.close(1000, why);
    }
    removeTerminalDir(this.dir);
    this.onEnd(why, this.pids.length);
  }
}

/**
 * node-pty, loaded when a terminal is configured: an optional dependency (a native module built
 * with node-gyp), so installing Portcullis in a policy repository needs no compiler. Without it,
 * the console runs without its shell and says why.
 */
export async function loadPty(): Promise<typeof spawn> {
  const spec = 'node-pty';
  const m = (await import(spec)) as { spawn?: typeof spawn; default?: { spawn?: typeof spawn } };
  const fn = m.spawn ?? m.default?.spawn;
  if (typeof fn !== 'function') throw new Error('node-pty has no spawn');
  return fn;
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.floor(n)));
}
