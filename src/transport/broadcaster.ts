import type { Message } from 'switchboard-client/protocol';
import type { Broadcaster, EventArgs, ServerEvent } from '../ports/broadcaster.js';
import type { Metrics } from '../metrics.js';
import { batchRoom, channelRoom, plainRoom } from './rooms.js';
import type { IoServer } from './types.js';

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

/** Events dropped rather than queued for a connection that cannot take them now. */
const VOLATILE: ReadonlySet<ServerEvent> = new Set<ServerEvent>(['user_typing']);

/** The two things an event can be sent through: a socket, or a broadcast to rooms. */
interface Emitter {
  readonly volatile: Emitter;
  emit<E extends ServerEvent>(event: E, ...args: EventArgs<E>): boolean;
}

/**
 * The Broadcaster port over Socket.IO; the adapter carries broadcasts to the other instances. This is
 * the one place in the server that emits to clients.
 *
 * `new_message`s are coalesced: those stored in one event-loop turn are buffered per channel and
 * flushed together at the end of the turn (setImmediate, so a lone message waits for no timer). When a
 * channel has several, clients that asked for batching (the `batchRoom`) get them in one `new_messages`
 * frame and the others (the `plainRoom`) get one `new_message` each; a single message goes to the
 * whole room as a plain `new_message`. One frame per batch instead of one per message is what makes fan-out cheap
 * under load: the cost of a delivery is mostly the write to its socket (docs/performance.md).
 */
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

  toChannel<E extends ServerEvent>(channelId: string, event: E, ...args: EventArgs<E>): void {
    if (event === 'new_message') return this.queue(channelId, args[0] as Message);
    send(this.target.to(channelRoom(channelId)), event, args);
  }

  toOthers<E extends ServerEvent>(connectionId: string, channelId: string, event: E, ...args: EventArgs<E>): void {
    send(this.target.to(channelRoom(channelId)).except(connectionId), event, args);
  }

  toConnection<E extends ServerEvent>(connectionId: string, event: E, ...args: EventArgs<E>): void {
    const socket = this.io.of('/').sockets.get(connectionId);
    if (socket) send(socket, event, args);
  }

  toEveryone<E extends ServerEvent>(event: E, ...args: EventArgs<E>): void {
    send(this.target, event, args);
  }

  private queue(channelId: string, message: Message): void {
    const list = this.pending.get(channelId);
    if (list) list.push(message);
    else this.pending.set(channelId, [message]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
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

function send<E extends ServerEvent>(through: Emitter, event: E, args: EventArgs<E>): void {
  (VOLATILE.has(event) ? through.volatile : through).emit(event, ...args);
}
