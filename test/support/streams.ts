/** What the stream tests share: kubectl's transport switches, and an echo through a forwarded port. */
import { connect } from 'node:net';
import type { Harness } from '../proxy/harness.ts';

/** kubectl exec and port-forward over SPDY, or over WebSocket. */
export const SPDY = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false', KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' };
export const WS = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true', KUBECTL_PORT_FORWARD_WEBSOCKETS: 'true' };

/** Sends `text` to a local port (kubectl port-forward to the fake kubelet's echo port 7) and resolves with what comes back. */
export function echoThrough(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let got = '';
    s.on('data', (c) => {
      got += c.toString();
      if (got.length >= text.length) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error(`no echo, got ${JSON.stringify(got)}`)), 10_000).unref();
  });
}

/** `kubectl port-forward` to the pod's port 7 (the fake kubelet's echo) with `env`, `text` echoed through it, then stopped; resolves with the echo. */
export async function echoThroughPortForward(h: Pick<Harness, 'spawnKubectl'>, kubeconfig: string, ns: string, pod: string, env: Readonly<Record<string, string>>, text: string): Promise<string> {
  const pf = h.spawnKubectl(kubeconfig, ['port-forward', '-n', ns, `pod/${pod}`, ':7'], env);
  try {
    const m = await pf.waitFor(/Forwarding from 127\.0\.0\.1:(\d+) -> 7/);
    return await echoThrough(Number(m[1]), text);
  } finally {
    pf.kill();
  }
}
