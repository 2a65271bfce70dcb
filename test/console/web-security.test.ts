// The console page's own defences (SECURITY rules 28, 29): cookies, CSRF tokens, the Origin check, the CSP.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { contentSecurityPolicy, cookieValue, csrfMatches, csrfToken, loginCookie, sameOrigin, sessionCookie } from '../../console/web-security.ts';
import { escapeHtml } from '../../console/console-server.ts';

describe('the console page\'s defences', () => {
  it('GIVEN a session THEN its cookie is HttpOnly, Secure, SameSite=Strict and scoped to /console; the sign-in cookie is Lax (the provider\'s redirect is cross-site) and holds no credential', () => {
    const c = sessionCookie('pcs1.abc.def', 3600);
    for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/console', 'Max-Age=3600']) assert.ok(c.split('; ').includes(attr), `${attr} in ${c}`);
    const l = loginCookie('k');
    for (const attr of ['HttpOnly', 'Secure', 'SameSite=Lax', 'Path=/console/callback']) assert.ok(l.split('; ').includes(attr), `${attr} in ${l}`);
  });

  it('GIVEN Cookie headers THEN a value is read only when given exactly once', () => {
    assert.equal(cookieValue({ cookie: 'a=1; portcullis_console=pcs1.x.y; b=2' }, 'portcullis_console'), 'pcs1.x.y');
    assert.equal(cookieValue({ cookie: 'portcullis_console=one; portcullis_console=two' }, 'portcullis_console'), undefined, 'doubled: ambiguous, refused');
    assert.equal(cookieValue({ cookie: 'xportcullis_console=one' }, 'portcullis_console'), undefined);
    assert.equal(cookieValue({ cookie: 'portcullis_console=' }, 'portcullis_console'), undefined);
    assert.equal(cookieValue({}, 'portcullis_console'), undefined);
  });

  it('GIVEN a session key THEN the CSRF token is bound to the session credential and checked in constant time', () => {
    const key = randomBytes(32);
    const t = csrfToken(key, 'pcs1.a.b');
    assert.equal(csrfMatches(key, 'pcs1.a.b', t), true);
    assert.equal(csrfMatches(key, 'pcs1.a.c', t), false, 'another session');
    assert.equal(csrfMatches(randomBytes(32), 'pcs1.a.b', t), false, 'another key');
    assert.equal(csrfMatches(key, 'pcs1.a.b', undefined), false);
    assert.equal(csrfMatches(key, 'pcs1.a.b', `${t}x`), false);
    assert.equal(csrfMatches(key, 'pcs1.a.b', ''), false);
  });

  const origins: [Record<string, string>, boolean][] = [
    [{ origin: 'https://proxy.example:8443', host: 'proxy.example:8443' }, true],
    // Browsers send the origin's canonical (lower-case) form; anything else is refused.
    [{ origin: 'https://PROXY.example:8443', host: 'proxy.example:8443' }, false],
    [{ origin: 'https://proxy.example:8443', host: 'PROXY.example:8443' }, true],
    [{ origin: 'https://proxy.example:8443', ':authority': 'proxy.example:8443' }, true],
    [{ origin: 'https://evil.example', host: 'proxy.example:8443' }, false],
    [{ origin: 'https://proxy.example:9443', host: 'proxy.example:8443' }, false],
    [{ origin: 'http://proxy.example:8443', host: 'proxy.example:8443' }, false],
    [{ origin: 'null', host: 'proxy.example:8443' }, false],
    [{ origin: 'https://proxy.example:8443/path', host: 'proxy.example:8443' }, false],
    [{ host: 'proxy.example:8443' }, false],
    [{ origin: 'https://proxy.example.evil.example', host: 'proxy.example' }, false],
  ];
  for (const [headers, ok] of origins) {
    it(`GIVEN ${JSON.stringify(headers)} THEN same origin is ${ok}`, () => {
      assert.equal(sameOrigin(headers), ok);
    });
  }

  it('GIVEN the CSP THEN no inline script, no eval, no framing; styles only from the console or with the response\'s nonce', () => {
    const csp = contentSecurityPolicy('n0nce');
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self' 'nonce-n0nce'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) assert.ok(csp.split('; ').includes(d), d);
  });

  it('GIVEN the browser code THEN it never parses data as HTML (no innerHTML, outerHTML, insertAdjacentHTML, document.write, eval)', () => {
    const dir = join(import.meta.dirname, '..', '..', 'console', 'web');
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.js') || x.endsWith('.html'))) {
      assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, f);
      if (f.endsWith('.html')) assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /<script(?![^>]*\bsrc=)|\son[a-z]+=|style=/i, `${f}: no inline script, handler or style`);
    }
  });

  it('GIVEN text with markup THEN the server-built page escapes it', () => {
    assert.equal(escapeHtml('<img src=x onerror="alert(1)">&\''), '&#60;img src=x onerror=&#34;alert(1)&#34;&#62;&#38;&#39;');
  });
});
