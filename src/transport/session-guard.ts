import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** An HTTP answer that refuses a request (or a new Socket.IO session) before any listener sees it. */
export interface Refusal {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

/** Decides whether a request may go on; undefined lets it through. */
export type RequestCheck = (req: IncomingMessage) => Refusal | undefined | Promise<Refusal | undefined>;
/** A RequestCheck for the requests that would open a new Socket.IO session. */
export type SessionCheck = RequestCheck;

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

/** `check` for the requests that would open a new Socket.IO session (see isNewSession); others pass. */
export const onNewSessions =
  (check: SessionCheck): RequestCheck =>
  (req) =>
    isNewSession(req) ? check(req) : undefined;

/** Runs `check`, then `pass` unless it refused; synchronously when the check answers synchronously. */
function screen(check: RequestCheck, req: IncomingMessage, pass: () => void, refuse: (r: Refusal) => void): void {
  const verdict = check(req);
  if (verdict === undefined) return pass();
  if (!(verdict instanceof Promise)) return refuse(verdict);
  void verdict.then((refusal) => (refusal ? refuse(refusal) : pass()));
}

/**
 * Runs `check` on every HTTP request and WebSocket upgrade before the server's listeners (Fastify,
 * Engine.IO) see it, and answers a refusal with a real HTTP status and `Connection: close`
 * (engine.io's own hooks can only answer 400/403, or drop an upgrade without a status). Wraps the
 * server's current listeners, so call it once, after Socket.IO is attached.
 */
export function guardRequests(server: Server, check: RequestCheck): void {
  const requestListeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const pass = () => {
      for (const l of requestListeners) l.call(server, req, res);
    };
    screen(check, req, pass, (refusal) => {
      res.writeHead(refusal.status, { 'content-type': 'application/json', connection: 'close', ...refusal.headers });
      res.end(JSON.stringify(refusal.body));
    });
  });

  const upgradeListeners = server.listeners('upgrade') as ((req: IncomingMessage, socket: Duplex, head: Buffer) => void)[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const pass = () => {
      for (const l of upgradeListeners) l.call(server, req, socket, head);
    };
    screen(check, req, pass, (refusal) => {
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
