import type { Logger } from 'pino';
import { ErrorCode, SwitchboardError } from 'switchboard-client/protocol';
import type { RateSpec } from '../config.js';
import { EventWindow } from '../core/event-window.js';
import { ackOf } from './answers.js';
import type { AckFn, IoSocket } from './types.js';

/**
 * Limits the events of one connection (RATE_LIMIT_EVENTS, see EventWindow). An event over the limit
 * is not handled: `refuse` answers it RATE_LIMITED; a client that keeps sending at twice the limit is
 * disconnected rather than allowed to slow the server.
 */
export function limitEvents(
  socket: IoSocket,
  spec: RateSpec,
  deps: { logger: Logger; refuse: (event: string, err: SwitchboardError, ack: AckFn | undefined) => void },
): void {
  const window = new EventWindow(spec);
  socket.use((packet, next) => {
    const verdict = window.take();
    if (verdict.kind === 'pass') return next();
    if (verdict.kind === 'drop') {
      deps.logger.warn({ userId: socket.data.userId }, 'disconnecting a client that ignores the event rate limit');
      socket.disconnect(true);
      return;
    }
    const err = new SwitchboardError(ErrorCode.RATE_LIMITED, 'Too many events on this connection', { retryAfterMs: verdict.retryAfterMs });
    deps.refuse(String(packet[0]).slice(0, 64), err, ackOf(packet));
  });
}
