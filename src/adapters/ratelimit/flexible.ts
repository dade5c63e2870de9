import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RateSpec } from '../../config.js';
import type { RateDecision, RateLimiter } from '../../ports/rate-limiter.js';

/** rate-limiter-flexible behind the RateLimiter port: in memory, or in Redis with a local fallback. */
export class FlexibleRateLimiter implements RateLimiter {
  private readonly limiter: RateLimiterAbstract;
  private readonly local: RateLimiterMemory;
  private readonly linkUp: () => boolean;

  /**
   * @param options.linkUp - whether Redis answers; while it does not, counting is local at once
   *   instead of after each command's timeout.
   */
  constructor(spec: RateSpec, options: { name: string; redis?: Redis | undefined; keyPrefix?: string; linkUp?: () => boolean }) {
    const base = {
      points: spec.points,
      duration: Math.max(1, Math.ceil(spec.durationMs / 1000)),
      keyPrefix: `${options.keyPrefix ?? 'sb:rl:'}${options.name}`,
    };
    const memory = new RateLimiterMemory(base);
    this.local = memory;
    this.linkUp = options.linkUp ?? (() => true);
    // While Redis is unreachable each instance counts on its own (insurance) rather than failing.
    this.limiter = options.redis
      ? new RateLimiterRedis({ ...base, storeClient: options.redis, useRedisPackage: false, insuranceLimiter: memory })
      : memory;
  }

  async consume(key: string, points = 1): Promise<RateDecision> {
    try {
      await (this.linkUp() ? this.limiter : this.local).consume(key, points);
      return { allowed: true };
    } catch (res) {
      if (res instanceof RateLimiterRes) return { allowed: false, retryAfterMs: Math.max(1, res.msBeforeNext) };
      throw res;
    }
  }
}
