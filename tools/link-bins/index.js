#!/usr/bin/env node
// npm's `prepare` for this checkout: links the package's own commands into node_modules/.bin,
// pointing at the source launchers in bin/ (which run the TypeScript through tsx), so that
// `npx portcullis …` and `npx kubectl-portcullis …` work here as in a policy repository that
// depends on the package. npm links a dependency's bins, never the root project's own; and the
// package's bin entries point at dist/, which exists only in the packed tarball (packaging/build.js).
import { existsSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const binDir = join(root, 'node_modules', '.bin');
if (!existsSync(join(root, 'node_modules'))) process.exit(0); // nothing installed: nothing to link into
mkdirSync(binDir, { recursive: true });
for (const name of ['portcullis', 'kubectl-portcullis']) {
  const target = relative(binDir, join(root, 'bin', `${name}.js`));
  const link = join(binDir, name);
  let current;
  try {
    current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : undefined;
  } catch {
    current = null; // absent
  }
  if (current === target) continue;
  if (current !== null) rmSync(link, { force: true });
  symlinkSync(target, link);
}
