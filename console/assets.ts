import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** A file the console serves, with its content type. */
export interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

const WEB = join(import.meta.dirname, 'web');
const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', mjs: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', html: 'text/html; charset=utf-8', png: 'image/png', svg: 'image/svg+xml' };

/** The console's own browser files (console/web), by the name they are served under. */
const OWN = ['app.js', 'dom.js', 'pages.js', 'activity.js', 'shell.js', 'console.css'];

/**
 * Everything the browser loads, read once at start: the console's own files and, from
 * node_modules, xterm.js and its fit add-on (the npm packages the lock file pins; no CDN).
 * The same inputs give the same bytes: nothing is generated or minified here.
 */
export function loadAssets(): ReadonlyMap<string, Asset> {
  const req = createRequire(import.meta.url);
  const xterm = dirname(dirname(req.resolve('@xterm/xterm/package.json').replace(/package\.json$/, 'lib/x')));
  const fit = dirname(dirname(req.resolve('@xterm/addon-fit/package.json').replace(/package\.json$/, 'lib/x')));
  const files: [string, string][] = [
    ...OWN.map((n): [string, string] => [n, join(WEB, n)]),
    ['xterm.mjs', join(xterm, 'lib', 'xterm.mjs')],
    ['xterm.css', join(xterm, 'css', 'xterm.css')],
    ['addon-fit.mjs', join(fit, 'lib', 'addon-fit.mjs')],
  ];
  return new Map(files.map(([name, file]) => [name, { body: readFileSync(file), type: TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream' }]));
}

/** The page: one HTML document whose style nonce is filled in per response. */
export function pageTemplate(): (nonce: string) => string {
  const html = readFileSync(join(WEB, 'index.html'), 'utf8');
  return (nonce) => html.replace('__STYLE_NONCE__', nonce);
}
