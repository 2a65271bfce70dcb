/**
 * A small YAML emitter for Kubernetes manifests made of maps, lists, strings,
 * numbers and booleans. cdk8s's own stringify was most of compile time on
 * large fleets; this one writes block style with a string quoted whenever a
 * YAML 1.1 or 1.2 reader could take it for anything but that string.
 * test/compiler/yaml-emit.test.ts round-trips it through the `yaml` parser.
 */
export function emitYamlDocuments(docs: readonly unknown[]): string {
  return docs.map((d) => `${emit(d, 0)}\n`).join('---\n');
}

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./@:-]*$/;
// Words YAML 1.1 reads as booleans or null, and anything number-like, must be quoted.
const SPECIAL = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~)$/;

const scalars = new Map<string, string>();

function scalar(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'null';
  const s = String(v);
  let out = scalars.get(s);
  if (out === undefined) {
    out = PLAIN.test(s) && !SPECIAL.test(s) && !s.endsWith(':') && !s.includes(': ') && !s.includes(' #') ? s : JSON.stringify(s);
    if (scalars.size > 100_000) scalars.clear();
    scalars.set(s, out);
  }
  return out;
}

function emit(v: unknown, indent: number): string {
  const pad = ' '.repeat(indent);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return v
      .map((x, i) => {
        const body = isCollection(x) && !isEmpty(x) ? emit(x, indent + 2).trimStart() : inline(x);
        return `${i === 0 ? '' : pad}- ${body}`;
      })
      .join('\n');
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return entries
      .map(([k, x], i) => {
        const key = `${i === 0 ? '' : pad}${scalar(k)}:`;
        if (!isCollection(x) || isEmpty(x)) return `${key} ${inline(x)}`;
        const child = Array.isArray(x) ? indent + 2 : indent + 2;
        return `${key}\n${' '.repeat(child)}${emit(x, child)}`;
      })
      .join('\n');
  }
  return scalar(v);
}

function inline(x: unknown): string {
  if (Array.isArray(x)) return '[]';
  if (x !== null && typeof x === 'object') return '{}';
  return scalar(x);
}

function isCollection(x: unknown): boolean {
  return x !== null && typeof x === 'object';
}

function isEmpty(x: unknown): boolean {
  return Array.isArray(x) ? x.length === 0 : Object.keys(x as object).length === 0;
}
