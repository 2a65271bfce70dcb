/**
 * A stand-in for api.github.com on loopback, for tests of the GitHub client.
 * Every request is checked against GitHub's published OpenAPI description
 * (`@octokit/openapi`, api.github.com.json): the operation must exist, path
 * and query parameters must be declared and match their schemas, the JSON
 * body must match the request-body schema (ajv). Every answer is checked
 * against the operation's response schema before it is sent. Anything that
 * does not hold is recorded in `violations` and answered with 400/501, so a
 * test fails both through the client's error and through `violations`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Ajv, type ValidateFunction } from 'ajv';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header' | 'cookie';
  readonly required?: boolean;
  readonly schema?: Obj;
  readonly 'x-multi-segment'?: boolean;
}

interface Operation {
  readonly operationId: string;
  readonly parameters?: readonly Json[];
  readonly requestBody?: Json;
  readonly responses: Obj;
}

/** A handler for one operation: gets the validated request, returns status, body and headers. */
export type Handler = (req: {
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  readonly body: Json | undefined;
  readonly baseUrl: string;
  readonly example: Json | undefined;
}) => { status: number; body?: Json; headers?: Record<string, string> };

interface Route {
  readonly template: string;
  readonly regex: RegExp;
  readonly names: readonly string[];
  readonly literalSegments: number;
}

let specCache: Obj | undefined;
/** GitHub's OpenAPI description of api.github.com, from the @octokit/openapi package. */
export function githubSpec(): Obj {
  if (!specCache) {
    const require = createRequire(import.meta.url);
    specCache = require('@octokit/openapi/generated/api.github.com.json') as Obj;
  }
  return specCache;
}

const SPEC_ID = 'https://api.github.com/openapi.json';

/** The stand-in server. */
export class GitHubStandIn {
  /** Every request that did not match GitHub's description, and every answer that did not match its schema. */
  readonly violations: string[] = [];
  /** Every request seen, as `METHOD path operationId`. */
  readonly requests: string[] = [];
  private readonly spec = githubSpec();
  private readonly routes: Route[];
  private readonly ajv: Ajv;
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly handlers = new Map<string, Handler>();
  private server: Server | undefined;
  baseUrl = '';

  constructor() {
    this.ajv = new Ajv({ strict: false, allErrors: true, logger: false, coerceTypes: false });
    for (const f of ['int32', 'int64', 'binary', 'uri-template', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid', 'regex']) this.ajv.addFormat(f, true);
    this.ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
    this.ajv.addFormat('date', /^\d{4}-\d\d-\d\d$/);
    this.ajv.addFormat('uri', (s: string) => URL.canParse(s));
    this.ajv.addSchema({ $id: SPEC_ID, components: this.spec['components'] ?? {} });
    const paths = (this.spec['paths'] ?? {}) as Obj;
    this.routes = Object.keys(paths).map((template) => {
      const names: string[] = [];
      const multi = new Set<string>();
      for (const m of Object.values(paths[template] as Obj)) {
        for (const p of ((m as Obj)?.['parameters'] as Json[] | undefined) ?? []) {
          const r = this.deref(p) as unknown as Parameter;
          if (r?.in === 'path' && r['x-multi-segment']) multi.add(r.name);
        }
      }
      const re = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_, n: string) => {
        names.push(n);
        return multi.has(n) ? '(.+)' : '([^/]+)';
      });
      return { template, regex: new RegExp(`^${re}$`), names, literalSegments: template.split('/').filter((s) => s && !s.startsWith('{')).length };
    });
  }

