import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = join(root, '.github', 'workflows');
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();

/**
 * The CLI's commander program exactly as cli/main.ts builds it: every
 * `registerXCommands(program)` call there, imported from where main.ts imports it.
 */
async function program(): Promise<Command> {
  const mainFile = join(root, 'cli', 'main.ts');
  const src = readFileSync(mainFile, 'utf8');
  const from = new Map([...src.matchAll(/import \{ (register\w+) \} from '([^']+)';/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
  const calls = [...src.matchAll(/^\s*(register\w+)\(program\);/gm)].map((m) => m[1] ?? '');
  assert.ok(calls.includes('registerGitopsCommands') && calls.includes('registerCompilerCommands'), `cli/main.ts registers ${calls.join(', ')}`);
  const p = new Command('portcullis').exitOverride();
  for (const name of calls) {
    const path = from.get(name);
    assert.ok(path, `cli/main.ts calls ${name} without importing it`);
    const mod = (await import(new URL(path, pathToFileURL(mainFile)).href)) as Record<string, (c: Command) => void>;
    const register = mod[name];
    assert.ok(register, `${path} exports no ${name}`);
    register(p);
  }
  return p;
}

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  permissions?: Record<string, string> | string;
  environment?: unknown;
  steps?: Step[];
  uses?: string;
  with?: Record<string, unknown>;
  needs?: string | string[];
  if?: string;
  outputs?: Record<string, string>;
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string> | string;
  jobs: Record<string, Job>;
}

function load(f: string): { text: string; wf: Workflow } {
  const text = readFileSync(join(dir, f), 'utf8');
  return { text, wf: parse(text) as Workflow };
}

/** Splits a shell script into simple commands (continuations joined; `|`, `&&`, `;` split) and words (quotes respected). */
function shellCommands(script: string): string[][] {
  const joined = script.replace(/\\\n/g, ' ');
  const out: string[][] = [];
  for (const line of joined.split('\n')) {
    let words: string[] = [];
    let cur = '';
    let quote: string | null = null;
    let has = false;
    const flush = () => {
      if (has) words.push(cur);
      cur = '';
      has = false;
    };
    for (let i = 0; i < line.length; i++) {
      const ch = line[i] ?? '';
      if (quote) {
        if (ch === quote) quote = null;
        else cur += ch;
        continue;
      }
      if (ch === '"' || ch === "'") {
        quote = ch;
        has = true;
      } else if (ch === '#' && !has) break;
      else if (/\s/.test(ch)) flush();
      else if (ch === '|' || ch === ';' || ch === '&') {
        flush();
        if (words.length) out.push(words);
        words = [];
        if (line[i + 1] === ch) i++;
      } else {
        cur += ch;
        has = true;
      }
    }
    flush();
    if (words.length) out.push(words);
  }
  return out;
}

/** The portcullis invocations in a script: the words after `npx portcullis` / `node bin/portcullis.js`. */
function portcullisCalls(script: string): string[][] {
  const calls: string[][] = [];
  for (const words of shellCommands(script)) {
    for (let i = 0; i < words.length; i++) {
      if (words[i] === 'npx' && words[i + 1] === 'portcullis') calls.push(words.slice(i + 2));
      else if (words[i] === 'node' && words[i + 1] === 'bin/portcullis.js') calls.push(words.slice(i + 2));
      else if (words[i] === 'npm' && words[i + 1] === 'run' && words[i + 2] === 'portcullis' && words[i + 3] === '--') calls.push(words.slice(i + 4));
    }
  }
  return calls;
}

/** Checks one invocation against the commander program: subcommands, options and their values. Returns the problems. */
function checkCall(p: Command, words: readonly string[]): string[] {
  let cmd = p;
  let i = 0;
  while (i < words.length && !(words[i] ?? '').startsWith('-')) {
    const sub = cmd.commands.find((c) => c.name() === words[i] || c.aliases().includes(words[i] ?? ''));
    if (!sub) break;
    cmd = sub;
    i++;
  }
  if (cmd === p) return [`unknown command: ${words.join(' ')}`];
  const problems: string[] = [];
  let positional = 0;
  for (; i < words.length; i++) {
    const w = words[i] ?? '';
    if (w.startsWith('--')) {
      const [flag] = w.split('=');
      const opt = cmd.options.find((o) => o.long === flag || (o.negate && o.long === flag));
      if (!opt) {
        problems.push(`${cmd.name()}: unknown option ${flag}`);
        continue;
      }
      if ((opt.required || opt.optional) && !w.includes('=')) {
        if (opt.required && (i + 1 >= words.length || (words[i + 1] ?? '').startsWith('--'))) problems.push(`${cmd.name()}: ${flag} needs a value`);
        else i++;
        if (opt.argChoices && !opt.argChoices.includes(words[i] ?? '')) problems.push(`${cmd.name()}: ${flag} ${words[i]} is not one of ${opt.argChoices.join(', ')}`);
      }
    } else if (w.startsWith('-') && w.length > 1) {
      if (!cmd.options.some((o) => o.short === w)) problems.push(`${cmd.name()}: unknown option ${w}`);
    } else positional++;
  }
  const declared = cmd.registeredArguments;
  const required = declared.filter((a) => a.required).length;
  if (positional < required) problems.push(`${cmd.name()}: needs ${required} argument(s), got ${positional}`);
  if (positional > declared.length && !declared.some((a) => a.variadic)) problems.push(`${cmd.name()}: takes ${declared.length} argument(s), got ${positional}`);
  return problems;
}

