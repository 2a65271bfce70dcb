import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  writeSecret(file, `${JSON.stringify(s, null, 2)}\n`);
}

/** Writes a file only its owner may read, whole or not at all: a 0600 temporary file renamed over it (an existing file's mode does not leak it). */
export function writeSecret(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function removeSession(file = sessionPath()): void {
  rmSync(file, { force: true });
}
