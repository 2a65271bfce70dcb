// Issue 14's speed targets, side by side in one run, against a real redis-server (Debian's):
// - the session-credential check against today's cached-JWT path, per request (target: at most
//   5 µs more);
// - how long a lock set through one replica takes to be in force on another (target: p99 within
//   1 s over 100 locks). Both replicas are this process's RedisLocks on the same store, as two
//   proxies' are; a lock's streams close synchronously when it arrives.
//
// Run: node bin/run-ts.js bench/sessions.ts [--requests N] [--locks N]
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { cachingAuthenticator } from '../runtime-proxy/credential-cache.ts';
import type { AuthnRequest, Authenticator } from '../runtime-proxy/identity.ts';
import { RedisLocks, type Lock } from '../runtime-proxy/locks/locks.ts';
import { RedisSessions } from '../runtime-proxy/sessions/session-store.ts';
import { SessionService } from '../runtime-proxy/sessions/sessions.ts';
import { startRedis } from '../test/support/redis.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '300000' }, locks: { type: 'string', default: '100' } } });
const REQUESTS = Number(values.requests);
const LOCKS = Number(values.locks);
const redis = await startRedis();
const quiet = () => undefined;
try {
  // --- per-request check -------------------------------------------------
  const shared = new RedisSessions(redis.url, { touchIntervalMs: 5000, graceMs: 30_000, clock: Date.now, onError: quiet });
  await shared.start();
  const service = new SessionService(shared, randomBytes(32), { idleTimeoutMs: 3_600_000, maxLifetimeMs: 12 * 3_600_000, issuerClusters: new Map() });
  const identity = { user: 'oidc:alice', groups: ['oidc:sre'], issuer: 'https://idp.example', method: 'oidc' as const };
  const { credential } = await service.create(identity, Date.now());
  // Today's path: a JWT whose verification is cached (the inner verifier runs once).
  const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ iss: 'https://idp.example', sub: 'alice', exp: 4_000_000_000 })).toString('base64url')}.${randomBytes(256).toString('base64url')}`;
  const inner: Authenticator = { authenticate: async () => ({ ok: true, identity }) };
  const cached = cachingAuthenticator(inner, 3_600_000);
  const withSessions = service.authenticator(cached);
  const request = (token: string): AuthnRequest => ({ rawHeaders: ['Host', 'proxy.example', 'Authorization', `Bearer ${token}`, 'User-Agent', 'kubectl/v1.34.4', 'Accept', 'application/json'] });
  const jwtReq = request(jwt);
  const sessionReq = request(credential);
  const time = async (a: Authenticator, req: AuthnRequest): Promise<number> => {
    const now = Date.now();
    for (let i = 0; i < 20_000; i++) await a.authenticate(req, now, 'dev');
    const t = performance.now();
    for (let i = 0; i < REQUESTS; i++) await a.authenticate(req, now, 'dev');
    return ((performance.now() - t) * 1000) / REQUESTS;
  };
  const rounds: { jwt: number; session: number; jwtThroughSessions: number }[] = [];
  for (let r = 0; r < 3; r++) rounds.push({ jwt: await time(cached, jwtReq), session: await time(withSessions, sessionReq), jwtThroughSessions: await time(withSessions, jwtReq) });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const j = median(rounds.map((x) => x.jwt));
  const s = median(rounds.map((x) => x.session));
  const js = median(rounds.map((x) => x.jwtThroughSessions));
  console.log(`authentication per request (median of 3 rounds × ${REQUESTS}):`);
  console.log(`  cached JWT, today's path            ${j.toFixed(3)} µs`);
  console.log(`  session credential                  ${s.toFixed(3)} µs   (${(s - j >= 0 ? '+' : '') + (s - j).toFixed(3)} µs; target ≤ +5 µs)`);
  console.log(`  cached JWT with sessions configured ${js.toFixed(3)} µs   (${(js - j >= 0 ? '+' : '') + (js - j).toFixed(3)} µs: what sessions cost everyone else)`);
  await shared.stop();

  // --- lock propagation ----------------------------------------------------
  const a = new RedisLocks(redis.url, quiet);
  const b = new RedisLocks(redis.url, quiet);
  await a.start();
  await b.start();
  const arrived = new Map<string, number>();
  let wake: (() => void) | undefined;
  b.onSet((l) => {
    arrived.set(l.id, performance.now());
    wake?.();
  });
  const lags: number[] = [];
  for (let i = 0; i < LOCKS; i++) {
    const l: Lock = { id: `lock-${randomBytes(6).toString('hex')}`, kind: 'user', subject: `oidc:user-${i}`, reason: 'bench', setBy: 'oidc:bench', setAt: Date.now() };
    const t = performance.now();
    const got = new Promise<void>((res) => (wake = res));
    await a.set(l);
    await Promise.race([got, new Promise((res) => setTimeout(res, 2000))]);
    lags.push((arrived.get(l.id) ?? Infinity) - t);
    await a.lift(l.id);
  }
  lags.sort((x, y) => x - y);
  const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))] ?? NaN;
  console.log(`lock set through replica A, in force on replica B (${LOCKS} locks): p50 ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms, max ${q(1).toFixed(2)} ms (target p99 ≤ 1000 ms)`);
  await a.stop();
  await b.stop();
} finally {
  await redis.stop();
}
