import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { ErrorCode } from 'switchboard-client/protocol';
import type { RateDecision, RateLimiter } from '../ports/rate-limiter.js';
import type { ClientAddress } from './client-address.js';
import type { SessionCheck } from './session-guard.js';

export interface HandshakeBudgetDeps {
  /** Points per client address (RATE_LIMIT_HANDSHAKES; cluster-wide with Redis). */
  limiter: RateLimiter;
  address: ClientAddress;
  logger: Logger;
}

/** Connection attempts per client address: a new Engine.IO session, or a repeated connect packet on one. */
export type HandshakeBudget = (req: IncomingMessage) => Promise<RateDecision>;

/** Takes one point for the client behind a request; a limiter fault lets the attempt through. */
export function handshakeBudget(deps: HandshakeBudgetDeps): HandshakeBudget {
  return (req) =>
    deps.limiter.consume(deps.address(req)).catch((err: unknown) => {
      // A limiter fault must not lock everyone out: let the attempt through and say so.
      deps.logger.warn({ reason: (err as Error)?.message }, 'handshake limiter failed; allowing the connection');
      return { allowed: true as const };
    });
}

/**
 * Limits new Socket.IO sessions per client address: an over-budget handshake gets HTTP 429 with
 * `Retry-After` and `{error: {code: RATE_LIMITED, message, retryAfterMs}}` before Engine.IO, JWT
 * verification or any session state. Use with guardNewSessions().
 */
export function handshakeLimit(budget: HandshakeBudget, deps: { metrics: Pick<Metrics, 'refuseHandshake'>; logger: Logger; address: ClientAddress }): SessionCheck {
  return async (req) => {
    const decision = await budget(req);
    if (decision.allowed) return undefined;
    const { retryAfterMs } = decision;
    deps.metrics.refuseHandshake('rate_limited');
    deps.logger.info({ address: deps.address(req), retryAfterMs }, 'connection refused: too many connection attempts from this address');
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
