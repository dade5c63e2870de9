import type { Message, ServerToClientEvents } from 'switchboard-client/protocol';
import type { Broadcaster } from '../ports/broadcaster.js';
import type { Metrics } from '../metrics.js';
import { batchRoom, channelRoom, plainRoom, userRoom } from './rooms.js';
import type { IoServer } from './types.js';

/**
 * The Broadcaster port over Socket.IO rooms; the adapter carries it to the other instances.
 *
 * `new_message`s are coalesced: those stored in one event-loop turn are buffered per channel and
 * flushed together at the end of the turn (setImmediate, so a lone message waits for no timer). When a
 * channel has several, clients that asked for batching (the `batchRoom`) get them in one `new_messages`
 * frame and the others (the `plainRoom`) get one `new_message` each; a single message goes to the
 * whole room as a plain `new_message`. One frame per batch instead of one per message is what makes fan-out cheap
 * under load: the cost of a delivery is mostly the write to its socket (docs/performance.md).
 */
export interface BroadcasterOptions {
  /** Counts deliveries. */
  metrics?: Metrics;
  /**
   * Whether the link to the other instances answers. While it does not, broadcasts go to local
   * sockets only: the adapter would otherwise hold each local delivery until its publish timed out.
   * What the other instances miss meanwhile, `resync` repairs when the link is back.
   * @default () => true
   */
  brokerUp?: () => boolean;
}

export class SocketIoBroadcaster implements Broadcaster {
  private pending = new Map<string, Message[]>();
  private flushScheduled = false;
  private readonly metrics: Metrics | undefined;
  private readonly brokerUp: () => boolean;

  constructor(
    private readonly io: IoServer,
    options: BroadcasterOptions = {},
  ) {
    this.metrics = options.metrics;
    this.brokerUp = options.brokerUp ?? (() => true);
  }

  /** All instances, or only this one while the broker is down. */
  private get target() {
    return this.brokerUp() ? this.io : this.io.local;
  }

  toChannel<E extends keyof ServerToClientEvents>(channelId: string, event: E, ...args: Parameters<ServerToClientEvents[E]>): void {
    if (event === 'new_message') {
      const message = args[0] as Message;
      const list = this.pending.get(channelId);
      if (list) list.push(message);
      else this.pending.set(channelId, [message]);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
      return;
    }
    this.target.to(channelRoom(channelId)).emit(event, ...args);
  }

  evict(channelId: string, userId: string): void {
    this.io.in(userRoom(userId)).socketsLeave([channelRoom(channelId), batchRoom(channelId), plainRoom(channelId)]);
  }

  private readonly flush = (): void => {
    const pending = this.pending;
    this.pending = new Map();
    this.flushScheduled = false;
    const io = this.target;
    for (const [channelId, messages] of pending) {
      const room = channelRoom(channelId);
      if (this.metrics) this.metrics.messagesDelivered.inc((this.io.of('/').adapter.rooms.get(room)?.size ?? 0) * messages.length);
      if (messages.length === 1) {
        io.to(room).emit('new_message', messages[0]!);
        continue;
      }
      io.to(batchRoom(channelId)).emit('new_messages', messages);
      const plain = io.to(plainRoom(channelId));
      for (const m of messages) plain.emit('new_message', m);
    }
  };
}
