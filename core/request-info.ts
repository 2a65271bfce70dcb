/**
 * Request attributes exactly as kube-apiserver derives them.
 *
 * `parseRequestInfo` mirrors `RequestInfoFactory.NewRequestInfo` in
 * k8s.io/apiserver/pkg/endpoints/request/requestinfo.go at Kubernetes v1.34
 * (k8s.io/apiserver v0.34.4), with APIPrefixes {api, apis} and
 * GrouplessAPIPrefixes {api}, as kube-apiserver configures it. Where
 * NewRequestInfo decodes the query into ListOptions
 * (metainternalversionscheme.ParameterCodec.DecodeParameters) only to learn
 * whether that decoding fails, this file ports the parts that can fail:
 * labels.Parse, fields.ParseSelector and strconv.ParseInt for timeoutSeconds
 * and limit (every other ListOptions field is a plain string or a boolean that
 * cannot fail to convert).
 *
 * Input contract: `path` is the decoded URL path (Go's `req.URL.Path`) and
 * `query` the decoded query (Go's `req.URL.Query()`), both as produced by
 * `checkRequestTarget`, which rejects the inputs on which Node's and Go's URL
 * decoding differ (invalid `%` escapes, invalid UTF-8, `;` in the query).
 */
import type { RequestAttributes } from './attributes.ts';

/** What NewRequestInfo returns (RequestInfo in requestinfo.go, camelCase). */
export interface RequestInfo {
  /** Whether this is a request for an API resource or subresource. */
  readonly isResourceRequest: boolean;
  /** The decoded URL path. */
  readonly path: string;
  /** The Kubernetes verb (list, watch, …) for resource requests; the lowercased HTTP method otherwise. */
  readonly verb: string;
  readonly apiPrefix: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly resource: string;
  readonly subresource: string;
  readonly name: string;
  /** The path parts from `{resource}/{name}` on (empty for non-resource requests). */
  readonly parts: readonly string[];
  /** The raw `fieldSelector` for list, watch and deletecollection (AuthorizeWithSelectors, GA and locked on in 1.34). */
  readonly fieldSelector: string;
  /** The raw `labelSelector` for list, watch and deletecollection. */
  readonly labelSelector: string;
  /**
   * Present when NewRequestInfo returns an error (e.g. `/api/v1/watch` with
   * nothing after the path verb); kube-apiserver then answers 500 without
   * authorizing, and `authorizationVerb` gives '' so the proxy denies.
   */
  readonly error?: string;
}

// specialVerbs, specialVerbsNoSubresources, namespaceSubresources and
// verbsWithSelectors from requestinfo.go.
const SPECIAL_VERBS: ReadonlySet<string> = new Set(['proxy', 'watch']);
const SPECIAL_VERBS_NO_SUBRESOURCES: ReadonlySet<string> = new Set(['proxy']);
/** Subresources of a namespace (NamespaceSubResources upstream): `/namespaces/NAME/status` is not a resource called "status". */
export const NAMESPACE_SUBRESOURCES: ReadonlySet<string> = new Set(['status', 'finalize']);
const VERBS_WITH_SELECTORS: ReadonlySet<string> = new Set(['list', 'watch', 'deletecollection']);
const API_PREFIXES: ReadonlySet<string> = new Set(['api', 'apis']);
const GROUPLESS_API_PREFIXES: ReadonlySet<string> = new Set(['api']);

/** The switch on req.Method in NewRequestInfo: case-sensitive, anything else is ''. */
const METHOD_VERBS: ReadonlyMap<string, string> = new Map([
  ['POST', 'create'],
  ['GET', 'get'],
  ['HEAD', 'get'],
  ['PUT', 'update'],
  ['PATCH', 'patch'],
  ['DELETE', 'delete'],
]);

/** splitPath in requestinfo.go: trim every leading and trailing '/', split on '/'. */
function splitPath(path: string): string[] {
  let start = 0;
  let end = path.length;
  while (start < end && path[start] === '/') start++;
  while (end > start && path[end - 1] === '/') end--;
  const trimmed = path.slice(start, end);
  return trimmed === '' ? [] : trimmed.split('/');
}

interface MutableInfo {
  isResourceRequest: boolean;
  path: string;
  verb: string;
  apiPrefix: string;
  apiGroup: string;
  apiVersion: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
  parts: string[];
  fieldSelector: string;
  labelSelector: string;
}

