// The portcullis CLI as a person's laptop runs it (its own config directory), and a browser
// sign-in through it: shared by the login and lock tests.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Harness } from '../proxy/harness.ts';
import { signIn } from './oidc-browser.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** A running CLI command. */
export interface Cli {
  readonly output: () => string;
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  readonly exited: Promise<number | null>;
}

/** Runs `portcullis ARGS` with `home` as its HOME and XDG_CONFIG_HOME. */
export function cli(home: string, args: readonly string[]): Cli {
  const p = spawn(process.execPath, [join(ROOT, 'bin/portcullis.js'), ...args], { cwd: ROOT, env: { ...process.env, XDG_CONFIG_HOME: home, HOME: home } });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => {
    err += c.toString();
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((r) => p.on('close', (code) => r(code)));
  return {
    output: () => `${err}${out}`,
    exited,
    waitFor: (re, ms = 15_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(err);
          if (m) resolve(m);
        };
        waiters.push(check);
        check();
        setTimeout(() => reject(new Error(`no ${re} in ${err}`)), ms).unref();
      }),
  };
}

/** A CA bundle trusting both the proxy and the identity provider. */
export function trustBundle(h: Harness): string {
  const file = join(h.dir, 'trust.pem');
  writeFileSync(file, `${h.proxyCa.caPem}${h.oidc.caPem}`);
  return file;
}

/** `portcullis login` through the browser flow, `person` filling in the provider's forms; returns the laptop's home. */
export async function browserLogin(h: Harness, person: string, proxyPort = h.port): Promise<string> {
  const home = mkdtempSync(join(tmpdir(), `portcullis-home-${person}-`));
  const c = cli(home, ['login', '--proxy', `https://127.0.0.1:${proxyPort}`, '--ca', trustBundle(h), '--no-browser']);
  const [, url] = await c.waitFor(/Sign in through your browser: (\S+)/);
  const back = await signIn(url ?? '', { login: person, caPem: h.oidc.caPem });
  assert.match(back.url, /^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
  const r = await fetch(back.url);
  assert.equal(r.status, 200);
  assert.equal(await c.exited, 0, c.output());
  return home;
}

/** `portcullis kubeconfig --out` for the session in `home`; returns the file. */
export async function writeKubeconfig(home: string): Promise<string> {
  const file = join(home, 'kubeconfig.yaml');
  const c = cli(home, ['kubeconfig', '--out', file]);
  assert.equal(await c.exited, 0, c.output());
  return file;
}

/** The same kubeconfig pointed at another replica. */
export function onPort(h: Harness, kubeconfig: string, port: number): string {
  const file = `${kubeconfig}.${port}.yaml`;
  writeFileSync(file, readFileSync(kubeconfig, 'utf8').replaceAll(`127.0.0.1:${h.port}`, `127.0.0.1:${port}`));
  return file;
}
