/**
 * Which connections are in which channel. A connection in a channel receives the channel's
 * broadcasts (`Broadcaster.toChannel`) until it leaves it, is evicted or disconnects.
 *
 * - `enter`, `leave`, `isJoined` and `joinedCount` concern connections of this instance; a connection
 *   that has gone is in no channel, and entering with it does nothing.
 * - `evict` reaches every instance (only this one while the link between instances is down; it never
 *   waits for the link).
 * - Every departure of a connection of this instance from a channel is reported once to the `onLeft`
 *   listeners, whatever its cause: `leave`, a disconnect, or an eviction from any instance.
 */
export interface Rooms {
  /**
   * Resolves once the channel's broadcasts made on this instance reach the connection; those made on
   * other instances may take a moment longer, when the channel has no other member here yet (the
   * instance subscribes to it then). Entering twice is entering once.
   */
  enter(connectionId: string, channelId: string): Promise<void>;
  leave(connectionId: string, channelId: string): Promise<void>;
  isJoined(connectionId: string, channelId: string): boolean;
  /** How many channels the connection is in. */
  joinedCount(connectionId: string): number;
  /** Takes every connection of `userId` out of the channel. */
  evict(channelId: string, userId: string): void;
  onLeft(listener: (connectionId: string, channelId: string) => void): void;
}