/**
 * The request info of one request; mirrors RequestInfoFactory.NewRequestInfo
 * (k8s.io/apiserver v0.34.4) line by line.
 */
export function parseRequestInfo(method: string, path: string, query: URLSearchParams): RequestInfo {
  // start with a non-resource request until proven otherwise
  const info: MutableInfo = {
    isResourceRequest: false,
    path,
    verb: goToLower(method),
    apiPrefix: '',
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
    fieldSelector: '',
    labelSelector: '',
  };

  let current = splitPath(path);
  if (current.length < 3) return info;
  const prefix = current[0] ?? '';
  if (!API_PREFIXES.has(prefix)) return info;
  info.apiPrefix = prefix;
  current = current.slice(1);

  if (!GROUPLESS_API_PREFIXES.has(prefix)) {
    // one part (the prefix) is consumed already: "do we have four parts?"
    if (current.length < 3) return info;
    info.apiGroup = current[0] ?? '';
    current = current.slice(1);
  }

  info.isResourceRequest = true;
  info.apiVersion = current[0] ?? '';
  current = current.slice(1);

  // handle input of form /{specialVerb}/*
  let verbViaPathPrefix = false;
  const first = current[0] ?? '';
  if (SPECIAL_VERBS.has(first)) {
    if (current.length < 2) {
      return { ...info, error: `unable to determine kind and namespace from url, ${path}` };
    }
    info.verb = first;
    current = current.slice(1);
    verbViaPathPrefix = true;
  } else {
    info.verb = METHOD_VERBS.get(method) ?? '';
  }

  // URL forms: /namespaces/{namespace}/{kind}/*, where parts are adjusted to be relative to kind
  if (current[0] === 'namespaces') {
    if (current.length > 1) {
      info.namespace = current[1] ?? '';
      // a step after the namespace name that is not a namespace subresource is a resource in its own right
      if (current.length > 2 && !NAMESPACE_SUBRESOURCES.has(current[2] ?? '')) {
        current = current.slice(2);
      }
    }
  } else {
    info.namespace = ''; // metav1.NamespaceNone
  }

  info.parts = current;

  // parts look like: resource/resourceName/subresource/other/stuff/we/don't/interpret
  if (current.length >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.has(info.verb)) {
    info.subresource = current[2] ?? '';
  }
  if (current.length >= 2) info.name = current[1] ?? '';
  if (current.length >= 1) info.resource = current[0] ?? '';

  // no name and a get: the actual verb is list or watch
  if (info.name === '' && info.verb === 'get') {
    let opts = decodeListOptions(query);
    if (opts === undefined) {
      // A parse error defaults to list without a name; only watch is still reported,
      // read with strings.ToLower (not EqualFold, as the successful decode does).
      const watch = query.getAll('watch');
      let isWatch = false;
      if (watch.length > 0) {
        const v = goToLower(watch[0] ?? '');
        isWatch = !(v === 'false' || v === '0');
      }
      opts = { watch: isWatch, fieldSelector: undefined };
    }
    info.verb = opts.watch ? 'watch' : 'list';
    if (opts.fieldSelector !== undefined) {
      const name = requiresExactMatch(opts.fieldSelector, 'metadata.name');
      if (name !== undefined && isValidPathSegmentName(name)) info.name = name;
    }
  }

  // no name and a delete: the actual verb is deletecollection
  if (info.name === '' && info.verb === 'delete') info.verb = 'deletecollection';

  // AuthorizeWithSelectors (GA, locked on in 1.34): not for the deprecated verb-via-path forms.
  if (!verbViaPathPrefix && VERBS_WITH_SELECTORS.has(info.verb)) {
    const fs = query.getAll('fieldSelector');
    if (fs.length > 0) info.fieldSelector = fs[0] ?? '';
    const ls = query.getAll('labelSelector');
    if (ls.length > 0) info.labelSelector = ls[0] ?? '';
  }

  return info;
}

/** Go's strings.ToLower for the inputs that matter here (method tokens and `watch` values). */
function goToLower(s: string): string {
  // Go maps rune by rune (simple case mapping); JS toLowerCase uses full mappings,
  // which differ only for U+0130. Map that one as Go does.
  let out = '';
  for (const ch of s) out += ch === '\u0130' ? 'i' : ch.toLowerCase();
  return out;
}

/** path.IsValidPathSegmentName (k8s.io/apimachinery/pkg/api/validation/path). */
function isValidPathSegmentName(name: string): boolean {
  return name !== '.' && name !== '..' && !name.includes('/') && !name.includes('%');
}

