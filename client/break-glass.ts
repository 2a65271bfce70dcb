import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ClientError } from './client-error.ts';
import { parseDuration } from '../core/duration.ts';

interface Kubeconfig {
  clusters?: { name: string; cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string } }[];
  users?: { name: string; user: { token?: string; exec?: { command: string; args?: string[]; env?: { name: string; value: string }[] } } }[];
  contexts?: { name: string; context: { cluster: string; user: string } }[];
}

/** Parses `30m`, `1h`, `900s`, `1h30m` or plain seconds. */
export function durationSeconds(d: string): number {
  const s = /^\d+$/.test(d.trim()) ? Number(d.trim()) : parseDuration(d);
  if (s === undefined || s < 1) throw new ClientError('BAD_INPUT', `--duration ${d}: use e.g. 900s, 30m or 1h`);
  return s;
}

/**
 * `portcullis break-glass`: finds the cluster's proxy server and credential in
 * the kubeconfig (a token, or an exec credential plugin such as kubelogin) and
 * POSTs {grant, reason, durationSeconds} to …/clusters/NAME/portcullis/break-glass.
 */
export async function breakGlassCommand(o: { cluster: string; grant: string; reason: string; duration?: string; kubeconfig?: string }): Promise<string> {
  const file = o.kubeconfig ?? process.env['KUBECONFIG']?.split(':')[0] ?? join(homedir(), '.kube', 'config');
  const kc = parseYaml(readFileSync(file, 'utf8')) as Kubeconfig;
  const ctx = kc.contexts?.find((c) => c.name === o.cluster) ?? kc.contexts?.find((c) => kc.clusters?.find((k) => k.name === c.context.cluster)?.cluster.server.replace(/\/$/, '').endsWith(`/clusters/${o.cluster}`));
  if (!ctx) throw new ClientError('BAD_INPUT', `no context for cluster ${o.cluster} in ${file}; run \`portcullis kubeconfig\` first`);
  const cl = kc.clusters?.find((k) => k.name === ctx.context.cluster)?.cluster;
  const user = kc.users?.find((u) => u.name === ctx.context.user)?.user;
  if (!cl || !user) throw new ClientError('BAD_INPUT', `context ${ctx.name} in ${file} names a missing cluster or user`);
  const token = user.token ?? execToken(user.exec);
  const ca = cl['certificate-authority-data'] ? Buffer.from(cl['certificate-authority-data'], 'base64') : cl['certificate-authority'] ? readFileSync(cl['certificate-authority']) : undefined;
  const body = JSON.stringify({ grant: o.grant, reason: o.reason, ...(o.duration !== undefined ? { durationSeconds: durationSeconds(o.duration) } : {}) });
  const url = new URL(`${cl.server.replace(/\/$/, '')}/portcullis/break-glass`);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
  let parsed: { message?: string; grant?: string; expiresAt?: string } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // not JSON: reported below
  }
  if (status !== 201) throw new ClientError('REFUSED', `break-glass refused (HTTP ${status}): ${parsed.message ?? text}`);
  return `break-glass grant ${parsed.grant ?? o.grant} active on ${o.cluster} until ${parsed.expiresAt ?? '?'}`;
}

function execToken(exec: { command: string; args?: string[]; env?: { name: string; value: string }[] } | undefined): string {
  if (!exec) throw new ClientError('BAD_INPUT', 'the kubeconfig user has neither a token nor an exec credential plugin');
  const env = { ...process.env, ...Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value])) };
  const out = execFileSync(exec.command, exec.args ?? [], { env, encoding: 'utf8', stdio: ['inherit', 'pipe', 'inherit'] });
  const token = (JSON.parse(out) as { status?: { token?: string } }).status?.token;
  if (!token) throw new ClientError('BAD_INPUT', `${exec.command} returned no token`);
  return token;
}
