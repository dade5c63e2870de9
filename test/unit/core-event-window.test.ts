import { describe, expect, it } from 'vitest';
import { EventWindow } from '../../src/core/event-window.js';

const clock = (start = 1_000_000) => {
  const c = { t: start, now: () => c.t };
  return c;
};
const verdicts = (w: EventWindow, n: number) => Array.from({ length: n }, () => w.take().kind);

describe('EventWindow', () => {
  it('passes `points` events per window, refuses the next as many, then says drop', () => {
    const w = new EventWindow({ points: 3, durationMs: 1000 }, clock().now);
    expect(verdicts(w, 7)).toEqual(['pass', 'pass', 'pass', 'refuse', 'refuse', 'refuse', 'drop']);
  });

  it('a refusal says how long until the window ends', () => {
    const c = clock();
    const w = new EventWindow({ points: 1, durationMs: 1000 }, c.now);
    c.t += 300;
    w.take();
    expect(w.take()).toEqual({ kind: 'refuse', retryAfterMs: 700 });
    c.t += 699;
    expect(w.take()).toEqual({ kind: 'drop' });
  });

  it('the count starts again when the window has passed, at the first event after it', () => {
    const c = clock();
    const w = new EventWindow({ points: 2, durationMs: 1000 }, c.now);
    expect(verdicts(w, 3)).toEqual(['pass', 'pass', 'refuse']);
    c.t += 1000;
    expect(verdicts(w, 3)).toEqual(['pass', 'pass', 'refuse']);
    c.t += 999;
    expect(w.take()).toEqual({ kind: 'refuse', retryAfterMs: 1 });
  });
});
