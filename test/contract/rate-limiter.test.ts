import { beforeEach, describe, expect, it } from 'vitest';
import { FlexibleRateLimiter, type FlexibleRateLimiterOptions } from '../../src/adapters/ratelimit/flexible.js';
import type { RateSpec } from '../../src/config.js';
import type { RateDecision, RateLimiter } from '../../src/ports/rate-limiter.js';
import { sleep } from '../helpers/ports.js';
import { memoryKind, redisKind, uniquePrefix, useBackend, type BackendKind } from './backends.js';

type OpenOptions = { spec: RateSpec } & Pick<FlexibleRateLimiterOptions, 'keyPrefix' | 'linkUp'>;

const KINDS: BackendKind<RateLimiter, OpenOptions>[] = [
  memoryKind(({ spec, ...options }) => new FlexibleRateLimiter(spec, { name: 'contract', ...options })),
  redisKind((redis, { spec, ...options }) => new FlexibleRateLimiter(spec, { name: 'contract', redis, ...options })),
];

const allowed: RateDecision = { allowed: true };

/** `n` consumes of `key` at once. */
const burst = (limiter: RateLimiter, key: string, n: number) => Promise.all(Array.from({ length: n }, () => limiter.consume(key)));

/** The one refusal among `decisions`; its retryAfterMs is a positive whole number of milliseconds. */
function refusal(decisions: RateDecision[]): { allowed: false; retryAfterMs: number } {
  const refused = decisions.filter((d) => !d.allowed);
  expect(refused).toHaveLength(1);
  const { retryAfterMs } = refused[0]!;
  expect(Number.isInteger(retryAfterMs)).toBe(true);
  expect(retryAfterMs).toBeGreaterThan(0);
  return refused[0]!;
}

describe.each(KINDS)('RateLimiter contract on $name', (kind) => {
  const backend = useBackend(kind);
  let keyPrefix: string;
  beforeEach(() => {
    keyPrefix = uniquePrefix();
  });
  /** One more instance's limiter; the limiters of one test share their keys. */
  const open = (spec: RateSpec, linkUp?: () => boolean) => backend().open({ spec, keyPrefix, ...(linkUp ? { linkUp } : {}) });

  it('allows `points` per window, then refuses with the time until the window closes', async () => {
    const limiter = await open({ points: 5, durationMs: 10_000 });
    expect(await burst(limiter, 'k', 5)).toEqual(Array(5).fill(allowed));
    const refused = refusal([await limiter.consume('k')]);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(10_000);
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
    { points: 2, durationMs: 1001 },
  ])('a window of $durationMs ms lasts $durationMs ms, not a whole number of seconds', async (spec) => {
    const limiter = await open(spec);
    const refused = refusal(await burst(limiter, 'k', spec.points + 1));
    expect(refused.retryAfterMs).toBeLessThanOrEqual(spec.durationMs);
    await sleep(refused.retryAfterMs + 100);
    expect(await limiter.consume('k')).toEqual(allowed);
  });

  if (!kind.shared) return;

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

  describe('with its server killed', () => {
    const broken = useBackend(kind);

    it('counts on this instance instead of failing', async () => {
      const limiter = await broken().open({ spec: { points: 3, durationMs: 10_000 }, keyPrefix });
      expect(await limiter.consume('before')).toEqual(allowed);
      await broken().breakBackend!();
      const decisions: RateDecision[] = [];
      for (let i = 0; i < 4; i++) decisions.push(await limiter.consume('k'));
      expect(decisions.slice(0, 3)).toEqual(Array(3).fill(allowed));
      expect(refusal(decisions).retryAfterMs).toBeLessThanOrEqual(10_000);
    });
  });
});
