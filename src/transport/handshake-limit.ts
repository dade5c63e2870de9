import type { IncomingMessage } from 'node:http';
import proxyaddr from '@fastify/proxy-addr';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { ErrorCode } from 'switchboard-client/protocol';
import type { RateLimiter } from '../ports/rate-limiter.js';
import type { SessionCheck } from './session-guard.js';

export interface HandshakeLimitDeps {
  /** One point per new Socket.IO session, keyed by client address (cluster-wide with Redis). */
  limiter: RateLimiter;
  /** Proxies whose X-Forwarded-For is believed (proxy-addr syntax); empty: the peer address is the client. */
  trustProxy: readonly string[];
  metrics: Pick<Metrics, 'handshakeRefusals'>;
  logger: Logger;
}

/** The client address: the peer, or the X-Forwarded-For entry the trusted proxies vouch for. */
function clientAddress(req: IncomingMessage, trust: ((addr: string, i: number) => boolean) | undefined): string {
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
 * Engine.IO, JWT verification or any session state. Use with guardNewSessions().
 */
export function handshakeLimit(deps: HandshakeLimitDeps): SessionCheck {
  const trust = deps.trustProxy.length > 0 ? proxyaddr.compile([...deps.trustProxy]) : undefined;
  return async (req) => {
    const address = clientAddress(req, trust);
    const decision = await deps.limiter.consume(address).catch((err: unknown) => {
      // A limiter fault must not lock everyone out: let the handshake through and say so.
      deps.logger.warn({ reason: (err as Error)?.message }, 'handshake limiter failed; allowing the connection');
      return { allowed: true as const };
    });
    if (decision.allowed) return undefined;
    const { retryAfterMs } = decision;
    deps.metrics.handshakeRefusals.inc({ reason: 'rate_limited' });
    deps.logger.info({ address, retryAfterMs }, 'connection refused: too many connection attempts from this address');
    return {
      status: 429,
      headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) },
      body: {
        error: {
          code: ErrorCode.RATE_LIMITED,
          message: `Too many connection attempts from this address; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
          retryAfterMs,
        },
      },
    };
  };
}
