import type { ServerToClientEvents } from 'switchboard-client/protocol';

export type ServerEvent = keyof ServerToClientEvents;
export type EventArgs<E extends ServerEvent> = Parameters<ServerToClientEvents[E]>;

/**
 * Every event the server sends to a client goes through this port; connections are named by the id
 * the transport gave them.
 *
 * - **At most once across instances.** A broadcast made while the link between instances is down
 *   reaches this instance's connections at once (it never waits for the link) and is lost for the
 *   others; the store and the join's catch-up repair that, and `resync` (sent to everyone when the
 *   link is back) tells clients to ask.
 * - **Messages keep their order.** The `new_message`s one instance broadcasts to a channel reach each
 *   member in the order given. They are held until the end of the event-loop turn, so that a channel's
 *   messages of one turn travel together (one `new_messages` frame for the clients that asked for it).
 * - `user_typing` is volatile: dropped rather than queued for a connection that cannot take it now.
 */
export interface Broadcaster {
  /** Every connection in the channel, on every instance. */
  toChannel<E extends ServerEvent>(channelId: string, event: E, ...args: EventArgs<E>): void;
  /** Every connection in the channel, on every instance, except `connectionId`. */
  toOthers<E extends ServerEvent>(connectionId: string, channelId: string, event: E, ...args: EventArgs<E>): void;
  /** One connection of this instance; nothing when it has gone. */
  toConnection<E extends ServerEvent>(connectionId: string, event: E, ...args: EventArgs<E>): void;
  /** Every connection, on every instance. */
  toEveryone<E extends ServerEvent>(event: E, ...args: EventArgs<E>): void;
}
