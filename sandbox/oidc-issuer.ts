/**
 * A real OIDC provider for the sandbox, the demo and tests: the `oidc-provider`
 * package on loopback over HTTPS (a local CA made with openssl), issuing real JWTs signed with the
 * provider's own keys and published through its own discovery document and
 * JWKS. Tokens come from the client_credentials grant with a resource
 * indicator (JWT access-token format); a JWT customizer hook sets `sub`,
 * groups, `aud`, `exp` and `nbf` per request, so every token still leaves the
 * provider's signing path.
 *
 * Also: deliberately bad tokens (expired, wrong audience, foreign key with the
 * provider's kid, HS256 keyed with the public key, `alg: none`, `system:`
 * subject, future `nbf`), for the authenticator's tests.
 */
import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK } from 'jose';
import { createLocalCa, type LocalCa } from './local-ca.ts';

/** The audience tokens carry unless a test asks for another. */
export const DEFAULT_AUDIENCE = 'portcullis';
/**
 * The public client `portcullis login` uses: authorization code with PKCE through a loopback
 * redirect (any port, RFC 8252), and the device authorization grant (RFC 8628). Its ID tokens
 * have this audience and carry the person's `groups`.
 */
export const LOGIN_CLIENT_ID = 'portcullis-cli';

/** Who can sign in at the provider's login form, and their groups (the form takes any password). */
export type PeopleDirectory = Readonly<Record<string, readonly string[]>>;

/** What a token should claim. */
export interface TokenOptions {
  /** `sub`; `null` leaves the claim out entirely. */
  readonly sub: string | null;
  /** The `groups` claim, any JSON (tests use odd types on purpose); `undefined` leaves it out. */
  readonly groups?: unknown;
  /** `aud`. @default DEFAULT_AUDIENCE */
  readonly aud?: string | readonly string[];
  /** Seconds from now until `exp`; negative for an expired token; `null` leaves `exp` out. @default 600 */
  readonly ttlSeconds?: number | null;
  /** Seconds from now for `nbf`. @default no nbf claim */
  readonly nbfSeconds?: number;
  /** Signing algorithm, from the provider's keys. @default 'RS256' */
  readonly alg?: 'RS256' | 'ES256';
  /** Further claims (e.g. `email`, `repository`). */
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** A running provider. */
export interface LocalOidcProvider {
  /** `https://127.0.0.1:PORT` — the `iss` of its tokens. */
  readonly issuer: string;
  /** PEM file of the CA that signed the provider's TLS certificate. */
  readonly caFile: string;
  readonly caPem: string;
  /** The kid of the provider's RS256 signing key. */
  readonly rsaKid: string;
  /** A real token from the provider's token endpoint. */
  token(opts: TokenOptions): Promise<string>;
  /** exp an hour ago. */
  expiredToken(sub?: string): Promise<string>;
  /** aud that no proxy accepts. */
  wrongAudienceToken(sub?: string): Promise<string>;
  /** nbf ten minutes ahead. */
  futureNbfToken(sub?: string): Promise<string>;
  /** sub `system:admin`. */
  systemUserToken(): Promise<string>;
  /** Right iss, aud and kid, but signed locally by a key the provider never published. */
  foreignKeyToken(sub?: string): Promise<string>;
  /** HS256, keyed with the provider's public RSA key (the classic algorithm-confusion attack). */
  hs256Token(sub?: string): Promise<string>;
  /** `alg: none`, no signature. */
  noneToken(sub?: string): string;
  /** Requests served so far by path (e.g. `/jwks`), to see discovery and JWKS traffic. */
  readonly hits: ReadonlyMap<string, number>;
  stop(): Promise<void>;
}

const CLAIMS_HEADER = 'x-portcullis-test-claims';
const CLIENT_ID = 'portcullis-tests';
const CLIENT_SECRET = 'portcullis-tests-secret-0123456789abcdef';
const RESOURCE = 'https://portcullis.test/api';

/** Starts a real OIDC provider on 127.0.0.1 over HTTPS. */
export async function startOidcProvider(opts: { readonly ca?: LocalCa; readonly people?: PeopleDirectory; readonly deviceCodeTtlSeconds?: number } = {}): Promise<LocalOidcProvider> {
  const ownCa = opts.ca === undefined;
  const ca = opts.ca ?? createLocalCa('portcullis test OIDC CA');
  const tls = ca.issue({ cn: '127.0.0.1', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const hits = new Map<string, number>();
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaKid = `rsa-${randomUUID().slice(0, 8)}`;
  const ecKid = `ec-${randomUUID().slice(0, 8)}`;
  const jwks = {
    keys: [
      { ...(await exportJWK(rsa.privateKey)), kid: rsaKid, use: 'sig', alg: 'RS256' },
      { ...(await exportJWK(ec.privateKey)), kid: ecKid, use: 'sig', alg: 'ES256' },
    ],
  };

  // oidc-provider ships no type declarations; a computed specifier keeps it `any` here only.
  const spec = 'oidc-provider';
  const { default: Provider } = (await import(spec)) as { default: new (issuer: string, config: unknown) => OidcProviderInstance };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: 'api',
      },
      {
        client_id: LOGIN_CLIENT_ID,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        scope: 'openid groups',
      },
    ],
    jwks,
    scopes: ['openid', 'api', 'groups'],
    claims: { openid: ['sub'], groups: ['groups'] },
    // The ID token carries what the scopes asked for (groups), as most identity providers' do.
    conformIdTokenClaims: false,
    findAccount: (_ctx: unknown, id: string) => (opts.people && Object.hasOwn(opts.people, id) ? { accountId: id, claims: () => ({ sub: id, groups: [...(opts.people?.[id] ?? [])] }) } : undefined),
    cookies: { keys: [randomUUID()] },
    ttl: { ClientCredentials: 3600, AccessToken: 600, DeviceCode: opts.deviceCodeTtlSeconds ?? 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    features: {
      // The provider's own login and consent pages: what a person fills in, and a test drives.
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx: KoaContext) => ({
          scope: 'api',
          audience: DEFAULT_AUDIENCE,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: readClaims(ctx)?.alg ?? 'RS256' } },
        }),
      },
    },
    formats: {
      customizers: {
        jwt: (ctx: KoaContext, _token: unknown, jwt: { payload: Record<string, unknown> }) => {
          const want = readClaims(ctx);
          if (!want) return;
          const p = jwt.payload;
          const iat = typeof p.iat === 'number' ? p.iat : Math.floor(Date.now() / 1000);
          if (want.sub === null) delete p.sub;
          else p.sub = want.sub;
          if (want.groups !== undefined) p.groups = want.groups;
          p.aud = want.aud ?? DEFAULT_AUDIENCE;
          if (want.ttlSeconds === null) delete p.exp;
          else p.exp = iat + (want.ttlSeconds ?? 600);
          if (want.nbfSeconds !== undefined) p.nbf = iat + want.nbfSeconds;
          delete p.client_id;
          delete p.scope;
          Object.assign(p, want.claims ?? {});
        },
      },
    },
  });
  allowConsoleCallbacks(provider);
  handler = provider.callback();

  const post = (body: string, claims: TokenOptions): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request(
        `${issuer}/token`,
        {
          method: 'POST',
          ca: ca.caPem,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
            [CLAIMS_HEADER]: Buffer.from(JSON.stringify(claims)).toString('base64url'),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const json = JSON.parse(text) as { access_token?: string };
            if (res.statusCode !== 200 || typeof json.access_token !== 'string') reject(new Error(`token endpoint: ${res.statusCode} ${text}`));
            else resolve(json.access_token);
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const token = (o: TokenOptions) => post(new URLSearchParams({ grant_type: 'client_credentials', scope: 'api', resource: RESOURCE }).toString(), o);

  const rsaPublicPem = createPublicKey(rsa.privateKey).export({ type: 'spki', format: 'pem' }).toString();
  const localSign = (header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject | Uint8Array): Promise<string> =>
    new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(key);
  const standardClaims = (sub: string) => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: issuer, sub, aud: DEFAULT_AUDIENCE, iat: now, exp: now + 600, jti: randomUUID() };
  };

  return {
    issuer,
    caFile: ca.caFile,
    caPem: ca.caPem,
    rsaKid,
    hits,
    token,
    expiredToken: (sub = 'alice') => token({ sub, ttlSeconds: -3600 }),
    wrongAudienceToken: (sub = 'alice') => token({ sub, aud: 'someone-else' }),
    futureNbfToken: (sub = 'alice') => token({ sub, nbfSeconds: 600 }),
    systemUserToken: () => token({ sub: 'system:admin' }),
    foreignKeyToken: (sub = 'alice') => {
      const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return localSign({ alg: 'RS256', kid: rsaKid, typ: 'at+jwt' }, standardClaims(sub), foreign.privateKey);
    },
    hs256Token: (sub = 'alice') => localSign({ alg: 'HS256', kid: rsaKid }, standardClaims(sub), Buffer.from(rsaPublicPem)),
    noneToken: (sub = 'alice') =>
      `${Buffer.from(JSON.stringify({ alg: 'none', kid: rsaKid })).toString('base64url')}.${Buffer.from(JSON.stringify(standardClaims(sub))).toString('base64url')}.`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownCa) ca.remove();
    },
  };
}