  /** Answers an operation (by operationId, e.g. `issues/create-comment`). */
  on(operationId: string, handler: Handler): this {
    this.handlers.set(operationId, handler);
    return this;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          this.handle(req, res, Buffer.concat(chunks).toString('utf8'));
        } catch (e) {
          this.violations.push(`internal: ${(e as Error).stack ?? String(e)}`);
          res.writeHead(500).end();
        }
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.baseUrl;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private fail(res: ServerResponse, status: number, why: string): void {
    this.violations.push(why);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ message: why, documentation_url: 'https://docs.github.com/rest' }));
  }

  private handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = (req.method ?? 'GET').toLowerCase();
    const path = decodeURI(url.pathname);
    const matches = this.routes.filter((r) => r.regex.test(path)).sort((a, b) => b.literalSegments - a.literalSegments);
    const route = matches.find((r) => ((this.spec['paths'] as Obj)[r.template] as Obj)[method] !== undefined);
    if (!route) return this.fail(res, 501, `unknown operation: ${method.toUpperCase()} ${path}`);
    const op = ((this.spec['paths'] as Obj)[route.template] as Obj)[method] as unknown as Operation;
    this.requests.push(`${method.toUpperCase()} ${path}${url.search} ${op.operationId}`);
    const where = `${op.operationId} (${method.toUpperCase()} ${route.template})`;
    const auth = req.headers['authorization'];
    if (!auth || !/^(token|bearer) \S+$/i.test(auth)) return this.fail(res, 401, `${where}: no Authorization token`);
    const m = route.regex.exec(path);
    const params: Record<string, string> = {};
    route.names.forEach((n, i) => (params[n] = m?.[i + 1] ?? ''));
    const declared = (op.parameters ?? []).map((p) => this.deref(p) as unknown as Parameter);
    for (const p of declared.filter((d) => d.in === 'path')) {
      const bad = this.checkValue(p, params[p.name]);
      if (bad) return this.fail(res, 400, `${where}: path parameter ${p.name}: ${bad}`);
    }
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) {
      const p = declared.find((d) => d.in === 'query' && d.name === k);
      if (!p) return this.fail(res, 400, `${where}: undeclared query parameter ${k}`);
      const bad = this.checkValue(p, v);
      if (bad) return this.fail(res, 400, `${where}: query parameter ${k}: ${bad}`);
      query[k] = v;
    }
    for (const p of declared.filter((d) => d.in === 'query' && d.required)) {
      if (!(p.name in query)) return this.fail(res, 400, `${where}: missing required query parameter ${p.name}`);
    }
    let body: Json | undefined;
    const rb = op.requestBody === undefined ? undefined : (this.deref(op.requestBody) as Obj);
    if (raw.length > 0) {
      if (!rb) return this.fail(res, 400, `${where}: a body was sent but the operation takes none`);
      if (!/^application\/json/.test(req.headers['content-type'] ?? '')) return this.fail(res, 415, `${where}: body is not application/json`);
      try {
        body = JSON.parse(raw) as Json;
      } catch {
        return this.fail(res, 400, `${where}: body is not JSON`);
      }
      const schema = ((rb['content'] as Obj)?.['application/json'] as Obj)?.['schema'];
      const v = this.validator(`req ${op.operationId}`, schema);
      if (!v(body)) return this.fail(res, 422, `${where}: body does not match the schema: ${this.ajv.errorsText(v.errors)}`);
    } else if (rb?.['required'] === true) return this.fail(res, 400, `${where}: the required body is missing`);
    const handler = this.handlers.get(op.operationId);
    if (!handler) return this.fail(res, 501, `${where}: valid request, but this test did not expect it (no handler)`);
    const success = Object.keys(op.responses).find((s) => /^2\d\d$/.test(s));
    const resp = success ? (this.deref(op.responses[success] ?? null) as Obj) : undefined;
    const content = (resp?.['content'] as Obj | undefined)?.['application/json'] as Obj | undefined;
    const exampleRef = ((content?.['examples'] as Obj | undefined)?.['default'] as Json) ?? null;
    const example = exampleRef === null ? undefined : ((this.deref(exampleRef) as Obj)?.['value'] as Json);
    const out = handler({ params, query, body, baseUrl: this.baseUrl, example: example === undefined ? undefined : structuredClone(example) });
    if (String(out.status) !== success && !(out.status >= 400)) {
      return this.fail(res, 500, `${where}: handler answered ${out.status}, GitHub's description says ${success}`);
    }
    if (out.status < 400 && content?.['schema'] !== undefined) {
      const v = this.validator(`res ${op.operationId}`, content['schema']);
      if (!v(out.body)) return this.fail(res, 500, `${where}: the stand-in's answer does not match the response schema: ${this.ajv.errorsText(v.errors)}`);
    }
    res.writeHead(out.status, { 'content-type': 'application/json; charset=utf-8', ...(out.headers ?? {}) });
    res.end(out.body === undefined ? '' : JSON.stringify(out.body));
  }

  private checkValue(p: Parameter, v: string | undefined): string | undefined {
    if (v === undefined || v === '') return p.required ? 'missing' : undefined;
    const schema = p.schema ?? {};
    const t = schema['type'];
    const value: Json = t === 'integer' || t === 'number' ? Number(v) : t === 'boolean' ? v === 'true' ? true : v === 'false' ? false : v : v;
    const fn = this.validator(`param ${JSON.stringify(schema)}`, schema);
    return fn(value) ? undefined : this.ajv.errorsText(fn.errors);
  }

  private validator(key: string, schema: Json | undefined): ValidateFunction {
    let v = this.validators.get(key);
    if (!v) {
      v = this.ajv.compile(rewriteRefs(schema ?? {}) as object);
      this.validators.set(key, v);
    }
    return v;
  }

  /** Follows a local `$ref` (JSON pointer into the description), repeatedly. */
  private deref(v: Json): Json {
    let cur = v;
    for (let i = 0; i < 10 && cur && typeof cur === 'object' && !Array.isArray(cur) && typeof cur['$ref'] === 'string'; i++) {
      const ptr = (cur['$ref'] as string).replace(/^#\//, '').split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      let x: Json = this.spec;
      for (const s of ptr) x = x && typeof x === 'object' && !Array.isArray(x) ? (x[s] ?? null) : null;
      cur = x;
    }
    return cur;
  }
}

