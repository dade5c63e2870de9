import type { PresenceUser } from 'switchboard-client/protocol';
import type { Presence } from '../ports/presence.js';

interface Entry {
  /** When the list was read from presence. */
  at: number;
  /** userId → connections, with this instance's changes since applied. */
  users: Map<string, number>;
  /** `users` sorted by userId; rebuilt after a change. */
  sorted: PresenceUser[] | undefined;
}

/** Past this many channels, expired lists are dropped on the next read. */
const SWEEP_AT = 1000;

const byUserId = (a: PresenceUser, b: PresenceUser) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);

/**
 * The presence lists of this instance's readers, each reused for `ttlMs` after it was read, so that
 * repeated reads of a large channel cost the backend one list per channel and interval. Reads of one
 * channel in flight at once share one backend call. This instance's own joins and leaves are applied
 * to a kept list at once (its readers see them as before); the other instances' show after `ttlMs`.
 * With `ttlMs` 0 every read goes to the backend (reads in flight at once still share a call), and the
 * list is kept only for its size (`lastSize`).
 */
export class PresenceView {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<PresenceUser[]>>();

  constructor(
    private readonly presence: Pick<Presence, 'list'>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The channel's users with at least one connection, sorted by userId. */
  list(channelId: string): Promise<PresenceUser[]> {
    const entry = this.entries.get(channelId);
    if (entry && this.now() - entry.at < this.ttlMs) return Promise.resolve(this.sortedOf(entry));
    return this.loading.get(channelId) ?? this.load(channelId);
  }

  /** How many users the channel had when last read (its list may have expired); undefined if never read. */
  lastSize(channelId: string): number | undefined {
    return this.entries.get(channelId)?.users.size;
  }

  /** A connection of this instance joined (+1) or left (-1) the channel: a kept list follows at once. */
  applyLocal(channelId: string, userId: string, delta: 1 | -1): void {
    const entry = this.entries.get(channelId);
    if (!entry) return;
    const n = (entry.users.get(userId) ?? 0) + delta;
    if (n > 0) entry.users.set(userId, n);
    else entry.users.delete(userId);
    entry.sorted = undefined;
  }

  private load(channelId: string): Promise<PresenceUser[]> {
    const loading = this.presence.list(channelId).then(
      (users) => {
        this.loading.delete(channelId);
        if (this.entries.size >= SWEEP_AT) this.sweep();
        this.entries.set(channelId, { at: this.now(), users: new Map(users.map((u) => [u.userId, u.connections])), sorted: users });
        return users;
      },
      (err: unknown) => {
        this.loading.delete(channelId);
        throw err;
      },
    );
    this.loading.set(channelId, loading);
    return loading;
  }

  private sortedOf(entry: Entry): PresenceUser[] {
    entry.sorted ??= [...entry.users].map(([userId, connections]) => ({ userId, connections })).sort(byUserId);
    return entry.sorted;
  }

  private sweep(): void {
    const t = this.now();
    for (const [channelId, e] of this.entries) if (t - e.at >= this.ttlMs) this.entries.delete(channelId);
  }
}
