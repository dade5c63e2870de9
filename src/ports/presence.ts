import type { PresenceUser } from 'switchboard-client/protocol';

/**
 * Who is connected to which channel, counted in connections (sockets), across every instance that
 * shares the backend.
 *
 * - `add`/`remove` are called once per socket join/leave on this instance; the counts they keep are
 *   this instance's share, and the answers they give are cluster-wide.
 * - An instance that dies without calling `remove` has its share expire (Redis: within the heartbeat
 *   TTL, 15 s by default); `list` never counts an expired instance.
 * - When the backend is unreachable the calls reject; the caller decides what to degrade. The
 *   connections added and removed meanwhile still count: when the backend is back (Redis: even
 *   restarted empty), this instance's share is what its calls said.
 */
export interface Presence {
  /** Announces this instance before it serves anyone (Redis: the first heartbeat). Called once. */
  start(): Promise<void>;
  /** Resolves true when this was the user's first connection in the channel, cluster-wide. */
  add(channelId: string, userId: string): Promise<boolean>;
  /**
   * Resolves true when this was the user's last connection in the channel, cluster-wide; false, with
   * nothing changed, when this instance has no connection of the user there.
   */
  remove(channelId: string, userId: string): Promise<boolean>;
  /** Users with at least one connection in the channel, sorted by userId. */
  list(channelId: string): Promise<PresenceUser[]>;
  /** Stops heartbeats and removes this instance's share. */
  close(): Promise<void>;
}
