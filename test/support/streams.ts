/** What the stream tests share: kubectl's transport switches, and an echo through a forwarded port. */
import { connect } from 'node:net';

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
