import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** An HTTP answer that refuses a new Socket.IO session before Engine.IO sees it. */
export interface Refusal {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

/** Decides whether a new session may open; undefined lets it through. */
export type SessionCheck = (req: IncomingMessage) => Refusal | undefined | Promise<Refusal | undefined>;

const REASONS: Record<number, string> = { 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Socket.IO's path, with the trailing slash engine.io adds. */
const PATH = '/socket.io/';

/** The request's query as engine.io's `prepare` reads it: the WHATWG URL parser; of repeated keys the last wins. */
const engineQuery = (url: string): Record<string, string> => Object.fromEntries(new URL(url, 'https://socket.io').searchParams.entries());

/**
 * Whether engine.io would treat the request as a handshake (a new session): a URL that begins with
 * the path (engine.io's `attach` compares only that prefix, so `/socket.io/&sid=?…` is its request
 * too) and whose query has no non-empty `sid` (its `verify` and `handleRequest` test `if (sid)`, so
 * `sid=`, a bare `sid`, `…&sid=x&sid=`, or `sid` in the path count as new). The parsed query is left
 * on the request as `_query`, which engine.io reuses instead of parsing again: the two cannot disagree.
 */
function isNewSession(req: IncomingMessage & { _query?: Record<string, string> }): boolean {
  const url = req.url ?? '';
  if (url.slice(0, PATH.length) !== PATH) return false;
  req._query ??= engineQuery(url);
  return !req._query['sid'];
}

/**
 * Runs `check` on every request that would open a Socket.IO session, polling handshakes and WebSocket
 * upgrades alike, and answers a refusal with a real HTTP status (engine.io's own hooks can only answer
 * 400/403, or drop an upgrade without a status). Requests of existing sessions, probes and the API pass
 * untouched. Wraps the server's current listeners, so call it once, after Socket.IO is attached.
 */
export function guardNewSessions(server: Server, check: SessionCheck): void {
  const requestListeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  const passRequest = (req: IncomingMessage, res: ServerResponse) => {
    for (const l of requestListeners) l.call(server, req, res);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!isNewSession(req)) return passRequest(req, res);
    void Promise.resolve(check(req)).then((refusal) => {
      if (!refusal) return passRequest(req, res);
      res.writeHead(refusal.status, { 'content-type': 'application/json', connection: 'close', ...refusal.headers });
      res.end(JSON.stringify(refusal.body));
    });
  });

  const upgradeListeners = server.listeners('upgrade') as ((req: IncomingMessage, socket: Duplex, head: Buffer) => void)[];
  server.removeAllListeners('upgrade');
  const passUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    for (const l of upgradeListeners) l.call(server, req, socket, head);
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!isNewSession(req)) return passUpgrade(req, socket, head);
    socket.on('error', () => undefined);
    void Promise.resolve(check(req)).then((refusal) => {
      if (!refusal) return passUpgrade(req, socket, head);
      const body = JSON.stringify(refusal.body);
      const headers = Object.entries({ ...refusal.headers, 'content-type': 'application/json' })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.end(
        `HTTP/1.1 ${refusal.status} ${REASONS[refusal.status] ?? 'Refused'}\r\nConnection: close\r\n${headers}` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  });
}
