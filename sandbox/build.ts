import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SandboxError } from './errors.ts';

/** Kubernetes release the tools/kube module pins (k8s.io/kubernetes). */
export const KUBERNETES_VERSION = 'v1.34.4';
/** etcd release the tools/etcd module pins (go.etcd.io/etcd/server/v3). */
export const ETCD_VERSION = 'v3.6.8';

/** Absolute paths of the sandbox's binaries, all built from the repo's Go modules. */
export interface SandboxBinaries {
  readonly kubeApiserver: string;
  readonly kubectl: string;
  readonly etcd: string;
  /** PKI generator, fake kubelet and the namespace/serviceaccount/root-CA controllers. */
  readonly agent: string;
  /** helm, for the tests that check a kubeconfig works with it as it is. */
  readonly helm: string;
}

/** Options for {@link ensureBinaries}. */
export interface EnsureBinariesOptions {
  /** Where built binaries are cached. @default `$PORTCULLIS_BIN_CACHE` or `${XDG_CACHE_HOME:-~/.cache}/portcullis/bin` */
  readonly cacheDir?: string;
  /** Progress messages. @default writes to stderr */
  readonly log?: (message: string) => void;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const kubeModule = join(repoRoot, 'tools', 'kube');
const etcdModule = join(repoRoot, 'tools', 'etcd');
const helmModule = join(repoRoot, 'tools', 'helm');
/** helm release the tools/helm module pins (helm.sh/helm/v3, on Kubernetes 1.34 libraries). */
export const HELM_VERSION = 'v3.19.5';

/** One `go build` invocation: its packages land in one cache directory keyed by their inputs. */
interface BuildGroup {
  readonly name: string;
  readonly version: string;
  readonly moduleDir: string;
  /** Import path → output binary name. */
  readonly packages: ReadonlyArray<readonly [pkg: string, binary: string]>;
  readonly ldflags: string;
  /** Files whose bytes decide the build (go.mod, go.sum, sources). */
  readonly inputs: readonly string[];
}

function versionLdflags(version: string): string {
  const m = /^v(\d+)\.(\d+)\./.exec(version);
  const major = m?.[1] ?? '0';
  const minor = m?.[2] ?? '0';
  // Fixed build date: the binaries are reproducible from the pinned modules.
  const buildDate = '2026-01-01T00:00:00Z';
  const flags: string[] = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=${buildDate}`,
    );
  }
  return flags.join(' ');
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function buildGroups(): BuildGroup[] {
  const kubeLd = versionLdflags(KUBERNETES_VERSION);
  const kubeMod = [join(kubeModule, 'go.mod'), join(kubeModule, 'go.sum')];
  return [
    {
      name: 'kube',
      version: KUBERNETES_VERSION,
      moduleDir: kubeModule,
      packages: [
        ['k8s.io/kubernetes/cmd/kube-apiserver', 'kube-apiserver'],
        ['k8s.io/kubernetes/cmd/kubectl', 'kubectl'],
      ],
      ldflags: kubeLd,
      inputs: kubeMod,
    },
    {
      name: 'sandbox-agent',
      version: KUBERNETES_VERSION,
      moduleDir: kubeModule,
      packages: [['./cmd/sandbox-agent', 'sandbox-agent']],
      ldflags: kubeLd,
      inputs: [...kubeMod, ...filesUnder(join(kubeModule, 'cmd', 'sandbox-agent'))],
    },
    {
      name: 'etcd',
      version: ETCD_VERSION,
      moduleDir: etcdModule,
      packages: [['go.etcd.io/etcd/server/v3', 'etcd']],
      ldflags: '-s -w',
      inputs: [join(etcdModule, 'go.mod'), join(etcdModule, 'go.sum')],
    },
    {
      name: 'helm',
      version: HELM_VERSION,
      moduleDir: helmModule,
      packages: [['helm.sh/helm/v3/cmd/helm', 'helm']],
      ldflags: `-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}`,
      inputs: [join(helmModule, 'go.mod'), join(helmModule, 'go.sum')],
    },
  ];
}

function cacheKey(group: BuildGroup): string {
  const h = createHash('sha256');
  h.update(`${group.name}\0${group.version}\0${group.ldflags}\0${process.platform}\0${process.arch}\0`);
  for (const f of group.inputs) {
    h.update(f.slice(repoRoot.length));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return `${group.name}-${group.version}-${h.digest('hex').slice(0, 16)}`;
}

/** Default cache directory for built binaries, outside the repo. */
export function defaultBinCacheDir(): string {
  const env = process.env['PORTCULLIS_BIN_CACHE'];
  if (env) return env;
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'portcullis', 'bin');
}

/** Minimum Go version, from the `go` directive of the build modules. */
function requiredGo(): string {
  let best = '0';
  for (const dir of [kubeModule, etcdModule, helmModule]) {
    const m = /^go\s+(\d+\.\d+(?:\.\d+)?)\s*$/m.exec(readFileSync(join(dir, 'go.mod'), 'utf8'));
    if (m?.[1] && compareVersions(m[1], best) > 0) best = m[1];
  }
  return best;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Checks that a usable Go toolchain is on PATH; throws SANDBOX_GO_MISSING / SANDBOX_GO_TOO_OLD saying what to install. */
export function checkGo(): string {
  const need = requiredGo();
  const r = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local' } });
  if (r.error || r.status !== 0) {
    throw new SandboxError(
      'SANDBOX_GO_MISSING',
      `Go is needed to build the sandbox's kube-apiserver, kubectl and etcd (Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}) ` +
        `but \`go\` was not found on PATH. Install Go ${need} or newer from https://go.dev/dl/ and put its bin directory on PATH.`,
    );
  }
  const have = r.stdout.trim().replace(/^go/, '');
  const m = /^(\d+\.\d+(?:\.\d+)?)/.exec(have);
  if (!m?.[1] || compareVersions(m[1], need) < 0) {
    throw new SandboxError(
      'SANDBOX_GO_TOO_OLD',
      `Go ${have} is too old to build the sandbox binaries: tools/kube and tools/etcd need Go ${need} or newer. ` +
        `Install a current Go from https://go.dev/dl/.`,
    );
  }
  return have;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Takes the per-key build lock (an atomically created directory holding the
 * owner's pid). A lock whose owner died is taken over.
 */
async function withLock<T>(lockDir: string, log: (m: string) => void, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60 * 60_000;
  let told = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = 0;
      try {
        owner = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        // The owner has created the directory but not yet written its pid.
      }
      const st = statSync(lockDir, { throwIfNoEntry: false });
      const age = st ? Date.now() - st.mtimeMs : 0;
      if ((owner > 0 && !pidAlive(owner)) || (owner === 0 && age > 30_000)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!told) {
        log(`waiting for another build (pid ${owner}) holding ${lockDir}`);
        told = true;
      }
      if (Date.now() > deadline) throw new SandboxError('SANDBOX_BUILD_LOCK', `timed out waiting for the build lock ${lockDir}`);
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function runGoBuild(group: BuildGroup, outDir: string, log: (m: string) => void): Promise<void> {
  // One package: name the output file (go would name etcd's main package
  // "server"); several: go names each after its import path's last element.
  const only = group.packages.length === 1 ? group.packages[0] : undefined;
  const out = only ? join(outDir, only[1]) : `${outDir}/`;
  const args = ['build', '-ldflags', group.ldflags, '-o', out, ...group.packages.map(([p]) => p)];
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, {
      cwd: group.moduleDir,
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false -mod=readonly' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (b: Buffer) => {
      output = (output + b.toString()).slice(-20_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (err) => reject(new SandboxError('SANDBOX_BUILD', `go build failed to start: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        log(output);
        reject(new SandboxError('SANDBOX_BUILD', `go build of ${group.name} in ${group.moduleDir} failed (${signal ?? `exit ${code}`}):\n${output}`));
      }
    });
  });
}

async function ensureGroup(group: BuildGroup, cacheDir: string, log: (m: string) => void): Promise<string> {
  const key = cacheKey(group);
  const final = join(cacheDir, key);
  const complete = () => group.packages.every(([, bin]) => existsSync(join(final, bin)));
  if (complete()) return final;
  mkdirSync(cacheDir, { recursive: true });
  await withLock(`${final}.lock`, log, async () => {
    if (complete()) return; // another process built it while we waited
    checkGo();
    const tmp = `${final}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const bins = group.packages.map(([, b]) => b).join(', ');
    log(`building ${bins} (${group.version}) with go build in ${group.moduleDir} — the first build takes several minutes…`);
    const t0 = Date.now();
    try {
      await runGoBuild(group, tmp, log);
      for (const [pkg, bin] of group.packages) {
        if (!existsSync(join(tmp, bin))) throw new SandboxError('SANDBOX_BUILD', `go build of ${pkg} produced no ${bin} in ${tmp}`);
      }
      rmSync(final, { recursive: true, force: true });
      renameSync(tmp, final);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    log(`built ${bins} in ${((Date.now() - t0) / 1000).toFixed(1)}s → ${final}`);
  });
  return final;
}

/**
 * Builds (once) and returns the sandbox's binaries: kube-apiserver and kubectl
 * from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3 and the
 * sandbox agent, each from the repo's pinned Go modules into a cache outside
 * the repo keyed by version and a hash of the module files. Concurrent callers
 * share one build through a lock; a finished build is renamed into place, so a
 * cache directory is either complete or absent.
 */
export async function ensureBinaries(options: EnsureBinariesOptions = {}): Promise<SandboxBinaries> {
  const cacheDir = options.cacheDir ?? defaultBinCacheDir();
  const log = options.log ?? ((m: string) => process.stderr.write(`[sandbox] ${m}\n`));
  const dirs = new Map<string, string>();
  for (const group of buildGroups()) dirs.set(group.name, await ensureGroup(group, cacheDir, log));
  const at = (group: string, bin: string) => join(dirs.get(group) ?? '', bin);
  return {
    kubeApiserver: at('kube', 'kube-apiserver'),
    kubectl: at('kube', 'kubectl'),
    etcd: at('etcd', 'etcd'),
    agent: at('sandbox-agent', 'sandbox-agent'),
    helm: at('helm', 'helm'),
  };
}

/** Cache directories ensureBinaries would use, without building anything (for status and tests). */
export function binaryCacheKeys(): string[] {
  return buildGroups().map(cacheKey);
}
