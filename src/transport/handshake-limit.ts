import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import proxyaddr from '@fastify/proxy-addr';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { ErrorCode } from '../protocol/errors.js';
import type { RateLimiter } from '../ports/rate-limiter.js';

export interface HandshakeLimitDeps {
  /** One point per new Socket.IO session, keyed by client address (cluster-wide with Redis). */
  limiter: RateLimiter;
  /** Proxies whose X-Forwarded-For is believed (proxy-addr syntax); empty: the peer address is the client. */
  trustProxy: readonly string[];
  metrics: Pick<Metrics, 'handshakeRefusals'>;
  logger: Logger;
}

/** A request that would open a new Socket.IO session (a handshake), not one of an existing session. */
const isHandshake = (req: IncomingMessage): boolean => {
  const url = req.url ?? '';
  return url.startsWith('/socket.io/') && !/[?&]sid=/.test(url);
};

/** The client address: the peer, or the X-Forwarded-For entry the trusted proxies vouch for. */
export function clientAddress(req: IncomingMessage, trust: ((addr: string, i: number) => boolean) | undefined): string {
  if (!trust) return req.socket.remoteAddress ?? 'unknown';
  try {
    return proxyaddr(req, trust);
  } catch {
    return req.socket.remoteAddress ?? 'unknown';
  }
}

/**
 * Limits connection attempts per client address (RATE_LIMIT_HANDSHAKES): an over-limit handshake
 * gets HTTP 429 with `Retry-After` and `{error: {code: RATE_LIMITED, message, retryAfterMs}}` before
 * Engine.IO, JWT verification or any session state. Requests of existing sessions pass untouched.
 * Wraps the server's current `request` and `upgrade` listeners, so call it after Socket.IO is attached.
 */
export function limitHandshakes(server: Server, deps: HandshakeLimitDeps): void {
  const trust = deps.trustProxy.length > 0 ? proxyaddr.compile([...deps.trustProxy]) : undefined;
  const refusal = (retryAfterMs: number) => ({
    error: {
      code: ErrorCode.RATE_LIMITED,
      message: `Too many connection attempts from this address; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
      retryAfterMs,
    },
  });
  /** Resolves with the wait in ms when the handshake is over the limit, undefined when allowed. */
  const check = async (req: IncomingMessage): Promise<number | undefined> => {
    const address = clientAddress(req, trust);
    const decision = await deps.limiter.consume(address).catch((err: unknown) => {
      // A limiter fault must not lock everyone out: let the handshake through and say so.
      deps.logger.warn({ reason: (err as Error)?.message }, 'handshake limiter failed; allowing the connection');
      return { allowed: true as const };
    });
    if (decision.allowed) return undefined;
    deps.metrics.handshakeRefusals.inc({ reason: 'rate_limited' });
    deps.logger.info({ address, retryAfterMs: decision.retryAfterMs }, 'connection refused: too many connection attempts from this address');
    return decision.retryAfterMs;
  };

  const requestListeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  const passRequest = (req: IncomingMessage, res: ServerResponse) => {
    for (const l of requestListeners) l.call(server, req, res);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!isHandshake(req)) return passRequest(req, res);
    void check(req).then((retryAfterMs) => {
      if (retryAfterMs === undefined) return passRequest(req, res);
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(Math.ceil(retryAfterMs / 1000)) });
      res.end(JSON.stringify(refusal(retryAfterMs)));
    });
  });

  const upgradeListeners = server.listeners('upgrade') as ((req: IncomingMessage, socket: Duplex, head: Buffer) => void)[];
  server.removeAllListeners('upgrade');
  const passUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    for (const l of upgradeListeners) l.call(server, req, socket, head);
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!isHandshake(req)) return passUpgrade(req, socket, head);
    socket.on('error', () => undefined);
    void check(req).then((retryAfterMs) => {
      if (retryAfterMs === undefined) return passUpgrade(req, socket, head);
      const body = JSON.stringify(refusal(retryAfterMs));
      socket.end(
        `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: application/json\r\n` +
          `Retry-After: ${Math.ceil(retryAfterMs / 1000)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  });
}
