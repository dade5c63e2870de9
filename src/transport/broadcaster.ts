import type { ServerToClientEvents } from '../protocol/events.js';
import type { Broadcaster } from '../ports/broadcaster.js';
import type { Metrics } from '../metrics.js';
import { channelRoom, userRoom } from './rooms.js';
import type { IoServer } from './types.js';

/** The Broadcaster port over Socket.IO rooms; the adapter carries it to the other instances. */
export class SocketIoBroadcaster implements Broadcaster {
  constructor(
    private readonly io: IoServer,
    private readonly metrics?: Metrics,
  ) {}

  toChannel<E extends keyof ServerToClientEvents>(channelId: string, event: E, ...args: Parameters<ServerToClientEvents[E]>): void {
    const room = channelRoom(channelId);
    if (event === 'new_message' && this.metrics) {
      this.metrics.messagesDelivered.inc(this.io.of('/').adapter.rooms.get(room)?.size ?? 0);
    }
    this.io.to(room).emit(event, ...args);
  }

  evict(channelId: string, userId: string): void {
    this.io.in(userRoom(userId)).socketsLeave(channelRoom(channelId));
  }
}
