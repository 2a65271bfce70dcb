/**
 * A local certificate authority for the sandbox, the demo and tests: openssl on
 * this machine, EC P-256 keys, a temp directory that `remove()` deletes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throw-away certificate authority (openssl, EC P-256). */
export interface LocalCa {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  /** Issues a leaf certificate signed by this CA. */
  issue(opts: IssueOptions): IssuedCert;
  /** Deletes the CA's directory. */
  remove(): void;
}

/** What a leaf certificate should say. */
export interface IssueOptions {
  /** Common name. */
  readonly cn: string;
  /** Organisations (groups, for client certificates). */
  readonly o?: readonly string[];
  /** Subject alternative names, e.g. `IP:127.0.0.1`, `DNS:localhost`. */
  readonly sans?: readonly string[];
  /** `serverAuth` or `clientAuth`. @default 'serverAuth' */
  readonly usage?: 'serverAuth' | 'clientAuth';
  /** Validity in days from now. @default the CA's */
  readonly days?: number;
}

/** A leaf certificate and its key, as PEM and as files. */
export interface IssuedCert {
  readonly certPem: string;
  readonly keyPem: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Creates a CA in a temp directory with openssl. It and its certificates are valid for
 * `days` (default 3650): long enough that the product can be run under a clock years ahead
 * (test/sandbox/clock.test.ts) with certificates made at the real time.
 */
export function createLocalCa(name = 'portcullis local CA', o: { readonly days?: number } = {}): LocalCa {
  const days = String(o.days ?? 3650);
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-ca-'));
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey]);
  openssl([
    'req', '-x509', '-new', '-key', caKey, '-sha256', '-days', days, '-subj', `/CN=${name}`, '-out', caFile,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 1;
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    issue(opts) {
      const id = `leaf-${serial++}`;
      const keyFile = join(dir, `${id}.key`);
      const csr = join(dir, `${id}.csr`);
      const certFile = join(dir, `${id}.crt`);
      const ext = join(dir, `${id}.ext`);
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
      const subj = [...(opts.o ?? []).map((o) => `/O=${o}`), `/CN=${opts.cn}`].join('');
      openssl(['req', '-new', '-key', keyFile, '-subj', subj, '-out', csr]);
      const lines = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${opts.usage ?? 'serverAuth'}`];
      if (opts.sans?.length) lines.push(`subjectAltName=${opts.sans.join(',')}`);
      writeFileSync(ext, `${lines.join('\n')}\n`);
      const validity = ['-days', opts.days !== undefined ? String(opts.days) : days];
      openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(1000 + serial), ...validity, '-sha256', '-extfile', ext, '-out', certFile]);
      return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, keyFile };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}
