import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRODUCT_VERSION } from '../core/version.ts';
import { policyFiles } from './templates.ts';

/** This repository's own CI workflows, which a policy repository runs too (shipped in the package beside dist/). */
const WORKFLOWS_DIR = fileURLToPath(new URL('../.github/workflows/', import.meta.url));
const WORKFLOWS = ['plan.yml', 'apply.yml', 'renew.yml'] as const;

/** `portcullis init` refused to scaffold. */
export class ScaffoldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScaffoldError';
  }
}

/** What `portcullis init` wrote and left alone. */
export interface InitResult {
  readonly written: readonly string[];
  readonly kept: readonly string[];
}

/**
 * Scaffolds a policy repository in `dir`: policies/, tsconfig.json, a README, the plan,
 * apply and renewal workflows, and package.json's dependency on this package and scripts.
 * Never overwrites a file; an existing package.json gains only what it lacks.
 */
export function initPolicyRepository(dir: string, name = basename(resolve(dir))): InitResult {
  const written: string[] = [];
  const kept: string[] = [];
  const put = (rel: string, text: string): void => {
    const p = join(dir, rel);
    if (existsSync(p)) {
      kept.push(rel);
      return;
    }
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    written.push(rel);
  };
  if (existsSync(join(dir, 'policies'))) throw new ScaffoldError(`${join(dir, 'policies')} exists already: init scaffolds a new policy repository`);
  for (const [rel, text] of Object.entries(policyFiles(name))) put(rel, text);
  for (const w of WORKFLOWS) put(`.github/workflows/${w}`, asPolicyRepoWorkflow(readFileSync(join(WORKFLOWS_DIR, w), 'utf8')));
  const pkgFile = join(dir, 'package.json');
  const pkg = existsSync(pkgFile) ? (JSON.parse(readFileSync(pkgFile, 'utf8')) as Record<string, unknown>) : { name, private: true };
  const deps = { ...((pkg['dependencies'] as Record<string, string> | undefined) ?? {}) };
  const devDeps = { ...((pkg['devDependencies'] as Record<string, string> | undefined) ?? {}) };
  deps['portcullis'] ??= `^${PRODUCT_VERSION}`;
  // compile type-checks the policy with the repository's own TypeScript.
  devDeps['typescript'] ??= '^5.9.3';
  const scripts = { ...((pkg['scripts'] as Record<string, string> | undefined) ?? {}) };
  scripts['compile'] ??= 'portcullis compile';
  scripts['check'] ??= 'portcullis compile --check';
  scripts['test'] ??= 'portcullis test';
  writeFileSync(pkgFile, `${JSON.stringify({ ...pkg, type: 'module', scripts, dependencies: deps, devDependencies: devDeps }, null, 2)}\n`);
  written.push('package.json');
  return { written, kept };
}

/** This repository runs the CLI from source (`node bin/portcullis.js`); a policy repository runs the package's. */
export function asPolicyRepoWorkflow(text: string): string {
  return text.replaceAll('node bin/portcullis.js', 'npx portcullis');
}
