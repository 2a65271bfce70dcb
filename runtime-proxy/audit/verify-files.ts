import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { keyId, verifyLog } from './chain.ts';

/** `portcullis audit verify`: reads the files, the keys and the head beside the log; says what holds. */
export function verifyAuditFiles(files: readonly string[], keyFiles?: readonly string[]): { readonly ok: boolean; readonly text: string } {
  const base = [...files].sort((a, b) => a.length - b.length || a.localeCompare(b))[0] ?? '';
  const keys = new Map<string, KeyObject>();
  for (const f of keyFiles ?? [`${base}.pub.pem`]) {
    if (!existsSync(f)) return { ok: false, text: `${f}: no such key file (pass --key)` };
    for (const pem of readFileSync(f, 'utf8').match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? []) {
      const k = createPublicKey(pem);
      keys.set(keyId(k), k);
    }
  }
  const headFile = `${base}.head`;
  const head = existsSync(headFile) ? (JSON.parse(readFileSync(headFile, 'utf8')) as { seq: number; hash: string }) : undefined;
  const v = verifyLog(files.map((f) => ({ name: f, text: readFileSync(f, 'utf8') })), keys, head);
  if (!v.ok) return { ok: false, text: `BROKEN ${v.problem ?? ''}` };
  const tail = v.unsigned > 0 ? `; ${v.unsigned} records after the last checkpoint are chained but not yet signed` : '';
  return { ok: true, text: `ok: ${v.records} records, ${v.checkpoints} checkpoints, chain unbroken${tail}` };
}
