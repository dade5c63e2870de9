import type { Logger } from 'pino';
import type { Broadcaster } from './ports/broadcaster.js';
import type { IoServer, IoSocket } from './transport/types.js';

export interface DrainOptions {
  /** Time between `server_shutdown` and the forced disconnect (SHUTDOWN_NOTICE_MS). */
  noticeMs: number;
  /** Window over which the remaining sockets are disconnected, spread at random. @default min(1000, noticeMs / 2) */
  disconnectWindowMs: number;
}

export interface DrainTarget {
  io: IoServer;
  /** The notices go through it like every other emit. */
  broadcaster: Pick<Broadcaster, 'toConnection'>;
  logger: Logger;
  /** Resolves when every event already received has finished (stored, broadcast, acknowledged). */
  settled: () => Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const localSockets = (io: IoServer): IoSocket[] => [...io.of('/').sockets.values()];

/**
 * Steps 2–4 of the contract's shutdown; step 1 (readiness 503, refusing new sessions) is the
 * caller's flag, set before this runs, and step 5 (closing connections) follows it.
 *
 * Only this instance's sockets are told, each individually with its own `reconnectDelay` in
 * [0, noticeMs], so that they do not all land on the other instances at once. Sends received
 * meanwhile are handled normally.
 */
export async function drain(target: DrainTarget, options: Partial<DrainOptions> & Pick<DrainOptions, 'noticeMs'>): Promise<void> {
  const { io, logger } = target;
  const noticeMs = options.noticeMs;
  const windowMs = options.disconnectWindowMs ?? Math.min(1000, Math.floor(noticeMs / 2));
  notifyShutdown(target, noticeMs);
  // Clients leave on their own after their delay; whatever is still here when the notice ends is
  // disconnected, spread over a short window.
  const deadline = Date.now() + noticeMs;
  while (Date.now() < deadline && io.of('/').sockets.size > 0) await sleep(Math.min(100, deadline - Date.now()));
  await disconnectRemaining(io, windowMs, logger);
  await target.settled();
  logger.info('draining: all events settled');
}

function notifyShutdown(target: DrainTarget, noticeMs: number): void {
  const sockets = localSockets(target.io);
  target.logger.info({ sockets: sockets.length, noticeMs }, 'draining: notifying local clients');
  const n = sockets.length;
  sockets.forEach((socket, i) => {
    // Socket i of n gets a random delay within the i-th of n equal slots of the notice: the delays
    // cover it evenly, and two instances draining at once do not pick the same ones.
    const reconnectDelay = Math.round(n <= 1 ? Math.random() * noticeMs : ((i + Math.random()) / n) * noticeMs);
    target.broadcaster.toConnection(socket.id, 'server_shutdown', {
      message: 'This instance is shutting down; reconnect to another one',
      reconnectDelay: Math.min(noticeMs, reconnectDelay),
    });
  });
}

async function disconnectRemaining(io: IoServer, windowMs: number, logger: Logger): Promise<void> {
  const remaining = localSockets(io);
  if (remaining.length === 0) return;
  logger.info({ sockets: remaining.length, windowMs }, 'draining: disconnecting remaining clients');
  await Promise.all(
    remaining.map(
      (socket) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            socket.disconnect(true);
            resolve();
          }, Math.random() * windowMs),
        ),
    ),
  );
}
