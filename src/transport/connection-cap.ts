import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode } from 'switchboard-client/protocol';
import type { Metrics } from '../metrics.js';
import type { ClientAddress } from './client-address.js';
import type { RequestCheck } from './session-guard.js';

/** What a client at the cap is told to wait before it tries again. */
const RETRY_AFTER_MS = 5000;

/**
 * Caps the simultaneous TCP connections of one client address (MAX_HTTP_CONNECTIONS_PER_IP). A
 * connection counts for the address of its first request (`address`, so TRUST_PROXY-aware) until it
 * closes; a first request over the cap gets 429 RATE_LIMITED and its connection is closed. Later
 * requests of a counted connection pass at once. Use with guardRequests().
 */
export function connectionCap(max: number, deps: { address: ClientAddress; metrics: Pick<Metrics, 'httpConnectionRefusals'>; logger: Logger }): RequestCheck {
  const open = new Map<string, number>();
  const counted = new WeakSet<Socket>();
  return (req) => {
    const socket = req.socket;
    if (counted.has(socket)) return undefined;
    const address = deps.address(req);
    const n = open.get(address) ?? 0;
    if (n >= max) {
      deps.metrics.httpConnectionRefusals.inc();
      deps.logger.info({ address, open: n }, 'connection refused: too many connections from this address');
      const message = `Too many connections from this address (limit ${max})`;
      return { status: 429, headers: { 'retry-after': String(RETRY_AFTER_MS / 1000) }, body: { error: { code: ErrorCode.RATE_LIMITED, message, retryAfterMs: RETRY_AFTER_MS } } };
    }
    counted.add(socket);
    open.set(address, n + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
    return undefined;
  };
}
