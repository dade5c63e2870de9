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

/** A request that would open a new Socket.IO session (a handshake), not one of an existing session. */
const isNewSession = (req: IncomingMessage): boolean => {
  const url = req.url ?? '';
  return url.startsWith('/socket.io/') && !/[?&]sid=/.test(url);
};

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