/** Points local refs (`#/components/...`) at the description added to ajv. */
function rewriteRefs(v: Json): Json {
  if (Array.isArray(v)) return v.map(rewriteRefs);
  if (v && typeof v === 'object') {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) out[k] = k === '$ref' && typeof x === 'string' && x.startsWith('#/') ? `${SPEC_ID}${x}` : rewriteRefs(x);
    return out;
  }
  return v;
}

/**
 * A stand-in with state for the calls the plan comment makes: issue comments
 * (list with pagination and Link headers, create, update) and commit statuses.
 */
export function pullRequestStandIn(opts: { owner: string; repo: string; issueNumber: number }): {
  readonly server: GitHubStandIn;
  readonly comments: { id: number; body: string; updated: number }[];
  readonly statuses: { sha: string; state: string; context: string; description: string | null; target_url: string | null }[];
} {
  const comments: { id: number; body: string; updated: number }[] = [];
  const statuses: { sha: string; state: string; context: string; description: string | null; target_url: string | null }[] = [];
  let nextId = 1000;
  const server = new GitHubStandIn();
  const own = (p: Readonly<Record<string, string>>) => p['owner'] === opts.owner && p['repo'] === opts.repo;
  const commentJson = (c: { id: number; body: string }, example: Json | undefined, base: string): Json => {
    const e = (Array.isArray(example) ? example[0] : example) as Obj;
    return {
      ...e,
      id: c.id,
      node_id: `IC_${c.id}`,
      body: c.body,
      url: `${base}/repos/${opts.owner}/${opts.repo}/issues/comments/${c.id}`,
      html_url: `https://github.com/${opts.owner}/${opts.repo}/pull/${opts.issueNumber}#issuecomment-${c.id}`,
      issue_url: `${base}/repos/${opts.owner}/${opts.repo}/issues/${opts.issueNumber}`,
    };
  };
  server
    .on('issues/list-comments', ({ params, query, example, baseUrl }) => {
      if (!own(params) || Number(params['issue_number']) !== opts.issueNumber) return { status: 404, body: { message: 'Not Found' } };
      const per = Number(query['per_page'] ?? 30);
      const page = Number(query['page'] ?? 1);
      const pages = Math.max(1, Math.ceil(comments.length / per));
      const slice = comments.slice((page - 1) * per, page * per).map((c) => commentJson(c, example, baseUrl));
      const link = `${baseUrl}/repos/${opts.owner}/${opts.repo}/issues/${opts.issueNumber}/comments?per_page=${per}&page=`;
      const headers: Record<string, string> = {};
      if (page < pages) headers['link'] = `<${link}${page + 1}>; rel="next", <${link}${pages}>; rel="last"`;
      return { status: 200, body: slice, headers };
    })
    .on('issues/create-comment', ({ params, body, example, baseUrl }) => {
      if (!own(params) || Number(params['issue_number']) !== opts.issueNumber) return { status: 404, body: { message: 'Not Found' } };
      const c = { id: nextId++, body: String((body as Obj)['body']), updated: 0 };
      comments.push(c);
      return { status: 201, body: commentJson(c, example, baseUrl) };
    })
    .on('issues/update-comment', ({ params, body, example, baseUrl }) => {
      const c = comments.find((x) => x.id === Number(params['comment_id']));
      if (!own(params) || !c) return { status: 404, body: { message: 'Not Found' } };
      c.body = String((body as Obj)['body']);
      c.updated++;
      return { status: 200, body: commentJson(c, example, baseUrl) };
    })
    .on('repos/create-commit-status', ({ params, body, example }) => {
      if (!own(params)) return { status: 404, body: { message: 'Not Found' } };
      const b = body as Obj;
      const s = {
        sha: params['sha'] ?? '',
        state: String(b['state']),
        context: String(b['context'] ?? 'default'),
        description: (b['description'] as string | undefined) ?? null,
        target_url: (b['target_url'] as string | undefined) ?? null,
      };
      statuses.push(s);
      return { status: 201, body: { ...(example as Obj), state: s.state, context: s.context, description: s.description, target_url: s.target_url } };
    });
  return { server, comments, statuses };
}
