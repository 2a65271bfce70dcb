import type TypeScript from 'typescript';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { keyIdOf, sha256, trustedKeysOf, type TrustedKeys } from '../core/index.ts';
import type { Catalog } from './catalog.ts';
import { Fleet } from './lang/fleet.ts';
import type { Problem } from './problem.ts';
import { parseFrame, setSourceRoot } from './private/source-location.ts';

/** The I/O edge of the compiler: reading policies, catalogs, keys and the generated tree; writing it. */

/** Every file under a directory, path (relative, `/`-separated) → bytes, in sorted order. */
export function readTree(dir: string, skip: (rel: string) => boolean = () => false): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  if (!existsSync(dir)) return out;
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const rel = relative(dir, p).split(sep).join('/');
      if (skip(rel)) continue;
      if (statSync(p).isDirectory()) walk(p);
      else out.set(rel, readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** Policy assertion files end so: `portcullis test` imports every one under policies/. */
export const ASSERTION_SUFFIX = '.assert.ts';

/** sha256 over every policy source file's path and bytes (assertions excluded). */
export function digestSources(policiesDir: string): string {
  // Assertions (`*.assert.ts`) state what the policy must allow; they are not part of it, and editing one re-signs nothing.
  const tree = readTree(policiesDir, (rel) => rel.startsWith('demo-keys/') || rel.endsWith(ASSERTION_SUFFIX));
  const h: string[] = [];
  for (const [p, b] of tree) h.push(`${p}\u0000${sha256(b)}`);
  return `sha256:${sha256(h.join('\n'))}`;
}

/**
 * Imports `<policiesDir>/index.ts` and returns its default-exported Fleet.
 * A policy that throws becomes a POLICY_LOAD problem naming its file and line.
 */
export async function loadPolicy(policiesDir: string, repoRoot: string): Promise<{ fleet?: Fleet; problems: Problem[] }> {
  setSourceRoot(repoRoot);
  const entry = resolve(policiesDir, 'index.ts');
  if (!existsSync(entry)) {
    return { problems: [problem('POLICY_LOAD', `no ${relative(repoRoot, entry)}`, { file: relative(repoRoot, policiesDir), line: 0 }, 'create it and export the Fleet as default')] };
  }
  const loaded = await importPolicyModule(entry, policiesDir, repoRoot);
  if ('problem' in loaded) return { problems: [loaded.problem] };
  if (!(loaded.module.default instanceof Fleet)) {
    return { problems: [problem('POLICY_LOAD', 'the policy does not export a Fleet as default', { file: relative(repoRoot, entry), line: 1 }, 'end it with `export default fleet;`')] };
  }
  return { fleet: loaded.module.default, problems: [] };
}

/**
 * Imports a policy module afresh (index.ts, or an assertion file). What it throws becomes a
 * POLICY_LOAD problem at the line under `policiesDir` that threw.
 */
export async function importPolicyModule(file: string, policiesDir: string, repoRoot: string): Promise<{ module: { default?: unknown } } | { problem: Problem }> {
  try {
    return { module: (await import(`${pathToFileURL(file).href}?t=${Date.now()}`)) as { default?: unknown } };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const root = resolve(policiesDir);
    const frame = (err.stack ?? '').split('\n').map(parseFrame).find((f) => f && f.path.startsWith(root));
    const source = frame ? { file: relative(repoRoot, frame.path).split(sep).join('/'), line: frame.line } : { file: relative(repoRoot, file), line: 0 };
    return { problem: problem('POLICY_LOAD', err.message.split('\n')[0] ?? 'failed to load', source) };
  }
}

/** Type-checks the policy sources with the TypeScript compiler; each diagnostic becomes a TYPE_ERROR problem. */
export async function typecheckPolicies(policiesDir: string, repoRoot: string): Promise<Problem[]> {
  let ts: typeof TypeScript;
  try {
    ts = (await import('typescript')).default;
  } catch {
    // TypeScript is the policy repository's own dependency (portcullis init adds it), not this package's.
    return [problem('TYPE_ERROR', 'typescript is not installed, so the policy cannot be type-checked', { file: 'package.json', line: 1 }, 'npm install --save-dev typescript, or compile --no-typecheck')];
  }
  const configPath = ts.findConfigFile(repoRoot, ts.sys.fileExists, 'tsconfig.json');
  const parsed = configPath ? ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} }) : undefined;
  const roots = [...readTree(policiesDir).keys()].filter((p) => p.endsWith('.ts')).map((p) => resolve(policiesDir, p));
  const program = ts.createProgram(roots, { ...(parsed?.options ?? {}), noEmit: true });
  const policyRoot = resolve(policiesDir);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file && resolve(d.file.fileName).startsWith(policyRoot))
    .map((d) => {
      const file = d.file;
      const line = file && d.start !== undefined ? file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
      return problem('TYPE_ERROR', ts.flattenDiagnosticMessageText(d.messageText, ' '), { file: file ? relative(repoRoot, file.fileName).split(sep).join('/') : '?', line });
    });
}

