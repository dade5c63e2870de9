export type PresenceNotice = 'user_joined' | 'user_left';

interface Entry {
  /** When the last notice went out. */
  sentAt: number;
  sent: PresenceNotice;
  /** A different notice that came within the interval: told when it ends, unless undone by then. */
  pending: { kind: PresenceNotice; send: () => void } | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * At most one `user_joined` / `user_left` per (user, channel) per interval, on this instance: a user
 * joining and leaving in a loop costs every member one notice per interval, not two per cycle. A
 * notice within the interval of the last one waits for the interval's end and goes out then only if
 * it still says something new (a leave undone by a join within the interval is never told), so the
 * members' view ends where the user's state is. Memory is bounded by the pairs of the last interval.
 */
export class NoticeDamper {
  private readonly entries = new Map<string, Entry>();
  private calls = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
    private readonly sweepEvery = 1000,
  ) {}

  /** Tells `kind` for the user in the channel through `send`, now or at the end of the interval. */
  tell(channelId: string, userId: string, kind: PresenceNotice, send: () => void): void {
    const t = this.now();
    if (++this.calls % this.sweepEvery === 0) this.sweep(t);
    const key = `${channelId}\u0000${userId}`;
    const entry = this.entries.get(key);
    if (!entry || t - entry.sentAt >= this.intervalMs) {
      if (entry) clearTimeout(entry.timer);
      send();
      this.entries.set(key, { sentAt: t, sent: kind, pending: undefined, timer: undefined });
      return;
    }
    entry.pending = kind === entry.sent ? undefined : { kind, send };
    if (entry.pending && !entry.timer) {
      entry.timer = setTimeout(() => this.flush(entry), entry.sentAt + this.intervalMs - t);
      entry.timer.unref();
    }
  }

  /** Drops every notice still waiting (the instance is closing). */
  close(): void {
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
  }

  private flush(entry: Entry): void {
    entry.timer = undefined;
    if (!entry.pending) return;
    entry.pending.send();
    entry.sent = entry.pending.kind;
    entry.sentAt = this.now();
    entry.pending = undefined;
  }

  private sweep(t: number): void {
    for (const [k, e] of this.entries) if (!e.pending && t - e.sentAt >= this.intervalMs) this.entries.delete(k);
  }
}