const LEAST: Record<string, Record<string, string>> = {
  'ci.yml': { contents: 'read' },
  'plan.yml': { contents: 'read', 'pull-requests': 'write', statuses: 'write', 'id-token': 'write' },
  'apply.yml': { contents: 'read', 'id-token': 'write' },
};
/** Workflows whose jobs need different things: each job exactly its own. */
const LEAST_BY_JOB: Record<string, Record<string, Record<string, string>>> = {
  'renew.yml': { renew: { contents: 'write' }, apply: { contents: 'read', 'id-token': 'write' } },
};

test('the four workflows exist', () => {
  assert.deepEqual(files, ['apply.yml', 'ci.yml', 'plan.yml', 'renew.yml']);
});

test('every portcullis command a workflow runs exists in the CLI, with those options', async () => {
  const p = await program();
  const seen: string[] = [];
  for (const f of files) {
    const { wf } = load(f);
    for (const [name, job] of Object.entries(wf.jobs)) {
      for (const s of job.steps ?? []) {
        for (const call of portcullisCalls(s.run ?? '')) {
          seen.push(`${f}: ${call.slice(0, 1).join(' ')}`);
          assert.deepEqual(checkCall(p, call), [], `${f} job ${name}: portcullis ${call.join(' ')}`);
        }
      }
    }
  }
  // The pipeline the issue asks for is really there.
  for (const want of ['ci.yml: compile', 'plan.yml: compile', 'plan.yml: diff-access', 'plan.yml: plan', 'apply.yml: compile', 'apply.yml: apply', 'renew.yml: compile']) {
    assert.ok(seen.includes(want), `${want} missing; saw ${seen.join(', ')}`);
  }
});

test('the command checker catches an unknown command, an unknown option and a bad choice', async () => {
  const p = await program();
  assert.deepEqual(checkCall(p, ['plna']), ['unknown command: plna']);
  assert.deepEqual(checkCall(p, ['plan', '--colour']), ['plan: unknown option --colour']);
  assert.deepEqual(checkCall(p, ['plan', '--format', 'html']), ['plan: --format html is not one of text, markdown, json']);
  assert.deepEqual(checkCall(p, ['plan', '--clusters', 'env=prod', '--comment']), []);
  assert.deepEqual(
    portcullisCalls('set +e\nnode bin/portcullis.js plan --format markdown \\\n  --comment | tee x\nnpx portcullis apply --dry-run && echo ok'),
    [['plan', '--format', 'markdown', '--comment'], ['apply', '--dry-run']],
  );
});

test('permissions are least: nothing by default beyond read, each job exactly what it needs, no write-all', () => {
  for (const f of files) {
    const { wf } = load(f);
    const top = wf.permissions;
    assert.ok(top !== undefined, `${f}: top-level permissions must be set`);
    assert.ok(typeof top === 'object', `${f}: top-level permissions must be a map, not ${String(top)}`);
    for (const [k, v] of Object.entries(top)) assert.ok(k === 'contents' && v === 'read', `${f}: top-level ${k}: ${v}`);
    const union: Record<string, string> = {};
    for (const [name, job] of Object.entries(wf.jobs)) {
      assert.ok(job.permissions && typeof job.permissions === 'object', `${f} job ${name}: permissions must be explicit`);
      const least = LEAST_BY_JOB[f]?.[name] ?? LEAST[f];
      if (LEAST_BY_JOB[f]) assert.deepEqual(job.permissions, least, `${f} job ${name}: permissions`);
      for (const [k, v] of Object.entries(job.permissions)) {
        assert.equal(least?.[k], v, `${f} job ${name}: ${k}: ${v} is more than it needs`);
        union[k] = v;
      }
    }
    if (!LEAST_BY_JOB[f]) assert.deepEqual(union, LEAST[f], `${f}: permissions`);
    assert.ok(!('pull_request_target' in wf.on), `${f}: pull_request_target runs untrusted code with secrets`);
  }
});

