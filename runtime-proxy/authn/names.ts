import { RESERVED_PREFIX } from '../../core/names.ts';

/** The namespace Kubernetes reserves for its own users and groups. */
const RESERVED = 'system:';

/** Prefixes a name from an identity provider, refusing empty and `system:` names before and after (SECURITY rule 8). */
export function checkName(raw: string, prefix: string): { readonly ok: true; readonly name: string } | { readonly ok: false; readonly why: string } {
  if (raw === '') return { ok: false, why: 'empty name' };
  if (raw.toLowerCase().startsWith(RESERVED)) return { ok: false, why: `${JSON.stringify(raw)} is in the reserved system: namespace` };
  const name = `${prefix}${raw}`;
  if (name.toLowerCase().startsWith(RESERVED)) return { ok: false, why: `${JSON.stringify(name)} is in the reserved system: namespace` };
  return { ok: true, name };
}

/** Throws unless `prefix` is a usable identity prefix. */
export function checkPrefix(prefix: string, what: string): void {
  if (prefix === '') throw new Error(`${what} must not be empty`);
  if (prefix.toLowerCase().startsWith(RESERVED)) throw new Error(`${what} must not start with ${RESERVED}`);
  // The proxy's own names (activation groups, the member user) must never come from an identity provider.
  if (prefix.toLowerCase().startsWith(RESERVED_PREFIX)) throw new Error(`${what} must not start with ${RESERVED_PREFIX}`);
}
