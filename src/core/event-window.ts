export type EventVerdict =
  /** Handle the event. */
  | { kind: 'pass' }
  /** Answer RATE_LIMITED and do not handle it. */
  | { kind: 'refuse'; retryAfterMs: number }
  /** The client sends at more than twice the limit: end the connection. */
  | { kind: 'drop' };

/**
 * Events of one connection: `points` per fixed window of `durationMs`, the first window starting when
 * the counter is made and each later one at the first event after the previous window ended. Over
 * `points` an event is refused; over twice `points` the connection is to be dropped, since a client
 * that ignores its refusals would otherwise cost the server a refusal per event.
 *
 * Synchronous and per connection, unlike the RateLimiter port: it runs on every packet before the
 * packet is handled, so it must never wait and is never shared.
 */
export class EventWindow {
  private windowStart: number;
  private count = 0;

  constructor(
    private readonly spec: { points: number; durationMs: number },
    private readonly now: () => number = Date.now,
  ) {
    this.windowStart = now();
  }

  take(): EventVerdict {
    const t = this.now();
    if (t - this.windowStart >= this.spec.durationMs) {
      this.windowStart = t;
      this.count = 0;
    }
    this.count++;
    if (this.count <= this.spec.points) return { kind: 'pass' };
    if (this.count > this.spec.points * 2) return { kind: 'drop' };
    return { kind: 'refuse', retryAfterMs: Math.max(1, this.spec.durationMs - (t - this.windowStart)) };
  }
}
