import type { ServerToClientEvents } from '../protocol/events.js';
import type { Broadcaster } from '../ports/broadcaster.js';
import type { Metrics } from '../metrics.js';
import { channelRoom, userRoom } from './rooms.js';
import type { IoServer } from './types.js';

export interface BroadcasterOptions {
  metrics?: Metrics;
  /**
   * Whether the link to the other instances answers. While it does not, broadcasts go to local
   * sockets only: the adapter would otherwise hold each local delivery until its publish timed out.
   * What the other instances miss meanwhile, `resync` repairs when the link is back.
   */
  brokerUp?: () => boolean;
}

/** The Broadcaster port over Socket.IO rooms; the adapter carries it to the other instances. */
export class SocketIoBroadcaster implements Broadcaster {
  private readonly metrics: Metrics | undefined;
  private readonly brokerUp: () => boolean;

  constructor(
    private readonly io: IoServer,
    options: BroadcasterOptions = {},
  ) {
    this.metrics = options.metrics;
    this.brokerUp = options.brokerUp ?? (() => true);
  }

  toChannel<E extends keyof ServerToClientEvents>(channelId: string, event: E, ...args: Parameters<ServerToClientEvents[E]>): void {
    const room = channelRoom(channelId);
    if (event === 'new_message' && this.metrics) {
      this.metrics.messagesDelivered.inc(this.io.of('/').adapter.rooms.get(room)?.size ?? 0);
    }
    (this.brokerUp() ? this.io : this.io.local).to(room).emit(event, ...args);
  }

  evict(channelId: string, userId: string): void {
    this.io.in(userRoom(userId)).socketsLeave(channelRoom(channelId));
  }
}