/** The parts of metainternalversion.ListOptions that NewRequestInfo reads. */
interface DecodedListOptions {
  readonly watch: boolean;
  /** undefined stands for Go's nil selector (no parameters at all). */
  readonly fieldSelector: readonly FieldTerm[] | undefined;
}

/**
 * ParameterCodec.DecodeParameters(query, meta/v1, &ListOptions{}): url.Values →
 * v1.ListOptions (Convert_url_Values_To_v1_ListOptions) → internal ListOptions
 * (labels.Parse, fields.ParseSelector). Returns undefined where Go returns an error.
 */
function decodeListOptions(query: URLSearchParams): DecodedListOptions | undefined {
  if (query.size === 0) return { watch: false, fieldSelector: undefined };
  const first = (key: string): string | undefined => {
    const all = query.getAll(key);
    return all.length > 0 ? all[0] : undefined;
  };
  // runtime.Convert_Slice_string_To_Pointer_int64 / Convert_Slice_string_To_int64
  for (const key of ['timeoutSeconds', 'limit']) {
    const v = first(key);
    if (v !== undefined && parseGoInt64(v) === undefined) return undefined;
  }
  // runtime.Convert_Slice_string_To_bool: only "0" and EqualFold "false" are false.
  const w = first('watch');
  const watch = w !== undefined && !(w === '0' || equalFoldFalse(w));
  // Convert_string_To_labels_Selector and Convert_string_To_fields_Selector run on
  // the (possibly empty) strings after the url.Values conversion.
  if (!labelSelectorParses(first('labelSelector') ?? '')) return undefined;
  const fieldSelector = parseFieldSelector(first('fieldSelector') ?? '');
  if (fieldSelector === undefined) return undefined;
  return { watch, fieldSelector };
}

/** strings.EqualFold(s, "false"): Unicode simple folding, where only 's' has a non-ASCII fold (U+017F ſ). */
function equalFoldFalse(s: string): boolean {
  const runes = [...s];
  const want = 'false';
  if (runes.length !== want.length) return false;
  return runes.every((r, i) => {
    const w = want[i] ?? '';
    if (r.length === 1 && r.toLowerCase() === w && r.charCodeAt(0) < 0x80) return true;
    return w === 's' && r === '\u017f';
  });
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** strconv.ParseInt(s, 10, 64): optional sign, ASCII digits, in range; else undefined. */
export function parseGoInt64(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}

// ---------------------------------------------------------------------------
// fields.ParseSelector (k8s.io/apimachinery/pkg/fields/selector.go)

/** One parsed term: hasTerm (`=`, `==`) or notHasTerm (`!=`). */
interface FieldTerm {
  readonly field: string;
  readonly equals: boolean;
  readonly value: string;
}

const UTF8 = new TextEncoder();

/** Go's string comparison: by UTF-8 bytes (JS compares UTF-16 code units). */
function compareGoStrings(a: string, b: string): number {
  const x = UTF8.encode(a);
  const y = UTF8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** splitTerms: split on unescaped ',' (a backslash escapes the next rune). */
function splitTerms(selector: string): string[] {
  if (selector === '') return [];
  const terms: string[] = [];
  let start = 0;
  let inSlash = false;
  let i = 0;
  for (const ch of selector) {
    if (inSlash) inSlash = false;
    else if (ch === '\\') inSlash = true;
    else if (ch === ',') {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
    i += ch.length;
  }
  terms.push(selector.slice(start));
  return terms;
}

const TERM_OPERATORS = ['!=', '==', '='] as const;

/** splitTerm: the first position where a recognised operator starts. */
function splitTerm(term: string): { lhs: string; op: string; rhs: string } | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const op of TERM_OPERATORS) {
      if (term.startsWith(op, i)) return { lhs: term.slice(0, i), op, rhs: term.slice(i + op.length) };
    }
  }
  return undefined;
}

/** UnescapeValue: `\\`, `\,`, `\=` are escapes; any other escape or a bare `,`/`=` is an error. */
function unescapeFieldValue(s: string): string | undefined {
  if (!/[\\,=]/.test(s)) return s;
  let out = '';
  let inSlash = false;
  for (const ch of s) {
    if (inSlash) {
      if (ch === '\\' || ch === ',' || ch === '=') out += ch;
      else return undefined;
      inSlash = false;
      continue;
    }
    if (ch === '\\') inSlash = true;
    else if (ch === ',' || ch === '=') return undefined;
    else out += ch;
  }
  return inSlash ? undefined : out;
}

