import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** What `portcullis login` keeps: the proxy it logged in to and the session credential (a secret: mode 0600). */
export interface SessionFile {
  readonly proxy: string;
  readonly credential: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly expiresAt: string;
  /** A CA bundle the proxy (and identity provider) were reached with, if one was given. */
  readonly ca?: string;
}

/** `$XDG_CONFIG_HOME/portcullis/session.json`, else `~/.config/portcullis/session.json`. */
export function sessionPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config'), 'portcullis', 'session.json');
}

export function readSession(file = sessionPath()): SessionFile | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as SessionFile;
  } catch {
    return undefined;
  }
}

export function writeSession(s: SessionFile, file = sessionPath()): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function removeSession(file = sessionPath()): void {
  rmSync(file, { force: true });
}
