#!/usr/bin/env node
// Builds the npm package's contents into dist/ (run by `npm pack` through prepack):
// the product compiled to JavaScript with its type declarations, the entry points,
// and the Go modules the sandbox builds its control plane from. The layout mirrors
// the repository's, so every module finds its neighbours at the same relative paths.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
// tsc rewrites relative .ts specifiers in the JavaScript, not in the declarations: do it there too.
for (const f of readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.d.ts'))) {
  const p = join(dist, f);
  writeFileSync(p, readFileSync(p, 'utf8').replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1$2.js$3'));
}
// portcullis init gives a policy repository this repository's own workflows.
for (const w of ['plan.yml', 'apply.yml', 'renew.yml']) cpSync(join(root, '.github', 'workflows', w), join(dist, '.github', 'workflows', w));
// The console's browser files are served as they are (console/assets.ts reads them beside the module).
cpSync(join(root, 'console', 'web'), join(dist, 'console', 'web'), { recursive: true });
for (const m of ['kube', 'etcd', 'helm']) cpSync(join(root, 'tools', m), join(dist, 'tools', m), { recursive: true });
mkdirSync(join(dist, 'bin'), { recursive: true });
// tsx stays: it loads the policy repository's own TypeScript (policies/), not Portcullis.
const entry = (name, note) =>
  `#!/usr/bin/env node\n// ${note}\nimport { register } from 'tsx/esm/api';\n\nregister();\nconst { main } = await import('../cli/main.js');\nprocess.exitCode = await main(process.argv, '${name}');\n`;
// The image's two commands load only what they run: neither tsx's loader (a thread, esbuild, source
// maps; they read no policy) nor the other commands' modules (issue 18: idle memory).
// `portcullis proxy --config FILE` starts the proxy alone; `portcullis agent …` the in-cluster agent
// alone (issue 16). Every other command line goes through the CLI as before.
const proxyEntry = (name, note) =>
  `#!/usr/bin/env node\n// ${note}\nconst a = process.argv;\nif (a.length === 5 && a[2] === 'proxy' && a[3] === '--config') {\n  const { proxyMain } = await import('../runtime-proxy/run.js');\n  process.exitCode = await proxyMain(a[4]);\n} else if (a[2] === 'agent') {\n  const { main } = await import('../agent/main.js');\n  process.exitCode = await main(a);\n} else {\n  const { register } = await import('tsx/esm/api');\n  register();\n  const { main } = await import('../cli/main.js');\n  process.exitCode = await main(process.argv, '${name}');\n}\n`;
const bins = {
  'portcullis.js': proxyEntry('portcullis', 'The portcullis CLI, compiled.'),
  'kubectl-portcullis.js': entry('kubectl portcullis', 'kubectl plugin: `kubectl portcullis explain …` with this on PATH as kubectl-portcullis.'),
};
for (const [f, text] of Object.entries(bins)) {
  writeFileSync(join(dist, 'bin', f), text);
  chmodSync(join(dist, 'bin', f), 0o755);
}
console.log('dist/ built');
