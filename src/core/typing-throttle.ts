/**
 * At most one typing signal per (user, channel) per interval on this instance. Memory is bounded by
 * the users typing within the last interval: older entries are swept on every `sweepEvery` calls.
 */
export class TypingThrottle {
  private readonly last = new Map<string, number>();
  private calls = 0;

  constructor(
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
    private readonly sweepEvery = 1000,
  ) {}

  /** True when the signal may pass; records it. */
  allow(userId: string, channelId: string): boolean {
    const t = this.now();
    if (++this.calls % this.sweepEvery === 0) this.sweep(t);
    const key = `${channelId}\u0000${userId}`;
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev < this.intervalMs) return false;
    this.last.set(key, t);
    return true;
  }

  get size(): number {
    return this.last.size;
  }

  private sweep(t: number): void {
    for (const [k, v] of this.last) if (t - v >= this.intervalMs) this.last.delete(k);
  }
}
