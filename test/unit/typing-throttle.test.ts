import { describe, expect, it } from 'vitest';
import { TypingThrottle } from '../../src/core/typing-throttle.js';

const clock = (start = 1_000_000) => {
  const c = { t: start, now: () => c.t };
  return c;
};

describe('TypingThrottle', () => {
  it('lets one signal per user and channel through per interval', () => {
    const c = clock();
    const t = new TypingThrottle(1000, c.now);
    expect(t.allow('u', 'general')).toBe(true);
    expect(t.allow('u', 'general')).toBe(false);
    c.t += 999;
    expect(t.allow('u', 'general')).toBe(false);
    c.t += 1;
    expect(t.allow('u', 'general')).toBe(true);
    expect(t.allow('u', 'general')).toBe(false);
  });

  it('a dropped signal does not extend the window', () => {
    const c = clock();
    const t = new TypingThrottle(1000, c.now);
    expect(t.allow('u', 'ch')).toBe(true);
    c.t += 600;
    expect(t.allow('u', 'ch')).toBe(false);
    c.t += 400;
    expect(t.allow('u', 'ch')).toBe(true);
  });

  it('users and channels are counted separately, and keys cannot collide', () => {
    const c = clock();
    const t = new TypingThrottle(1000, c.now);
    expect(t.allow('u1', 'a')).toBe(true);
    expect(t.allow('u2', 'a')).toBe(true);
    expect(t.allow('u1', 'b')).toBe(true);
    expect(t.allow('u1', 'a')).toBe(false);
    // "a:b" + "c" must not be the same key as "a" + "b:c".
    expect(t.allow('x', 'a:b')).toBe(true);
    expect(t.allow('b:x', 'a')).toBe(true);
    expect(t.allow('__proto__', 'constructor')).toBe(true);
    expect(t.allow('__proto__', 'constructor')).toBe(false);
  });

  it('forgets entries older than the interval, so memory follows the users typing now', () => {
    const c = clock();
    const t = new TypingThrottle(1000, c.now, 10);
    for (let i = 0; i < 9; i++) t.allow(`u${i}`, 'ch');
    expect(t.size).toBe(9);
    c.t += 1000;
    t.allow('fresh', 'ch'); // the 10th call sweeps
    expect(t.size).toBe(1);
  });
});
