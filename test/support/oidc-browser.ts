// A person at the identity provider's pages, without a browser engine: follows redirects, keeps
// cookies, and fills in the real forms oidc-provider serves (sign-in, consent, device code), the
// way a browser submits them. Stops at the first redirect that leaves the provider (the CLI's
// loopback callback) and returns it, so a test can deliver it, or keep the code to replay it.
import { Agent, fetch } from 'undici';

/** Fills the provider's forms as `login`; returns the URL the provider finally redirects to outside itself (or its last page). */
export async function signIn(startUrl: string, o: { readonly login: string; readonly caPem: string; readonly stopAt?: (url: URL) => boolean }): Promise<{ readonly url: string; readonly lastPage: string }> {
  const dispatcher = new Agent({ connect: { ca: o.caPem } });
  const origin = new URL(startUrl).origin;
  const jar = new Map<string, string>();
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = startUrl;
  let method = 'GET';
  let body: URLSearchParams | undefined;
  let page = '';
  for (let step = 0; step < 30; step++) {
    const u = new URL(url);
    if (u.origin !== origin || o.stopAt?.(u)) return { url, lastPage: page };
    const r = await fetch(url, { method, redirect: 'manual', dispatcher, headers: { cookie: cookie(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) }, ...(body ? { body } : {}) });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = (pair ?? '').indexOf('=');
      if (i > 0) jar.set((pair ?? '').slice(0, i).trim(), (pair ?? '').slice(i + 1).trim());
    }
    const location = r.headers.get('location');
    if (r.status >= 300 && r.status < 400 && location) {
      url = new URL(location, url).href;
      method = 'GET';
      body = undefined;
      await r.arrayBuffer();
      continue;
    }
    page = await r.text();
    const form = /<form[^>]*action="([^"]*)"[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i.exec(page) ?? /<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(page);
    if (!form) return { url, lastPage: page };
    const fields = new URLSearchParams();
    for (const m of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
      const tag = m[0];
      const name = /name="([^"]*)"/.exec(tag)?.[1];
      if (!name) continue;
      const value = /value="([^"]*)"/.exec(tag)?.[1] ?? '';
      if (name === 'login') fields.set(name, o.login);
      else if (name === 'password') fields.set(name, 'any password: the test provider checks none');
      else fields.set(name, decodeEntities(value));
    }
    url = new URL(decodeEntities(form[1] ?? ''), url).href;
    method = 'POST';
    body = fields;
  }
  throw new Error(`sign-in did not finish; last page: ${page.slice(0, 500)}`);
}

function decodeEntities(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#x2F;/g, '/').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}
