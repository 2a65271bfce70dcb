import { isAbsolute, join } from 'node:path';
import { tmpdir } from 'node:os';

/**
 * `console` in the proxy configuration: the web console at /console on the proxy's own listener.
 * It signs people in with the login client of `sessions.login` (authorization code with PKCE,
 * redirect to `https://PROXY/console/callback`, which the identity provider must allow).
 */
export interface ConsoleConfig {
  /** The browser kubectl shell. @default none: no terminal */
  readonly terminal?: TerminalConfig;
}

/** `console.terminal`: one confined kubectl per terminal (console/README.md, "Confinement"). */
export interface TerminalConfig {
  /** The kubectl binary, bound read-only into each sandbox as /usr/bin/kubectl. */
  readonly kubectl: string;
  /** bubblewrap. @default /usr/bin/bwrap */
  readonly bwrap: string;
  /** Where per-terminal directories are made (mode 0700, removed when the terminal ends). @default $TMPDIR/portcullis-console-terminals */
  readonly dir: string;
  /** The unprivileged uid (and gid) kubectl runs as inside the sandbox. @default 65534 */
  readonly uid: number;
  /** A terminal with no input for this long is ended. @default 15 minutes */
  readonly idleTimeoutMs: number;
  /** Terminals one person may have open at once. @default 4 */
  readonly maxPerUser: number;
}

/** The raw section, as YAML gives it. */
export interface RawConsoleConfig {
  terminal?: { kubectl: string; bwrap?: string; dir?: string; uid?: number; idleTimeoutMs?: number; maxPerUser?: number };
}

/** The JSON schema of the section, for the proxy configuration's validator. */
export const CONSOLE_SCHEMA = {
  type: 'object',
  nullable: true,
  additionalProperties: false,
  properties: {
    terminal: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['kubectl'],
      properties: {
        kubectl: { type: 'string', minLength: 1 },
        bwrap: { type: 'string', minLength: 1, nullable: true },
        dir: { type: 'string', minLength: 1, nullable: true },
        uid: { type: 'integer', minimum: 1, nullable: true },
        idleTimeoutMs: { type: 'integer', minimum: 1, nullable: true },
        maxPerUser: { type: 'integer', minimum: 1, nullable: true },
      },
    },
  },
} as const;

/** Fills in the defaults; paths relative to the configuration file's directory. */
export function resolveConsoleConfig(raw: RawConsoleConfig, base: string): ConsoleConfig {
  const p = (x: string) => (isAbsolute(x) ? x : join(base, x));
  const t = raw.terminal;
  return {
    ...(t
      ? {
          terminal: {
            kubectl: p(t.kubectl),
            bwrap: t.bwrap ?? '/usr/bin/bwrap',
            dir: t.dir !== undefined ? p(t.dir) : join(tmpdir(), 'portcullis-console-terminals'),
            uid: t.uid ?? 65534,
            idleTimeoutMs: t.idleTimeoutMs ?? 15 * 60_000,
            maxPerUser: t.maxPerUser ?? 4,
          },
        }
      : {}),
  };
}
