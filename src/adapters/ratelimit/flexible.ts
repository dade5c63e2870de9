import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RateSpec } from '../../config.js';
import type { RateDecision, RateLimiter } from '../../ports/rate-limiter.js';

/**
 * rate-limiter-flexible's Redis increment with the window in milliseconds (PX) instead of seconds (EX).
 * RateLimiterRedis passes its script `floor(duration)` as ARGV[2], and under one second skips the
 * script and never expires the key; so its `duration` is set to the window in milliseconds, which
 * reaches ARGV[2] unchanged. The library defines the script on the Redis client under one name
 * (`rlflxIncr`), so every limiter sharing a client must use this same one.
 */
const INCR_PX = `redis.call('set', KEYS[1], 0, 'PX', ARGV[2], 'NX')
local consumed = redis.call('incrby', KEYS[1], ARGV[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('pexpire', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {consumed, ttl}`;

export interface FlexibleRateLimiterOptions {
  /** Part of every key, so that limiters sharing Redis count apart. */
  name: string;
  /** Counts cluster-wide in this Redis; counts in memory when undefined. */
  redis?: Redis | undefined;
  /** Prefix of every key. @default "sb:rl:" */
  keyPrefix?: string;
  /** Whether Redis answers; while it does not, counting is local at once instead of after each command fails. @default () => true */
  linkUp?: () => boolean;
}

/** rate-limiter-flexible behind the RateLimiter port: in memory, or in Redis with a local fallback. */
export class FlexibleRateLimiter implements RateLimiter {
  private readonly limiter: RateLimiterAbstract;
  private readonly local: RateLimiterMemory;
  private readonly linkUp: () => boolean;

  constructor(spec: RateSpec, options: FlexibleRateLimiterOptions) {
    const keyPrefix = `${options.keyPrefix ?? 'sb:rl:'}${options.name}`;
    // The memory store keeps fractional seconds exactly (it expires with a timer in milliseconds).
    this.local = new RateLimiterMemory({ points: spec.points, duration: spec.durationMs / 1000, keyPrefix });
    this.linkUp = options.linkUp ?? (() => true);
    // While Redis is unreachable each instance counts on its own (insurance) rather than failing.
    this.limiter = options.redis
      ? new RateLimiterRedis({
          points: spec.points,
          duration: spec.durationMs,
          keyPrefix,
          storeClient: options.redis,
          useRedisPackage: false,
          customIncrTtlLuaScript: INCR_PX,
          insuranceLimiter: this.local,
        })
      : this.local;
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
