/** `retryAfterMs`: whole milliseconds until the key's window closes, at least 1. */
export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * A fixed-window counter per key. A key's first `consume` opens a window of the configured duration
 * (windows start per key, not on the clock); up to the configured points are allowed in it, and every
 * consume that would pass them is refused with `retryAfterMs`, the time until the window closes. As
 * windows are fixed, a key can pass up to twice the points around the end of one window and the start
 * of the next.
 *
 * With a shared backend (Redis) the count is cluster-wide; when that backend is unreachable an
 * implementation falls back to counting on this instance rather than failing open or closed for
 * everyone.
 */
export interface RateLimiter {
  /** Counts `points` (1 by default) against `key`. Resolves with the decision; never rejects for a backend outage. */
  consume(key: string, points?: number): Promise<RateDecision>;
}