interface OidcProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  readonly Client: { prototype: { redirectUriAllowed(this: { clientId: string }, value: string): boolean } };
}

/** The web console's sign-in callback path on a proxy (console/README.md). */
export const CONSOLE_CALLBACK_PATH = '/console/callback';

/**
 * The login client also takes the web console's callback, `https://127.0.0.1:PORT/console/callback`,
 * at any port: the sandbox's and the tests' proxies choose their port when they start, after the
 * provider. This is RFC 8252's any-port rule for loopback redirects (which oidc-provider applies to
 * http only) extended to https on loopback, in the sandbox provider only; a real identity
 * provider registers the console's exact callback URL.
 */
function allowConsoleCallbacks(provider: OidcProviderInstance): void {
  const proto = provider.Client.prototype;
  const registered = proto.redirectUriAllowed;
  proto.redirectUriAllowed = function (value: string): boolean {
    if (registered.call(this, value)) return true;
    const u = URL.parse(value);
    return this.clientId === LOGIN_CLIENT_ID && u !== null && u.protocol === 'https:' && u.hostname === '127.0.0.1' && u.pathname === CONSOLE_CALLBACK_PATH && u.search === '' && u.hash === '' && u.username === '' && u.password === '' && value === u.href;
  };
}

interface KoaContext {
  get(header: string): string;
}

type WantedClaims = TokenOptions;

function readClaims(ctx: KoaContext | undefined): WantedClaims | undefined {
  const raw = ctx?.get(CLAIMS_HEADER);
  if (!raw) return undefined;
  return JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as WantedClaims;
}