/** fields.ParseSelector: terms sorted (Go byte order), each split and unescaped; undefined on error. */
function parseFieldSelector(selector: string): FieldTerm[] | undefined {
  const parts = splitTerms(selector).sort(compareGoStrings);
  const items: FieldTerm[] = [];
  for (const part of parts) {
    if (part === '') continue;
    const t = splitTerm(part);
    if (t === undefined) return undefined;
    const value = unescapeFieldValue(t.rhs);
    if (value === undefined) return undefined;
    items.push({ field: t.lhs, equals: t.op !== '!=', value });
  }
  return items;
}

/** Selector.RequiresExactMatch: the first `=`/`==` term on that field, in sorted order. */
function requiresExactMatch(terms: readonly FieldTerm[], field: string): string | undefined {
  for (const t of terms) if (t.equals && t.field === field) return t.value;
  return undefined;
}

// ---------------------------------------------------------------------------
// labels.Parse (k8s.io/apimachinery/pkg/labels/selector.go), ported on bytes
// as Go's lexer reads them; only whether it fails matters here.

const enum Tok {
  Error = 0,
  EndOfString,
  ClosedPar,
  Comma,
  DoesNotExist,
  DoubleEquals,
  Equals,
  GreaterThan,
  Identifier,
  In,
  LessThan,
  NotEquals,
  NotIn,
  OpenPar,
}

const STRING_TO_TOKEN: ReadonlyMap<string, Tok> = new Map([
  [')', Tok.ClosedPar],
  [',', Tok.Comma],
  ['!', Tok.DoesNotExist],
  ['==', Tok.DoubleEquals],
  ['=', Tok.Equals],
  ['>', Tok.GreaterThan],
  ['in', Tok.In],
  ['<', Tok.LessThan],
  ['!=', Tok.NotEquals],
  ['notin', Tok.NotIn],
  ['(', Tok.OpenPar],
]);

const isWhitespace = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a;
const isSpecialSymbol = (b: number): boolean => '=!(),><'.includes(String.fromCharCode(b));

interface Item {
  readonly tok: Tok;
  readonly lit: string;
}

/** The label selector lexer; literals are byte strings (latin1), as Go's strings are bytes. */
function lexLabels(bytes: Uint8Array): Item[] {
  let pos = 0;
  const read = (): number => {
    if (pos < bytes.length) return bytes[pos++] ?? 0;
    return 0;
  };
  const unread = (): void => {
    pos--;
  };
  const scanIdOrKeyword = (): Item => {
    let buf = '';
    for (;;) {
      const ch = read();
      if (ch === 0) break;
      if (isSpecialSymbol(ch) || isWhitespace(ch)) {
        unread();
        break;
      }
      buf += String.fromCharCode(ch);
    }
    const tok = STRING_TO_TOKEN.get(buf);
    return tok !== undefined ? { tok, lit: buf } : { tok: Tok.Identifier, lit: buf };
  };
  const scanSpecialSymbol = (): Item => {
    let last: Item = { tok: Tok.Error, lit: '' };
    let buf = '';
    for (;;) {
      const ch = read();
      if (ch === 0) break;
      if (isSpecialSymbol(ch)) {
        buf += String.fromCharCode(ch);
        const tok = STRING_TO_TOKEN.get(buf);
        if (tok !== undefined) last = { tok, lit: buf };
        else if (last.tok !== Tok.Error) {
          unread();
          break;
        }
      } else {
        unread();
        break;
      }
    }
    return last.tok === Tok.Error ? { tok: Tok.Error, lit: buf } : last;
  };
  const lex = (): Item => {
    let ch = read();
    while (isWhitespace(ch)) ch = read();
    if (ch === 0) return { tok: Tok.EndOfString, lit: '' };
    unread();
    return isSpecialSymbol(ch) ? scanSpecialSymbol() : scanIdOrKeyword();
  };
  const items: Item[] = [];
  for (;;) {
    const item = lex();
    items.push(item);
    if (item.tok === Tok.EndOfString) return items;
  }
}

type Operator = '' | 'exists' | '!' | 'in' | 'notin' | '=' | '==' | '!=' | 'gt' | 'lt';

class LabelParseError extends Error {}

