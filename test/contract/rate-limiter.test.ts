import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FlexibleRateLimiter, type FlexibleRateLimiterOptions } from '../../src/adapters/ratelimit/flexible.js';
import type { RateSpec } from '../../src/config.js';
import type { RateDecision, RateLimiter } from '../../src/ports/rate-limiter.js';
import { sleep } from '../helpers/ports.js';
import { redisFixture, uniquePrefix } from './redis-fixture.js';

type OpenOptions = Pick<FlexibleRateLimiterOptions, 'keyPrefix' | 'linkUp'>;

interface LimiterBackend {
  /** The limiter of one more instance on this backend. */
  open(spec: RateSpec, options: OpenOptions): Promise<RateLimiter>;
  /** Makes the backend unreachable (only where there is one). */
  breakBackend?(): Promise<void>;
  close(): Promise<void>;
}

interface LimiterSuite {
  name: string;
  backend(): Promise<LimiterBackend>;
  /** Limiters of several instances count together. */
  shared: boolean;
}

const memory: LimiterSuite = {
  name: 'memory',
  shared: false,
  backend: () =>
    Promise.resolve({
      open: (spec, options) => Promise.resolve(new FlexibleRateLimiter(spec, { name: 'contract', ...options })),
      close: () => Promise.resolve(),
    }),
};

const redis: LimiterSuite = {
  name: 'redis',
  shared: true,
  async backend() {
    const fixture = await redisFixture();
    return {
      open: async (spec, options) => new FlexibleRateLimiter(spec, { name: 'contract', redis: await fixture.link(), ...options }),
      breakBackend: () => fixture.kill(),
      close: () => fixture.close(),
    };
  },
};

const allowed: RateDecision = { allowed: true };

/** `n` consumes of `key` at once. */
const burst = (limiter: RateLimiter, key: string, n: number) => Promise.all(Array.from({ length: n }, () => limiter.consume(key)));

/** The one refusal among `decisions`. */
function refusal(decisions: RateDecision[]): { allowed: false; retryAfterMs: number } {
  const refused = decisions.filter((d) => !d.allowed);
  expect(refused).toHaveLength(1);
  return refused[0]!;
}

function rateLimiterContract(suite: LimiterSuite): void {
  describe(`RateLimiter contract on ${suite.name}`, () => {
    let backend: LimiterBackend;
    let keyPrefix: string;
    beforeAll(async () => {
      backend = await suite.backend();
    });
    afterAll(() => backend?.close());
    beforeEach(() => {
      keyPrefix = uniquePrefix();
    });
    const open = (spec: RateSpec, linkUp?: () => boolean) => backend.open(spec, { keyPrefix, ...(linkUp ? { linkUp } : {}) });

    it('allows `points` per window, then refuses with the time until the window closes', async () => {
      const limiter = await open({ points: 5, durationMs: 10_000 });
      expect(await burst(limiter, 'k', 5)).toEqual(Array(5).fill(allowed));
      const refused = await limiter.consume('k');
      expect(refused.allowed).toBe(false);
      const retryAfterMs = (refused as { retryAfterMs: number }).retryAfterMs;
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(10_000);
      // Each key has its own window.
      expect(await limiter.consume('other')).toEqual(allowed);
    });

    it('counts the points a consume asks for', async () => {
      const limiter = await open({ points: 5, durationMs: 10_000 });
      expect(await limiter.consume('k', 5)).toEqual(allowed);
      expect((await limiter.consume('k')).allowed).toBe(false);
      expect((await limiter.consume('big', 6)).allowed).toBe(false);
    });

    it.each([
      { points: 10, durationMs: 500 },
      { points: 2, durationMs: 1500 },
    ])('a window of $durationMs ms lasts $durationMs ms, not a whole number of seconds', async (spec) => {
      const limiter = await open(spec);
      const refused = refusal(await burst(limiter, 'k', spec.points + 1));
      expect(refused.retryAfterMs).toBeLessThanOrEqual(spec.durationMs);
      await sleep(refused.retryAfterMs + 100);
      expect(await limiter.consume('k')).toEqual(allowed);
    });

    if (suite.shared) {
      it('limiters of several instances count together', async () => {
        const spec = { points: 5, durationMs: 10_000 };
        const [a, b] = [await open(spec), await open(spec)];
        expect([...(await burst(a, 'k', 3)), ...(await burst(b, 'k', 2))]).toEqual(Array(5).fill(allowed));
        expect((await a.consume('k')).allowed).toBe(false);
        expect((await b.consume('k')).allowed).toBe(false);
      });

      it('while the link is reported down, counts on this instance and leaves the shared count alone', async () => {
        const spec = { points: 3, durationMs: 10_000 };
        const cut = await open(spec, () => false);
        const linked = await open(spec);
        expect(await burst(cut, 'k', 3)).toEqual(Array(3).fill(allowed));
        expect((await cut.consume('k')).allowed).toBe(false);
        expect(await burst(linked, 'k', 3)).toEqual(Array(3).fill(allowed));
        expect((await linked.consume('k')).allowed).toBe(false);
      });
    }
  });

  if (!suite.shared) return;
  describe(`RateLimiter contract on ${suite.name}, backend unreachable`, () => {
    let backend: LimiterBackend;
    beforeAll(async () => {
      backend = await suite.backend();
    });
    afterAll(() => backend?.close());

    it('counts on this instance instead of failing', async () => {
      const limiter = await backend.open({ points: 3, durationMs: 10_000 }, { keyPrefix: uniquePrefix() });
      expect(await limiter.consume('before')).toEqual(allowed);
      await backend.breakBackend!();
      const decisions: RateDecision[] = [];
      for (let i = 0; i < 4; i++) decisions.push(await limiter.consume('k'));
      expect(decisions.slice(0, 3)).toEqual(Array(3).fill(allowed));
      expect(refusal(decisions).retryAfterMs).toBeGreaterThan(0);
    });
  });
}

rateLimiterContract(memory);
rateLimiterContract(redis);