function problem(code: Problem['code'], message: string, source: Problem['source'], hint?: string): Problem {
  return { severity: 'error', code, message, source, path: '', ...(hint ? { hint } : {}) };
}

/** Catalogs in `<generated>/catalog/<cluster>.json`. */
export function readCatalogs(generatedDir: string): Map<string, Catalog> {
  const out = new Map<string, Catalog>();
  const dir = join(generatedDir, 'catalog');
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).sort()) {
    if (f.endsWith('.json')) out.set(f.slice(0, -5), JSON.parse(readFileSync(join(dir, f), 'utf8')) as Catalog);
  }
  return out;
}

/** The signing key: PORTCULLIS_SIGNING_KEY (a PEM file path), else the fleet's signingKeyFile. */
export function readSigningKey(repoRoot: string, fleetKeyFile: string | undefined, env: NodeJS.ProcessEnv = process.env): KeyObject | undefined {
  const path = env.PORTCULLIS_SIGNING_KEY ?? (fleetKeyFile ? resolve(repoRoot, fleetKeyFile) : undefined);
  if (!path) return undefined;
  const key = createPrivateKey(readFileSync(path));
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${path}: the signing key must be Ed25519`);
  return key;
}

/** Trusted public keys from PEM files, by key id. */
export function readTrustedKeys(pemFiles: readonly string[]): TrustedKeys {
  return trustedKeysOf(pemFiles.map((f) => readFileSync(f)));
}

/** Generates an Ed25519 key pair; writes the private key (mode 0600) and the public key next to it. */
export function generateKeyFiles(privatePath: string): { keyId: string; publicPath: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  mkdirSync(dirname(privatePath), { recursive: true });
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  const publicPath = privatePath.replace(/(\.key|\.pem)?$/, '.pub.pem');
  writeFileSync(publicPath, publicKey.export({ type: 'spki', format: 'pem' }));
  return { keyId: keyIdOf(publicKey), publicPath };
}

/**
 * Replaces the generated tree (all but `catalog/`) with `files`, by writing a
 * complete new tree beside it and swapping directories, so a failure leaves
 * the old tree whole.
 */
export function writeGenerated(generatedDir: string, files: ReadonlyMap<string, string>): void {
  const staging = `${generatedDir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  for (const [rel, text] of files) {
    const p = join(staging, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  const catalog = join(generatedDir, 'catalog');
  if (existsSync(catalog)) {
    for (const [rel, bytes] of readTree(catalog)) {
      const p = join(staging, 'catalog', rel);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, bytes);
    }
  }
  const old = `${generatedDir}.old-${process.pid}`;
  if (existsSync(generatedDir)) renameSync(generatedDir, old);
  renameSync(staging, generatedDir);
  rmSync(old, { recursive: true, force: true });
}
