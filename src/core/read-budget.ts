import { ErrorCode, SwitchboardError } from 'switchboard-client/protocol';
import type { RateLimiter } from '../ports/rate-limiter.js';

/** What a `history` page costs: 1 point per 10 messages of its limit (a page of 200 costs 20, of 10 costs 1). */
export const historyCost = (limit: number): number => Math.max(1, Math.ceil(limit / 10));

/** What a `presence` read costs: 1 point, plus 1 per 100 users of the channel. */
export const presenceCost = (users: number): number => 1 + Math.floor(users / 100);

/**
 * The read budget of each user: reads spend points from one limiter (RATE_LIMIT_READS) by what they
 * cost, so that a few large reads use it up as fast as many small ones.
 */
export class ReadBudget {
  /** @param points the budget of one window: a read never costs more than all of it, or it could never pass. */
  constructor(
    private readonly limiter: RateLimiter,
    private readonly points: number,
  ) {}

  /** Spends `points` of the user's budget; RATE_LIMITED, with `retryAfterMs`, when they are not left. */
  async spend(userId: string, points: number): Promise<void> {
    const decision = await this.limiter.consume(userId, Math.min(points, this.points));
    if (!decision.allowed) {
      throw new SwitchboardError(ErrorCode.RATE_LIMITED, 'Too many reads (history, presence); slow down', { retryAfterMs: decision.retryAfterMs });
    }
  }
}
