import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readTree } from '../../compiler/load.ts';

const NOW = '2026-11-22T12:00:00Z';
const work: string[] = [];
after(() => work.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the example policies and catalogs in a scratch dir inside the repo (so `../../compiler` resolves). */
function scratch(): { dir: string; policies: string; out: string } {
  const dir = mkdtempSync(join(process.cwd(), '.tmp-test-'));
  work.push(dir);
  const policies = join(dir, 'policies');
  cpSync('policies', policies, { recursive: true });
  for (const f of readdirSync(policies).filter((x) => x.endsWith('.ts'))) {
    const p = join(policies, f);
    writeFileSync(p, readFileSync(p, 'utf8').replaceAll("'../compiler/", "'../../compiler/").replace("signingKeyFile: 'policies/", `signingKeyFile: '${dir.slice(process.cwd().length + 1)}/policies/`));
  }
  const out = join(dir, 'generated');
  cpSync('generated/catalog', join(out, 'catalog'), { recursive: true });
  return { dir, policies, out };
}
function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['bin/portcullis.js', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const compile = (s: { policies: string; out: string }, ...extra: string[]) => cli(['compile', '--policies', s.policies, '--out', s.out, '--now', NOW, '--no-typecheck', ...extra]);

describe('portcullis compile', () => {
  it('GIVEN the committed example policy WHEN checked at the time its bundles were signed THEN generated/ is exactly what it compiles to, and verifies', async () => {
    // The wall clock is the renew workflow's business (expiry, and grants of the policy that expire
    // meanwhile): this test reproduces the compile, at the time the committed bundles were signed
    // (notAfter minus the policy's bundleValidityDays), so it passes on any date.
    const { default: fleet } = (await import('../../policies/index.ts')) as { default: { props: { bundleValidityDays?: number } } };
    const signedAt = Math.max(
      ...['dev', 'prod-eu', 'staging'].map((c) => Date.parse((JSON.parse(Buffer.from(JSON.parse(readFileSync(join('generated', c, 'bundle.sig.json'), 'utf8')).payload, 'base64').toString()) as { notAfter: string }).notAfter)),
    ) - (fleet.props.bundleValidityDays ?? 30) * 86_400_000;
    const r = cli(['compile', '--check', '--now', new Date(signedAt).toISOString()]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /generated\/ is up to date \(3 clusters; the first bundle expires \S+ \(in \d+d/);
  });

  it('GIVEN the same policy compiled twice into fresh directories THEN the bytes are identical', () => {
    const a = scratch();
    const b = { policies: a.policies, out: join(a.dir, 'generated-again') };
    cpSync(join(a.out, 'catalog'), join(b.out, 'catalog'), { recursive: true });
    assert.equal(compile(a).code, 0);
    assert.equal(compile(b).code, 0);
    const ta = readTree(a.out);
    const tb = readTree(b.out);
    assert.deepEqual([...ta.keys()], [...tb.keys()]);
    for (const [p, bytes] of ta) assert.equal(Buffer.compare(Buffer.from(bytes), Buffer.from(tb.get(p) ?? [])), 0, p);
  });

  it('GIVEN an unchanged policy WHEN compiled again later THEN nothing changes, not even the revision', () => {
    const s = scratch();
    compile(s);
    const before = readTree(s.out);
    assert.equal(cli(['compile', '--policies', s.policies, '--out', s.out, '--now', '2026-11-25T00:00:00Z', '--no-typecheck']).code, 0);
    assert.deepEqual(readTree(s.out), before);
  });

  it('GIVEN a policy change THEN only the affected clusters get a new revision', () => {
    const s = scratch();
    compile(s);
    const p = join(s.policies, 'access.ts');
    writeFileSync(p, readFileSync(p, 'utf8').replace("namespaces: ['search'],\n    expires", "namespaces: ['search', 'checkout'],\n    expires"));
    const r = compile(s);
    assert.equal(r.code, 0, r.err);
    const rev = (c: string) => JSON.parse(Buffer.from(JSON.parse(readFileSync(join(s.out, c, 'bundle.sig.json'), 'utf8')).payload, 'base64').toString()).revision;
    // sourceDigest covers every policy file, so every cluster moves on; content changed only on staging.
    assert.equal(rev('staging'), 2);
  });

  it('GIVEN a Namespace named like a Cluster (both dev) and a grant in it THEN it compiles: the namespace and the binding are in that cluster\'s RBAC', () => {
    const s = scratch();
    const p = join(s.policies, 'clusters.ts');
    writeFileSync(
      p,
      readFileSync(p, 'utf8').replace("import { Cluster, type Fleet } from '../../compiler/index.ts';", "import { Cluster, Grant, Namespace, Roles, type Fleet } from '../../compiler/index.ts';") +
        "\nexport function devNamespace(fleet: Fleet): void {\n  new Namespace(fleet, 'dev', { clusters: { names: ['dev'] } });\n  new Grant(fleet, 'dev-ns-view', { to: [{ kind: 'Group', name: 'oidc:developers', source: { file: 'x', line: 1 } }], role: Roles.view, clusters: { names: ['dev'] }, namespaces: ['dev'] });\n}\n",
    );
    const i = join(s.policies, 'index.ts');
    writeFileSync(i, readFileSync(i, 'utf8').replace("import { clusters } from './clusters.ts';", "import { clusters, devNamespace } from './clusters.ts';").replace('clusters(fleet);', 'clusters(fleet);\ndevNamespace(fleet);'));
    const r = compile(s);
    assert.equal(r.code, 0, r.err);
    const docs = readFileSync(join(s.out, 'dev', 'rbac.yaml'), 'utf8');
    assert.match(docs, /kind: Namespace\nmetadata:\n(?:  .*\n)*?  name: dev\n/);
    assert.match(docs, /kind: RoleBinding\nmetadata:\n(?:  .*\n)*?  namespace: dev\n/);
  });

  const statement = (out: string, c: string) =>
    JSON.parse(Buffer.from(JSON.parse(readFileSync(join(out, c, 'bundle.sig.json'), 'utf8')).payload, 'base64').toString()) as { revision: number; notAfter: string };
  const at = (days: number) => new Date(Date.parse(NOW) + days * 86_400_000).toISOString();

  it('GIVEN bundles 30 days valid WHEN compile --check runs 10, 20 and 31 days later THEN up to date, then due for renewal (exit 0, a warning), then expired (exit 3)', () => {
    const s = scratch();
    assert.equal(compile(s).code, 0);
    const check = (days: number) => cli(['compile', '--check', '--policies', s.policies, '--out', s.out, '--now', at(days), '--no-typecheck']);
    const fresh = check(10);
    assert.equal(fresh.code, 0, fresh.err);
    assert.doesNotMatch(fresh.err, /expir(ing|ed):/);
    assert.match(fresh.err, /up to date \(3 clusters; the first bundle expires 2026-12-22T12:00:00.000Z \(in 20d\)\)/);
    const due = check(20);
    assert.equal(due.code, 0, due.err);
    assert.equal(due.err.match(/^warning: expiring: \S+ revision 1 expires .* \(in 10d\), within the 14d renewal window; run 'portcullis compile --renew-within 14d'/gm)?.length, 3, due.err);
    const late = check(31);
    assert.equal(late.code, 3, late.err);
    assert.match(late.err, /matches policies\/, but bundles have expired/);
    assert.equal(late.err.match(/^ {2}expired: \S+ revision 1 expired at 2026-12-22T12:00:00.000Z$/gm)?.length, 3, late.err);
    // A stale tree is stale first, whatever the clock.
    writeFileSync(join(s.out, 'dev', 'rules.json'), '{}');
    assert.equal(check(31).code, 1);
  });

  it('GIVEN bundles 20 days old WHEN compile --renew-within 14d THEN each gets a new revision valid 30 days from then; 10 days old THEN nothing changes', () => {
    const s = scratch();
    assert.equal(compile(s).code, 0);
    const before = readTree(s.out);
    const renew = (days: number) => cli(['compile', '--policies', s.policies, '--out', s.out, '--now', at(days), '--no-typecheck', '--renew-within', '14d']);
    assert.equal(renew(10).code, 0);
    assert.deepEqual(readTree(s.out), before);
    const r = renew(20);
    assert.equal(r.code, 0, r.err);
    for (const c of ['dev', 'prod-eu', 'staging']) {
      assert.deepEqual(statement(s.out, c), { ...statement(s.out, c), revision: 2, notAfter: at(50) });
      assert.equal(readFileSync(join(s.out, c, 'rules.json'), 'utf8'), Buffer.from(before.get(`${c}/rules.json`) ?? []).toString(), 'the content stays');
    }
    const check = cli(['compile', '--check', '--policies', s.policies, '--out', s.out, '--now', at(21), '--no-typecheck']);
    assert.equal(check.code, 0, check.err);
    assert.doesNotMatch(check.err, /expiring/);
    assert.equal(cli(['compile', '--policies', s.policies, '--out', s.out, '--now', at(20), '--no-typecheck', '--renew-within', 'soon']).code, 1);
  });

  const broken: [string, string, string, RegExp][] = [
    ['a runtime error', 'access.ts', "  new Grant(fleet, 'developers-read-prod', {", /access\.ts:\d+: error POLICY_LOAD/],
    ['a validation error', 'access.ts', "clusters: { names: ['staging'] },", /access\.ts:\d+: error UNKNOWN_CLUSTER: unknown cluster 'stagin' \(did you mean 'staging'\?\)/],
  ];
  for (const [name, file, needle, want] of broken) {
    it(`GIVEN ${name} THEN it names file and line, exits 1 and writes nothing`, () => {
      const s = scratch();
      compile(s);
      const before = readTree(s.out);
      const p = join(s.policies, file);
      const src = readFileSync(p, 'utf8');
      assert.ok(src.includes(needle), needle);
      const edited = name === 'a runtime error' ? src.replace(needle, `  (undefined as unknown as { x: () => void }).x();\n${needle}`) : src.replace(needle, needle.replace("'staging'", "'stagin'"));
      writeFileSync(p, edited);
      const r = compile(s);
      assert.equal(r.code, 1);
      assert.match(r.err, want);
      assert.match(r.err, /nothing was written/);
      assert.deepEqual(readTree(s.out), before);
    });
  }

  it('GIVEN a type error THEN compile reports it with file:line and writes nothing', () => {
    const s = scratch();
    compile(s);
    const before = readTree(s.out);
    const p = join(s.policies, 'clusters.ts');
    writeFileSync(p, readFileSync(p, 'utf8').replace("labels: { env: 'dev',", "labels: { env: 42,"));
    const r = cli(['compile', '--policies', s.policies, '--out', s.out, '--now', NOW]);
    assert.equal(r.code, 1);
    assert.match(r.err, /clusters\.ts:\d+: error TYPE_ERROR: .*number.*string/);
    assert.deepEqual(readTree(s.out), before);
  });

  it('GIVEN a hand-edited generated file THEN compile --check fails and names it; verify refuses the bundle', () => {
    const s = scratch();
    compile(s);
    const f = join(s.out, 'prod-eu', 'rbac.yaml');
    writeFileSync(f, readFileSync(f, 'utf8').replace('- get', '- delete'));
    const r = cli(['compile', '--check', '--policies', s.policies, '--out', s.out, '--now', NOW, '--no-typecheck']);
    assert.equal(r.code, 1);
    assert.match(r.err, /stale: prod-eu\/rbac\.yaml/);
    assert.match(r.err, /verify: prod-eu: BUNDLE_DIGEST/);
    const v = cli(['verify', '--cluster', 'prod-eu', '--generated', s.out, '--now', NOW]);
    assert.equal(v.code, 1);
    assert.match(v.err, /BUNDLE_DIGEST/);
  });

  it('GIVEN a changed policy and no signing key THEN compile refuses and says how to provide one', () => {
    const s = scratch();
    compile(s);
    const p = join(s.policies, 'index.ts');
    writeFileSync(p, readFileSync(p, 'utf8').replace(/signingKeyFile: '[^']+',/, '').replace('bundleValidityDays: 30', 'bundleValidityDays: 20'));
    const tp = join(s.policies, 'teams.ts');
    writeFileSync(tp, readFileSync(tp, 'utf8').replace("'carol@acme.example'", "'carol@acme.example', 'cora@acme.example'"));
    const r = compile(s);
    assert.equal(r.code, 1);
    assert.match(r.err, /PORTCULLIS_SIGNING_KEY/);
  });

  it('GIVEN keygen THEN it refuses to write a private key under generated/', () => {
    const s = scratch();
    const r = cli(['keygen', '--out', join(s.out, 'k.pem')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /generated/);
  });
});
