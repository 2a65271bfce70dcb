import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SourceLocation } from '../../core/index.ts';

const compilerDir = fileURLToPath(new URL('..', import.meta.url));
let root = process.cwd();

/** Sets the directory policy locations are reported relative to (the repository root). */
export function setSourceRoot(dir: string): void {
  root = dir;
}

/** The repository root locations are relative to. */
export function sourceRoot(): string {
  return root;
}

/**
 * The policy file and line that is constructing something: the first stack
 * frame outside the compiler and node_modules (tsx maps it to the .ts line).
 */
export function captureSource(): SourceLocation {
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 50;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = saved;
  for (const frame of stack.split('\n').slice(1)) {
    const loc = parseFrame(frame);
    if (loc && !loc.path.startsWith(compilerDir) && !loc.path.includes(`${sep}node_modules${sep}`)) {
      return { file: relative(root, loc.path).split(sep).join('/'), line: loc.line };
    }
  }
  return { file: '<unknown>', line: 0 };
}

/** Parses one V8 stack frame into an absolute path and line. */
export function parseFrame(frame: string): { path: string; line: number } | undefined {
  const m = /\(?((?:file:\/\/)?\/[^():]+):(\d+):\d+\)?\s*$/.exec(frame);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  const path = m[1].startsWith('file://') ? fileURLToPath(m[1]) : m[1];
  return { path, line: Number(m[2]) };
}
