// The worst shapes of every parser on the request path (the target check, kube's RequestInfo with
// its field and label selectors), as any authenticated identity can send them: the time one
// request's parse takes at 7.5, 15 and 30 KB (under the 32 KiB header limit), and how it grows
// from 15 to 30 KB (2.0 is linear). Issue 18: a long fieldSelector took 56 ms (n·log n) where
// kube-apiserver's own parser takes 1.5 ms.
//
// Run: node bin/run-ts.js bench/parsers.ts
import { performance } from 'node:perf_hooks';
import { parseRequestStage } from '../runtime-proxy/pipeline.ts';

/** A shape: the target of about `bytes` bytes. */
type Shape = (bytes: number) => string;

const repeat = (unit: (i: number) => string, sep: string, bytes: number): string => {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const u = unit(i);
    parts.push(u);
    n += u.length + sep.length;
  }
  return parts.join(sep);
};
const pad = (i: number) => String(i).padStart(5, '0');
/** Term i in a scrambled order (sorting an already sorted list would be the best case, not the worst). */
const scrambled = (i: number) => pad((i * 7919) % 99_991);
const LIST = '/api/v1/namespaces/default/configmaps';

const SHAPES: [string, Shape][] = [
  ['fieldSelector, distinct metadata.name terms', (b) => `${LIST}?fieldSelector=${repeat((i) => `metadata.name%3Dn${scrambled(i)}`, ',', b)}`],
  ['fieldSelector, commas only', (b) => `${LIST}?fieldSelector=${','.repeat(b)}`],
  ['fieldSelector, one long value', (b) => `${LIST}?fieldSelector=metadata.name%3D${'a'.repeat(b)}`],
  ['labelSelector, distinct terms', (b) => `${LIST}?labelSelector=${repeat((i) => `k${scrambled(i)}%3Dv`, ',', b)}`],
  ['labelSelector, one long in-list', (b) => `${LIST}?labelSelector=k%20in%20(${repeat((i) => `v${pad(i)}`, ',', b)})`],
  ['labelSelector, commas only', (b) => `${LIST}?labelSelector=${','.repeat(b)}`],
  ['query, many parameters', (b) => `${LIST}?${repeat((i) => `p${pad(i)}=1`, '&', b)}`],
  ['path, many segments', (b) => `/api/v1/namespaces/default/configmaps/${repeat(() => 'a', '/', b)}`],
  ['path, percent-encoded', (b) => `/api/v1/namespaces/default/configmaps/${'%61'.repeat(Math.floor(b / 3))}`],
];

/** Mean ms per parse (bounded: at most 200 parses or 2 s), whatever the parse decides (a 400 is a result too). */
function time(target: string): number {
  const once = () => {
    try {
      parseRequestStage('GET', target, false);
    } catch {
      // refused: still a cost the proxy paid
    }
  };
  for (let i = 0; i < 5; i++) once();
  let n = 0;
  const t0 = performance.now();
  while (n < 200 && performance.now() - t0 < 2000) {
    once();
    n++;
  }
  return (performance.now() - t0) / n;
}

const base = time('/api/v1/namespaces/default/configmaps/one');
console.log(`one ordinary GET target: ${(base * 1000).toFixed(1)} µs per parse\n`);
console.log(`${'shape'.padEnd(46)} ${'7.5 KB'.padStart(9)} ${'15 KB'.padStart(9)} ${'30 KB'.padStart(9)}  growth 15→30 KB`);
let worst = 0;
for (const [name, shape] of SHAPES) {
  const [a, b, c] = [7_500, 15_000, 30_000].map((n) => time(shape(n))) as [number, number, number];
  worst = Math.max(worst, c);
  console.log(`${name.padEnd(46)} ${`${a.toFixed(2)} ms`.padStart(9)} ${`${b.toFixed(2)} ms`.padStart(9)} ${`${c.toFixed(2)} ms`.padStart(9)}  ${(c / b).toFixed(2)}×`);
}
console.log(`\nworst 30 KB parse: ${worst.toFixed(2)} ms (${Math.round(1000 / worst)} such requests/s would fill the event loop)`);
