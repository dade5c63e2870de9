import type { ServerToClientEvents } from 'switchboard-client/protocol';

type EventArgs<E extends keyof ServerToClientEvents> = Parameters<ServerToClientEvents[E]>;

/**
 * Delivers events to the members of a channel on every instance (at most once: a broadcast made
 * while the link between instances is down is lost, and the store plus catch-up repair that).
 */
export interface Broadcaster {
  toChannel<E extends keyof ServerToClientEvents>(channelId: string, event: E, ...args: EventArgs<E>): void;
  /** Removes every socket of `userId`, on every instance, from the channel's room. */
  evict(channelId: string, userId: string): void;
}