/** labels.Parse(selector) succeeds. */
export function labelSelectorParses(selector: string): boolean {
  const items = lexLabels(UTF8.encode(selector));
  let position = 0;
  const at = (i: number): Item => items[i] ?? { tok: Tok.EndOfString, lit: '' };
  const inValues = (item: Item, values: boolean): Tok =>
    values && (item.tok === Tok.In || item.tok === Tok.NotIn) ? Tok.Identifier : item.tok;
  const lookahead = (values: boolean): Item => ({ tok: inValues(at(position), values), lit: at(position).lit });
  const consume = (values: boolean): Item => {
    position++;
    const item = at(position - 1);
    return { tok: inValues(item, values), lit: item.lit };
  };
  const fail = (): never => {
    throw new LabelParseError();
  };

  const parseKeyAndInferOperator = (): { key: string; op: Operator } => {
    let op: Operator = '';
    let item = consume(true);
    if (item.tok === Tok.DoesNotExist) {
      op = '!';
      item = consume(true);
    }
    if (item.tok !== Tok.Identifier) fail();
    if (!isQualifiedName(item.lit)) fail();
    const t = lookahead(true).tok;
    if ((t === Tok.EndOfString || t === Tok.Comma) && op !== '!') op = 'exists';
    return { key: item.lit, op };
  };
  const parseOperator = (): Operator => {
    switch (consume(false).tok) {
      case Tok.In:
        return 'in';
      case Tok.Equals:
        return '=';
      case Tok.DoubleEquals:
        return '==';
      case Tok.GreaterThan:
        return 'gt';
      case Tok.LessThan:
        return 'lt';
      case Tok.NotIn:
        return 'notin';
      case Tok.NotEquals:
        return '!=';
      default:
        return fail();
    }
  };
  const parseIdentifiersList = (): Set<string> => {
    const s = new Set<string>();
    for (;;) {
      const item = consume(true);
      if (item.tok === Tok.Identifier) {
        s.add(item.lit);
        const t2 = lookahead(true).tok;
        if (t2 === Tok.Comma) continue;
        if (t2 === Tok.ClosedPar) return s;
        return fail();
      } else if (item.tok === Tok.Comma) {
        if (s.size === 0) s.add('');
        const t2 = lookahead(true).tok;
        if (t2 === Tok.ClosedPar) {
          s.add('');
          return s;
        }
        if (t2 === Tok.Comma) {
          consume(true);
          s.add('');
        }
      } else {
        return fail();
      }
    }
  };
  const parseValues = (): Set<string> => {
    if (consume(true).tok !== Tok.OpenPar) fail();
    const t = lookahead(true).tok;
    if (t === Tok.Identifier || t === Tok.Comma) {
      const s = parseIdentifiersList();
      if (consume(true).tok !== Tok.ClosedPar) fail();
      return s;
    }
    if (t === Tok.ClosedPar) {
      consume(true);
      return new Set(['']);
    }
    return fail();
  };
  const parseExactValue = (): Set<string> => {
    const t = lookahead(true).tok;
    if (t === Tok.EndOfString || t === Tok.Comma) return new Set(['']);
    const item = consume(true);
    if (item.tok === Tok.Identifier) return new Set([item.lit]);
    return fail();
  };
  // NewRequirement's validation
  const newRequirement = (key: string, op: Operator, values: readonly string[]): void => {
    if (!isQualifiedName(key)) fail();
    if ((op === 'in' || op === 'notin') && values.length === 0) fail();
    if ((op === '=' || op === '==' || op === '!=') && values.length !== 1) fail();
    if ((op === 'exists' || op === '!') && values.length !== 0) fail();
    if (op === 'gt' || op === 'lt') {
      if (values.length !== 1) fail();
      if (values.some((v) => parseGoInt64(v) === undefined)) fail();
    }
    if (op === '') fail(); // NotSupported operator
    if (values.some((v) => !isValidLabelValue(v))) fail();
  };
  const parseRequirement = (): void => {
    const { key, op: inferred } = parseKeyAndInferOperator();
    if (inferred === 'exists' || inferred === '!') {
      newRequirement(key, inferred, []);
      return;
    }
    const op = parseOperator();
    const values = op === 'in' || op === 'notin' ? parseValues() : parseExactValue();
    newRequirement(key, op, [...values]);
  };

  try {
    for (;;) {
      const t = lookahead(true).tok;
      if (t === Tok.Identifier || t === Tok.DoesNotExist) {
        parseRequirement();
        const next = consume(true).tok;
        if (next === Tok.EndOfString) return true;
        if (next !== Tok.Comma) return false;
        const t2 = lookahead(true).tok;
        if (t2 !== Tok.Identifier && t2 !== Tok.DoesNotExist) return false;
      } else {
        return t === Tok.EndOfString;
      }
    }
  } catch (e) {
    if (e instanceof LabelParseError) return false;
    throw e;
  }
}

