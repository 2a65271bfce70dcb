import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkName, checkPrefix } from './names.ts';
import type { AuthnResult, ClientCertificateConfig } from './types.ts';

/**
 * Client-certificate authentication, mirroring k8s.io/apiserver's
 * x509.CommonNameUserConversion: CN → user, each O → a group. The TLS layer
 * verified the chain; this re-checks that the CA issued the certificate and
 * that it is valid at `now`, so a mis-configured listener cannot let an
 * unverified certificate through.
 */
export class ClientCertVerifier {
  private readonly ca: X509Certificate;
  private readonly issuer: string;

  constructor(private readonly config: ClientCertificateConfig) {
    checkPrefix(config.usernamePrefix, 'clientCertificates.usernamePrefix');
    checkPrefix(config.groupsPrefix, 'clientCertificates.groupsPrefix');
    this.ca = new X509Certificate(readFileSync(config.caFile));
    if (!this.ca.ca) throw new Error(`clientCertificates.caFile ${config.caFile} is not a CA certificate`);
    this.issuer = `x509:${this.ca.subject.replace(/\n/g, ',')}`;
  }

  /** Authenticates by the verified peer certificate. */
  verify(cert: X509Certificate, now: number): AuthnResult {
    if (!cert.checkIssued(this.ca) || !cert.verify(this.ca.publicKey)) {
      return { ok: false, code: 'INVALID_CREDENTIALS', message: 'client certificate not issued by the client CA' };
    }
    const notBefore = Date.parse(cert.validFrom);
    const notAfter = Date.parse(cert.validTo);
    if (!(now >= notBefore)) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'client certificate not yet valid' };
    if (!(now < notAfter)) return { ok: false, code: 'EXPIRED', message: 'client certificate expired' };
    const fields = parseSubject(cert.subject);
    if (fields === null) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'client certificate subject is not parseable' };
    const cns = fields.filter(([k]) => k === 'CN');
    if (cns.length !== 1) return { ok: false, code: 'INVALID_CREDENTIALS', message: 'client certificate needs exactly one CN' };
    const user = checkName(cns[0]?.[1] ?? '', this.config.usernamePrefix);
    if (!user.ok) return { ok: false, code: 'INVALID_CREDENTIALS', message: `CN: ${user.why}` };
    const groups: string[] = [];
    for (const [, o] of fields.filter(([k]) => k === 'O')) {
      const g = checkName(o, this.config.groupsPrefix);
      if (!g.ok) return { ok: false, code: 'INVALID_CREDENTIALS', message: `O: ${g.why}` };
      if (!groups.includes(g.name)) groups.push(g.name);
    }
    return { ok: true, identity: { user: user.name, groups, issuer: this.issuer, method: 'x509', expiresAt: notAfter } };
  }
}

/**
 * Node prints a subject one `KEY=value` per line. A value that itself contains
 * a newline or a `+`-joined multi-valued RDN would be ambiguous; such subjects
 * are refused rather than guessed at.
 */
function parseSubject(subject: string): [string, string][] | null {
  const out: [string, string][] = [];
  for (const line of subject.split('\n')) {
    const m = /^([A-Za-z.0-9]+)=(.*)$/.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) return null;
    if (m[2].includes('+') && /\+[A-Za-z.0-9]+=/.test(m[2])) return null;
    out.push([m[1], m[2]]);
  }
  return out;
}
