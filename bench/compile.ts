/**
 * Compiles a synthetic fleet of 200 clusters and 1,000 grants, with 50 teams,
 * a deny and conditional grants; signs every bundle and writes generated/ to
 * a temp dir. Prints wall time, CPU time and peak RSS. Target: ≤ 5 s.
 *
 * Two shapes (`--shape`):
 * - `targeted` (default): grants select clusters by labels as fleets do —
 *   env+region, region, env, or a few names — so each grant lands on ~20
 *   clusters;
 * - `everywhere`: every grant on every cluster (200,000 grant instances),
 *   the worst case.
 *   node bin/run-ts.js bench/compile.ts [--clusters N] [--grants N] [--shape targeted|everywhere]
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Catalog } from '../compiler/catalog.ts';
import { compileFleet } from '../compiler/compile.ts';
import { Cluster, Deny, Fleet, Grant, IdentityProvider, Role, Roles, Team } from '../compiler/index.ts';
import { writeGenerated } from '../compiler/load.ts';

const { values } = parseArgs({ options: { clusters: { type: 'string', default: '200' }, grants: { type: 'string', default: '1000' }, shape: { type: 'string', default: 'targeted' } } });
const everywhere = values.shape === 'everywhere';
const ENVS = ['dev', 'dev', 'dev', 'staging', 'prod'];
const nClusters = Number(values.clusters);
const nGrants = Number(values.grants);
const catalog = JSON.parse(readFileSync('generated/catalog/dev.json', 'utf8')) as Catalog;

const t0 = performance.now();
const fleet = new Fleet('bench');
const idp = new IdentityProvider(fleet, 'corp', { issuer: 'https://idp.example', usernamePrefix: 'oidc:' });
for (let c = 0; c < nClusters; c++) {
  new Cluster(fleet, `c${c}`, { server: `https://c${c}:6443`, labels: { env: ENVS[c % 5] ?? 'dev', region: `r${Math.floor(c / 5) % 10}`, fleet: 'all' } });
}
const clustersFor = (g: number) => {
  if (everywhere) return { labels: { fleet: 'all' } };
  const env = ENVS[g % 5] ?? 'dev';
  const region = `r${g % 10}`;
  switch (g % 20) {
    case 0: return { names: [`c${g % nClusters}`, `c${(g + 7) % nClusters}`] };
    case 1: case 2: case 3: return { labels: { env } };
    case 4: case 5: case 6: case 7: case 8: case 9: return { labels: { region } };
    default: return { labels: { env, region } };
  }
};
const teams = Array.from({ length: 50 }, (_, t) => new Team(fleet, `team${t}`, { group: idp.group(`team${t}`), members: [idp.user(`u${t}a`), idp.user(`u${t}b`)], namespaces: [`t${t}-a`, `t${t}-b`] }));
const custom = new Role(fleet, 'deployer').allow(['get', 'list', 'create', 'update'], ['deployments'], { apiGroups: ['apps'] }).allowRead(['pods', 'configmaps']);
const roles = [Roles.view, Roles.edit, Roles.logs, custom];
for (let g = 0; g < nGrants; g++) {
  const team = teams[g % teams.length];
  if (!team) continue;
  new Grant(fleet, `g${g}`, {
    to: [idp.group(`team${g % 50}`), idp.user(`u${g % 50}a`)],
    role: roles[g % roles.length] ?? Roles.view,
    clusters: clustersFor(g),
    namespaces: g % 7 === 0 ? 'cluster' : team.namespaceSelector,
    ...(g % 11 === 0 ? { expires: '2030-01-01T00:00:00Z' } : {}),
    ...(g % 13 === 0 ? { windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '18:00', timeZone: 'Europe/Berlin' }] } : {}),
  });
}
new Deny(fleet, 'no-secrets-in-prod', { subjects: 'everyone', except: [idp.group('sre')], rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }], clusters: { labels: { env: 'prod' } } });
const tBuilt = performance.now();

const catalogs = new Map(Array.from({ length: nClusters }, (_, c) => [`c${c}`, catalog] as const));
const { privateKey } = generateKeyPairSync('ed25519');
const out = compileFleet({ fleet, catalogs, now: Date.parse('2026-11-22T12:00:00Z'), sourceDigest: 'sha256:bench', previous: new Map(), signingKey: privateKey });
const tCompiled = performance.now();
const errors = out.problems.filter((p) => p.severity === 'error');
if (errors.length) throw new Error(`bench fleet has problems: ${errors.slice(0, 3).map((p) => p.message).join('; ')}`);
const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
writeGenerated(join(dir, 'generated'), out.files);
const tWritten = performance.now();
rmSync(dir, { recursive: true, force: true });

const bytes = [...out.files.values()].reduce((n, s) => n + s.length, 0);
const instances = out.resolution.clusters.reduce((n, c) => n + c.ruleSet.grants.length, 0);
const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;
console.log(`fleet (${everywhere ? 'everywhere' : 'targeted'}): ${nClusters} clusters x ${nGrants} grants = ${instances} grant instances; ${out.files.size} files, ${(bytes / 1e6).toFixed(1)} MB`);
console.log(`declare policy   ${ms(tBuilt - t0)}`);
console.log(`resolve+synth+sign ${ms(tCompiled - tBuilt)}`);
console.log(`write generated/ ${ms(tWritten - tCompiled)}`);
console.log(`total            ${ms(tWritten - t0)}   (target <= 5.00 s)`);
const cpu = process.cpuUsage();
console.log(`CPU time         ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s (user+system; wall time above is what counts, this shows contention)`);
console.log(`load average     ${(await import('node:os')).loadavg()[0]?.toFixed(2)} (1 min; figures are only meaningful near 0)`);
console.log(`peak RSS         ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