test('every action is pinned by a full commit SHA with its version in a comment; checkout keeps no credentials', () => {
  for (const f of files) {
    const { text, wf } = load(f);
    for (const job of Object.values(wf.jobs)) {
      for (const s of job.steps ?? []) {
        if (!s.uses) continue;
        assert.match(s.uses, /^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/, `${f}: ${s.uses} is not pinned by SHA`);
        const line = text.split('\n').find((l) => l.includes(s.uses ?? '\0'));
        assert.match(line ?? '', /#\s*v\d+(\.\d+)*\s*$/, `${f}: ${s.uses} lacks a "# vX.Y.Z" comment`);
        if (s.uses.startsWith('actions/checkout@')) assert.equal(s.with?.['persist-credentials'], false, `${f}: checkout must not persist the token`);
      }
    }
  }
});

test('ci installs, lints, typechecks, tests and checks generated/', () => {
  const runs = Object.values(load('ci.yml').wf.jobs).flatMap((j) => (j.steps ?? []).map((s) => s.run ?? ''));
  for (const want of ['npm ci', 'npm run lint --if-present', 'npm run typecheck', 'npm test']) {
    assert.ok(runs.some((r) => r.trim() === want), `ci.yml lacks \`${want}\``);
  }
  assert.ok(runs.some((r) => /portcullis\.js compile --check/.test(r)));
});

test('plan runs on pull requests touching policies/, apply on push to main in a protected environment with an OIDC credential', () => {
  const plan = load('plan.yml').wf;
  const pr = plan.on['pull_request'] as { paths?: string[] };
  assert.ok(pr.paths?.includes('policies/**'));
  const apply = load('apply.yml').wf;
  assert.deepEqual((apply.on['push'] as { branches?: string[] }).branches, ['main']);
  for (const job of Object.values(apply.jobs)) {
    assert.equal(job.environment, 'production');
    assert.equal((job.permissions as Record<string, string>)['id-token'], 'write');
  }
});

test('apply verifies bundles against a key pinned in the protected environment, never the keys in the tree it applies, and records the commit', () => {
  const { wf } = load('apply.yml');
  const steps = Object.values(wf.jobs).flatMap((j) => j.steps ?? []);
  const applies = steps.flatMap((s) => portcullisCalls(s.run ?? '')).filter((c) => c[0] === 'apply');
  assert.equal(applies.length, 2, 'a server dry run, then the apply');
  for (const call of applies) {
    const key = call[call.indexOf('--trusted-key') + 1];
    assert.ok(call.includes('--trusted-key'), `apply ${call.join(' ')} lacks --trusted-key`);
    assert.match(key ?? '', /^"?\$RUNNER_TEMP\//, 'the pinned key is written outside the checkout');
  }
  // The commit is the one checked out: the pushed one, or the one a caller (renew.yml) names.
  const applyStep = steps.find((s) => portcullisCalls(s.run ?? '').some((c) => c[0] === 'apply' && c.includes('--commit')));
  assert.equal(applyStep?.env?.['COMMIT'], '${{ inputs.ref || github.sha }}');
  assert.ok(applies.some((c) => c.includes('--commit') && c[c.indexOf('--commit') + 1] === '$COMMIT'));
  const checkout = steps.find((s) => s.uses?.startsWith('actions/checkout@'));
  assert.equal(checkout?.with?.['ref'], '${{ inputs.ref || github.sha }}');
  const writer = steps.find((s) => /bundle-key\.pub\.pem/.test(s.run ?? '') && !portcullisCalls(s.run ?? '').length);
  assert.ok(writer, 'a step writes the pinned key');
  assert.match(JSON.stringify(writer.env ?? {}), /\$\{\{ vars\.PORTCULLIS_BUNDLE_PUBLIC_KEY \}\}/);
});

test('renew runs daily, re-signs what expires within 14 days with the protected key, pushes it to main and applies exactly that commit', () => {
  const { wf } = load('renew.yml');
  assert.ok(Array.isArray(wf.on['schedule']) && (wf.on['schedule'] as { cron: string }[])[0]?.cron.split(' ').length === 5, 'a daily schedule');
  const renew = wf.jobs['renew'];
  assert.equal(renew?.environment, 'production');
  const steps = renew?.steps ?? [];
  const calls = steps.flatMap((s) => portcullisCalls(s.run ?? ''));
  assert.deepEqual(calls[0]?.slice(0, 3), ['compile', '--renew-within', '14d']);
  assert.ok(calls.some((c) => c[0] === 'compile' && c.includes('--check')), 'checks what it renewed');
  const key = steps.find((s) => /PORTCULLIS_SIGNING_KEY/.test(s.run ?? ''));
  assert.equal(key?.env?.['SIGNING_KEY'], '${{ secrets.PORTCULLIS_SIGNING_KEY }}');
  assert.ok(steps.some((s) => /git push .* HEAD:main/.test(s.run ?? '')), 'pushes the renewal to main');
  // The apply workflow is called with the pushed commit (a push with the workflow token starts no workflow).
  const apply = wf.jobs['apply'];
  assert.equal(apply?.uses, './.github/workflows/apply.yml');
  assert.equal(apply?.with?.['ref'], '${{ needs.renew.outputs.sha }}');
  assert.equal(apply?.if, "needs.renew.outputs.renewed == 'true'");
  assert.ok('workflow_call' in load('apply.yml').wf.on, 'apply.yml can be called');
});