// k8s.io/apimachinery/pkg/util/validation, on byte strings (length is byte length).
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** validation.IsQualifiedName: `[DNS-1123 subdomain '/'] name`, name at most 63 characters. */
function isQualifiedName(value: string): boolean {
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) name = parts[0] ?? '';
  else if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    name = parts[1] ?? '';
    if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return false;
  } else return false;
  return name.length > 0 && name.length <= 63 && QUALIFIED_NAME.test(name);
}

/** validation.IsValidLabelValue: empty, or a qualified name part of at most 63 characters. */
function isValidLabelValue(value: string): boolean {
  return value.length <= 63 && (value === '' || QUALIFIED_NAME.test(value));
}

// ---------------------------------------------------------------------------

/** Subresources of pods that open a stream into a container: always `create` (rule 4). */
const POD_STREAM_SUBRESOURCES: ReadonlySet<string> = new Set(['exec', 'attach', 'portforward']);
/** Non-resource verbs the proxy accepts (lowercased known methods); anything else, e.g. options or trace, denies. */
const NON_RESOURCE_VERBS: ReadonlySet<string> = new Set(['get', 'head', 'post', 'put', 'patch', 'delete']);

/**
 * The verb the proxy authorizes for a parsed request.
 *
 * pods/exec, pods/attach and pods/portforward authorize as `create` whatever
 * the transport: a WebSocket upgrade arrives as GET (verb `get`), SPDY as POST.
 * This mirrors the `create` check that Kubernetes v1.35 added behind the
 * AuthorizePodWebsocketUpgradeCreatePermission feature gate
 * (`ensureAuthorizedForVerb(ctx, r.Authorizer, "create")` in ExecREST /
 * AttachREST / PortForwardREST.Connect, pkg/registry/core/pod/rest/subresources.go,
 * kubernetes/kubernetes#134577); v1.34 itself asks only for `get` on a
 * WebSocket upgrade (observed against the real v1.34.4: a user holding only
 * `get` on pods/exec passes authorization on the WebSocket GET and gets 403 on
 * the SPDY POST), so the proxy is the stricter party there. `isUpgrade` is
 * stated by the caller for the record; by design it never changes the verb.
 * An empty verb (unknown method) stays empty, a non-resource verb other than
 * get/head/post/put/patch/delete becomes '' (OPTIONS, TRACE…), and a request
 * that NewRequestInfo could not parse gets '' — all deny.
 *
 * Rule 5 (what the proxy cannot see): a PUT that creates stays `update` and a
 * server-side-apply PATCH that creates stays `patch` here; kube-apiserver
 * re-authorizes those as `create` for the impersonated user itself
 * (withAuthorization in k8s.io/apiserver/pkg/endpoints/handlers/update.go and
 * patch.go), so upstream RBAC decides the create.
 */
export function authorizationVerb(info: RequestInfo, _opts: { readonly isUpgrade: boolean }): string {
  if (info.error !== undefined) return '';
  if (!info.isResourceRequest) return NON_RESOURCE_VERBS.has(info.verb) ? info.verb : '';
  if (
    info.apiGroup === '' &&
    info.resource === 'pods' &&
    POD_STREAM_SUBRESOURCES.has(info.subresource) &&
    (info.verb === 'get' || info.verb === 'create')
  ) {
    return 'create';
  }
  return info.verb;
}

/** The authorizer's attributes for a request (mirrors filters.GetAuthorizerAttributes, without the selector requirements). */
export function toAttributes(
  info: RequestInfo,
  verb: string,
  user: string,
  groups: readonly string[],
): RequestAttributes {
  return {
    user,
    groups: [...groups],
    verb,
    isResourceRequest: info.isResourceRequest,
    path: info.path,
    apiGroup: info.apiGroup,
    apiVersion: info.apiVersion,
    resource: info.resource,
    subresource: info.subresource,
    namespace: info.namespace,
    name: info.name,
  };
}
