import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigMapDocument, type ConfigMapLocation } from './configmap-document.ts';

/**
 * The newest bundle a cluster's proxies have accepted: no replica, new or restarted,
 * accepts an older revision, nor other content under the same revision (SECURITY rule 13).
 */
export interface RevisionFloor {
  readonly revision: number;
  /** sha256 hex of the accepted envelope: the same revision may be loaded again only with the same bytes. */
  readonly envelopeSha256: string;
}

/** Where every replica keeps and reads the floors, by cluster. */
export interface RevisionFloors {
  /** The highest floor recorded per cluster. */
  load(): Promise<ReadonlyMap<string, RevisionFloor>>;
  /** Records `floor` for `cluster` unless a floor at least as high is recorded; rejects when it could not be recorded. */
  raise(cluster: string, floor: RevisionFloor): Promise<void>;
}

function parseFloor(v: unknown): RevisionFloor | undefined {
  const f = v as Partial<RevisionFloor> | null;
  return f && Number.isSafeInteger(f.revision) && typeof f.envelopeSha256 === 'string' && /^[0-9a-f]{64}$/.test(f.envelopeSha256) ? (f as RevisionFloor) : undefined;
}

function higher(a: RevisionFloor | undefined, b: RevisionFloor): boolean {
  return a === undefined || b.revision > a.revision;
}

const CLUSTER = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * A directory every replica mounts: one file per accepted revision (`CLUSTER.REVISION.json`,
 * written by atomic rename), so two replicas raising at once can never lower the floor; the
 * highest file wins and older ones are tidied away.
 */
export class DirectoryFloors implements RevisionFloors {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async load(): Promise<ReadonlyMap<string, RevisionFloor>> {
    const out = new Map<string, RevisionFloor>();
    for (const [cluster, floor] of this.#files()) if (higher(out.get(cluster), floor)) out.set(cluster, floor);
    return out;
  }

  async raise(cluster: string, floor: RevisionFloor): Promise<void> {
    if (!CLUSTER.test(cluster)) throw new Error(`not a cluster name: ${cluster}`);
    if (!higher((await this.load()).get(cluster), floor)) return;
    const name = `${cluster}.${floor.revision}.json`;
    const tmp = join(this.dir, `.${name}.${process.pid}.tmp`);
    writeFileSync(tmp, JSON.stringify(floor), { mode: 0o600 });
    renameSync(tmp, join(this.dir, name));
    for (const [c, f, file] of this.#files()) if (c === cluster && f.revision < floor.revision) rmSync(file, { force: true });
  }

  #files(): [string, RevisionFloor, string][] {
    const out: [string, RevisionFloor, string][] = [];
    for (const name of readdirSync(this.dir)) {
      const m = /^([a-z0-9-]+)\.(\d+)\.json$/.exec(name);
      if (!m?.[1]) continue;
      const file = join(this.dir, name);
      try {
        const f = parseFloor(JSON.parse(readFileSync(file, 'utf8')));
        if (f && String(f.revision) === m[2]) out.push([m[1], f, file]);
      } catch {
        // removed meanwhile by another replica's tidy-up, or not ours
      }
    }
    return out;
  }
}

/** A ConfigMap every replica reads and updates (one data key per cluster), raised only upwards. */
export class ConfigMapFloors implements RevisionFloors {
  readonly #doc: ConfigMapDocument;

  constructor(loc: ConfigMapLocation) {
    this.#doc = new ConfigMapDocument(loc);
  }

  async load(): Promise<ReadonlyMap<string, RevisionFloor>> {
    const out = new Map<string, RevisionFloor>();
    for (const [cluster, v] of Object.entries(await this.#doc.read())) {
      const f = parse(v);
      if (f) out.set(cluster, f);
    }
    return out;
  }

  async raise(cluster: string, floor: RevisionFloor): Promise<void> {
    await this.#doc.update((data) => (higher(parse(data[cluster]), floor) ? { ...data, [cluster]: JSON.stringify(floor) } : undefined));
  }
}

function parse(v: string | undefined): RevisionFloor | undefined {
  if (v === undefined) return undefined;
  try {
    return parseFloor(JSON.parse(v));
  } catch {
    return undefined;
  }
}
