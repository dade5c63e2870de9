import type { PresenceUser } from 'switchboard-client/protocol';
import type { Presence } from '../../ports/presence.js';

/** Presence for a single instance: plain counts in memory. */
export class MemoryPresence implements Presence {
  private readonly channels = new Map<string, Map<string, number>>();

  start(): Promise<void> {
    return Promise.resolve();
  }

  add(channelId: string, userId: string): Promise<boolean> {
    let users = this.channels.get(channelId);
    if (!users) this.channels.set(channelId, (users = new Map()));
    const n = (users.get(userId) ?? 0) + 1;
    users.set(userId, n);
    return Promise.resolve(n === 1);
  }

  remove(channelId: string, userId: string): Promise<boolean> {
    const users = this.channels.get(channelId);
    const n = users?.get(userId);
    if (!users || n === undefined) return Promise.resolve(false);
    if (n > 1) {
      users.set(userId, n - 1);
      return Promise.resolve(false);
    }
    users.delete(userId);
    if (users.size === 0) this.channels.delete(channelId);
    return Promise.resolve(true);
  }

  list(channelId: string): Promise<PresenceUser[]> {
    const users = this.channels.get(channelId);
    const out = users ? [...users].map(([userId, connections]) => ({ userId, connections })) : [];
    out.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    this.channels.clear();
    return Promise.resolve();
  }
}
