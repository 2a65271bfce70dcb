import type { ServerResponse } from 'node:http';
import type { Exchange } from '../runtime-proxy/exchange.ts';
import type { Req, Res } from '../runtime-proxy/request-state.ts';
import type { ActivityFeed, ActivityFilter, ActivityItem } from './activity.ts';
import type { TerminalEnd } from './terminal/terminal-session.ts';
import { securityHeaders } from './web-security.ts';

/** Something live that ends with its session (an activity stream, a terminal). */
export interface Live {
  end(why: TerminalEnd): void;
}

/** SSE: a comment line this often keeps proxies and the browser from timing the stream out. */
const HEARTBEAT_MS = 15_000;
/** An activity stream with this many bytes unsent has a slow reader: it is closed (the browser reconnects). */
const MAX_BACKLOG = 1 << 20;

/** Who is watching, and what they may see. */
export interface Watcher {
  /** Whether this person may see an item at all (their own, or an auditor's clusters). */
  readonly visible: (item: ActivityItem) => boolean;
  /** The clusters they audit (none: they see their own records only). */
  readonly auditorOn: readonly string[];
  readonly filter: ActivityFilter;
}

/**
 * The live feed as server-sent events: a `hello` (the viewer's scope), the recent items they may
 * see, then each new one. A slow reader is cut, never buffered without end; the stream ends with
 * the session (`track`), the client, or shutdown, and its end is the exchange's one record.
 */
export function serveActivityStream(req: Req, res: Res, ex: Exchange, feed: ActivityFeed, w: Watcher, track: (l: Live) => () => void): void {
  res.writeHead(200, { ...securityHeaders(), 'content-type': 'text/event-stream', 'audit-id': ex.auditId });
  const out = res as ServerResponse;
  // What is queued but unsent: on the HTTP/2 stream, or the HTTP/1.1 socket's response.
  const unsent = (): number => ('stream' in res ? res.stream.writableLength : out.writableLength);
  // The record's detail (SECURITY rule 16: for the log and the audit record) goes to auditors only.
  const auditor = w.auditorOn.length > 0;
  let done = false;
  const send = (i: ActivityItem): void => {
    if (done) return;
    if (unsent() > MAX_BACKLOG) return end('error');
    out.write(`event: audit\ndata: ${JSON.stringify(auditor ? i : { ...i, detail: undefined })}\n\n`);
  };
  const sub = feed.subscribe(w.visible, w.filter, send);
  out.write(`event: hello\ndata: ${JSON.stringify({ auditor, clusters: w.auditorOn })}\n\n`);
  for (const i of sub.recent) send(i);
  const beat = setInterval(() => out.write(': keep-alive\n\n'), HEARTBEAT_MS);
  beat.unref();
  const end = (why: TerminalEnd): void => {
    if (done) return;
    done = true;
    clearInterval(beat);
    sub.stop();
    untrack();
    ex.end(200, { reason: `console: activity stream ended (${why})`, decision: 'allow' });
    res.end();
  };
  const untrack = track({ end });
  req.on('close', () => end('closed'));
  res.on('close', () => end('closed'));
}
