export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * A token bucket per key. With a shared backend (Redis) the count is cluster-wide; when that backend
 * is unreachable an implementation falls back to counting on this instance rather than failing open
 * or closed for everyone.
 */
export interface RateLimiter {
  consume(key: string, points?: number): Promise<RateDecision>;
}
