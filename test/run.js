#!/usr/bin/env node
// Runs every *.test.ts under test/ with Node's test runner (through tsx).
// `node test/run.js [FILTER…]` runs only the files whose path contains a filter.
//
// When a selected file uses the sandbox fleet (imports test/support/fleet.ts),
// ONE fleet of 3 real clusters is started first (building the binaries if the
// cache lacks them), shared by every file through PORTCULLIS_TEST_FLEET, and
// always torn down afterwards — on success, failure, SIGINT or SIGTERM.
// A fleet you started yourself can be reused: PORTCULLIS_TEST_FLEET=DIR/fleet.json.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filters = process.argv.slice(2);
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(relative(root, p));
  }
})(join(root, 'test'));
const chosen = filters.length ? files.filter((f) => filters.some((x) => f.includes(x))) : files;
if (chosen.length === 0) {
  console.error(`no test file matches ${filters.join(', ')}`);
  process.exit(1);
}

const sandboxMain = join(root, 'sandbox', 'main.ts');
const runTs = join(root, 'bin', 'run-ts.js');
const needsFleet = !process.env.PORTCULLIS_TEST_FLEET && chosen.some((f) => usesFleet(join(root, f), new Set()));

/** True when a file imports test/support/fleet.ts, directly or through relative imports (e.g. a shared harness). */
function usesFleet(file, seen) {
  if (seen.has(file)) return false;
  seen.add(file);
  let src;
  try {
    src = readFileSync(file, 'utf8');
  } catch {
    return false;
  }
  if (/support\/fleet(\.ts)?['"]/.test(src) || (file.endsWith(join('support', 'fleet.ts')))) return true;
  for (const m of src.matchAll(/from\s+['"](\.{1,2}\/[^'"]+\.ts)['"]/g)) {
    const dep = join(dirname(file), m[1]);
    if (dep.startsWith(join(root, 'test')) && usesFleet(dep, seen)) return true;
  }
  return false;
}

let fleetDir;
let child;
let tornDown = false;
function teardown() {
  if (!fleetDir || tornDown) return;
  tornDown = true;
  const r = spawnSync(process.execPath, [runTs, sandboxMain, 'down', '--dir', fleetDir], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) console.error(`test fleet teardown failed; run: node bin/run-ts.js sandbox/main.ts down --dir ${fleetDir}`);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (child) child.kill(sig);
    teardown();
    process.exit(130);
  });
}
process.on('exit', teardown);

/** Stops test fleets whose runner died without tearing down (e.g. SIGKILL). */
function reapOrphanFleets() {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith('portcullis-test-fleet-') && !name.startsWith('portcullis-fleet-')) continue;
    const dir = join(tmpdir(), name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue;
    }
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch {
      alive = false;
    }
    if (!alive) {
      console.log(`stopping an orphaned test fleet in ${dir} (its runner, pid ${owner}, is gone)`);
      spawnSync(process.execPath, [runTs, sandboxMain, 'down', '--dir', dir], { cwd: root, stdio: 'inherit' });
    }
  }
}

const t0 = Date.now();
const env = { ...process.env };
reapOrphanFleets();
if (needsFleet) {
  fleetDir = mkdtempSync(join(tmpdir(), 'portcullis-test-fleet-'));
  console.log(`starting the test fleet (3 clusters) in ${fleetDir}`);
  const up = await run(process.execPath, [runTs, sandboxMain, 'up', '--clusters', '3', '--dir', fleetDir, '--owner-pid', String(process.pid)]);
  if (up !== 0) {
    console.error('could not start the test fleet (see above)');
    process.exit(1);
  }
  env.PORTCULLIS_TEST_FLEET = join(fleetDir, 'fleet.json');
  console.log(`test fleet up in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

const code = await run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...chosen], env);
teardown();
console.log(`test run finished in ${((Date.now() - t0) / 1000).toFixed(1)}s (exit ${code})`);
process.exit(code);

function run(cmd, args, runEnv = process.env) {
  return new Promise((resolve) => {
    child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: runEnv });
    child.on('error', (err) => {
      console.error(err.message);
      resolve(1);
    });
    child.on('close', (c, signal) => {
      child = undefined;
      resolve(c ?? (signal ? 1 : 0));
    });
  });
}
