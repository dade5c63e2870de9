import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, type PresenceUser } from 'switchboard-client/protocol';
import { historyCost, presenceCost } from '../../src/core/read-budget.js';
import { NoticeDamper, type PresenceNotice } from '../../src/core/notice-damper.js';
import { PresenceView } from '../../src/core/presence-view.js';
import { coreWorld, principal, settle, type CoreWorld } from './core-fakes.js';

const code = (p: Promise<unknown>) => p.then(
  () => 'resolved',
  (err: { code?: string }) => err.code,
);

describe('read costs', () => {
  it('a history page costs more the larger its limit; presence more the larger the channel', () => {
    expect([historyCost(1), historyCost(10), historyCost(50), historyCost(200)]).toEqual([1, 1, 5, 20]);
    expect([presenceCost(0), presenceCost(99), presenceCost(100), presenceCost(20_000)]).toEqual([1, 1, 2, 201]);
  });
});

describe('the read budget', () => {
  let w: CoreWorld;
  afterEach(() => w.close());

  it('history pages spend it by limit: 5 pages of 200, or 100 of 10, fit a budget of 100 points', async () => {
    w = await coreWorld({ reads: { points: 100, durationMs: 60_000 } });
    const big = principal('big-reader');
    for (let i = 0; i < 5; i++) await w.chat.messaging.history(big, { channelId: 'general', limit: 200 });
    const refused = w.chat.messaging.history(big, { channelId: 'general', limit: 200 });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.RATE_LIMITED });
    await expect(refused.catch((e: { retryAfterMs?: number }) => e.retryAfterMs)).resolves.toBeGreaterThan(0);
    const small = principal('small-reader');
    for (let i = 0; i < 100; i++) await w.chat.messaging.history(small, { channelId: 'general', limit: 10 });
    expect(await code(w.chat.messaging.history(small, { channelId: 'general', limit: 10 }))).toBe(ErrorCode.RATE_LIMITED);
    // Per user: another reader is not affected.
    expect(await code(w.chat.messaging.history(principal('other'), { channelId: 'general', limit: 200 }))).toBe('resolved');
  });

  it('presence spends it by the channel size; a read that costs more than a whole window costs one window', async () => {
    w = await coreWorld({ reads: { points: 10, durationMs: 60_000 }, presenceMaxUsers: 50 });
    for (let i = 0; i < 1500; i++) await w.presence.add('general', `u${String(i).padStart(4, '0')}`);
    const reader = principal('reader');
    // 1500 users cost 16 points, more than the window's 10: the first read spends all 10.
    expect(await code(w.chat.membership.presence(reader, 'general'))).toBe('resolved');
    expect(await code(w.chat.membership.presence(reader, 'general'))).toBe(ErrorCode.RATE_LIMITED);
    // A small channel costs 1.
    const other = principal('other');
    for (let i = 0; i < 10; i++) expect(await code(w.chat.membership.presence(other, 'random'))).toBe('resolved');
    expect(await code(w.chat.membership.presence(other, 'random'))).toBe(ErrorCode.RATE_LIMITED);
  });
});

describe('presence of a large channel', () => {
  let w: CoreWorld;
  afterEach(() => w.close());

  it('lists the first PRESENCE_MAX_USERS by userId, with the total and truncated: true; a small one answers {users} as before', async () => {
    w = await coreWorld({ presenceMaxUsers: 3 });
    for (const u of ['eve', 'bob', 'dan', 'ann', 'cat']) await w.presence.add('general', u);
    expect(await w.chat.membership.presence(principal('r'), 'general')).toEqual({
      users: [
        { userId: 'ann', connections: 1 },
        { userId: 'bob', connections: 1 },
        { userId: 'cat', connections: 1 },
      ],
      total: 5,
      truncated: true,
    });
    for (const u of ['ann', 'bob']) await w.presence.add('random', u);
    expect(await w.chat.membership.presence(principal('r'), 'random')).toEqual({
      users: [
        { userId: 'ann', connections: 1 },
        { userId: 'bob', connections: 1 },
      ],
    });
  });
});

describe('PresenceView: a short per-instance cache of presence lists', () => {
  const backend = (lists: Record<string, PresenceUser[]>) => {
    const calls: string[] = [];
    return { calls, list: async (channelId: string) => (calls.push(channelId), lists[channelId] ?? []) };
  };

  it('repeated reads within the TTL cost the backend one list; after it, one more', async () => {
    let t = 0;
    const b = backend({ big: [{ userId: 'a', connections: 1 }] });
    const view = new PresenceView(b, 1000, () => t);
    await Promise.all([view.list('big'), view.list('big'), view.list('big')]);
    for (let i = 0; i < 10; i++) await view.list('big');
    expect(b.calls).toEqual(['big']);
    t = 1000;
    await view.list('big');
    expect(b.calls).toEqual(['big', 'big']);
  });

  it("this instance's joins and leaves show at once in a kept list, in userId order", async () => {
    const b = backend({ ch: [{ userId: 'b', connections: 1 }] });
    const view = new PresenceView(b, 60_000);
    await view.list('ch');
    view.applyLocal('ch', 'a', 1);
    view.applyLocal('ch', 'b', 1);
    expect(await view.list('ch')).toEqual([
      { userId: 'a', connections: 1 },
      { userId: 'b', connections: 2 },
    ]);
    view.applyLocal('ch', 'a', -1);
    view.applyLocal('ch', 'b', -1);
    expect(await view.list('ch')).toEqual([{ userId: 'b', connections: 1 }]);
    expect(b.calls).toEqual(['ch']);
  });

  it('with a TTL of 0 every read goes to the backend; a failed read is not kept', async () => {
    const b = backend({});
    const view = new PresenceView(b, 0);
    await view.list('x');
    await view.list('x');
    expect(b.calls).toEqual(['x', 'x']);
    let fail = true;
    const flaky = new PresenceView({ list: async () => (fail ? Promise.reject(new Error('down')) : []) }, 60_000);
    await expect(flaky.list('x')).rejects.toThrow('down');
    fail = false;
    await expect(flaky.list('x')).resolves.toEqual([]);
  });
});

describe('NoticeDamper: at most one user_joined/user_left per user and channel per interval', () => {
  afterEach(() => vi.useRealTimers());

  it('100 join/leave cycles within an interval tell one notice, then the final state at its end', () => {
    vi.useFakeTimers();
    const damper = new NoticeDamper(1000);
    const told: PresenceNotice[] = [];
    for (let i = 0; i < 100; i++) {
      damper.tell('ch', 'flapper', 'user_joined', () => told.push('user_joined'));
      damper.tell('ch', 'flapper', 'user_left', () => told.push('user_left'));
    }
    expect(told).toEqual(['user_joined']);
    vi.advanceTimersByTime(1000);
    expect(told).toEqual(['user_joined', 'user_left']);
    vi.advanceTimersByTime(5000);
    expect(told).toEqual(['user_joined', 'user_left']);
  });

  it('a change undone within the interval is never told; other users and channels are apart', () => {
    vi.useFakeTimers();
    const damper = new NoticeDamper(1000);
    const told: string[] = [];
    damper.tell('ch', 'a', 'user_joined', () => told.push('a joined'));
    damper.tell('ch', 'a', 'user_left', () => told.push('a left'));
    damper.tell('ch', 'a', 'user_joined', () => told.push('a joined again'));
    damper.tell('ch', 'b', 'user_joined', () => told.push('b joined'));
    damper.tell('other', 'a', 'user_joined', () => told.push('a joined other'));
    vi.advanceTimersByTime(2000);
    expect(told).toEqual(['a joined', 'b joined', 'a joined other']);
    // After the interval a notice goes out at once again.
    damper.tell('ch', 'a', 'user_left', () => told.push('a left later'));
    expect(told.at(-1)).toBe('a left later');
  });

  it('close drops the notices still waiting', () => {
    vi.useFakeTimers();
    const damper = new NoticeDamper(1000);
    const told: string[] = [];
    damper.tell('ch', 'a', 'user_joined', () => told.push('joined'));
    damper.tell('ch', 'a', 'user_left', () => told.push('left'));
    damper.close();
    vi.advanceTimersByTime(2000);
    expect(told).toEqual(['joined']);
  });
});

describe('join/leave flapping in the core', () => {
  let w: CoreWorld;
  afterEach(() => w.close());

  it('members get at most one notice per interval of a user joining and leaving in a loop', async () => {
    w = await coreWorld({ noticeIntervalMs: 60_000 });
    const member = w.connect('member');
    await w.chat.membership.join(member, 'general');
    const flapper = w.connect('flapper');
    for (let i = 0; i < 100; i++) {
      await w.chat.membership.join(flapper, 'general');
      await w.chat.membership.leave(flapper, 'general');
      await settle();
    }
    const notices = w.broadcaster.sent.filter((s) => (s.event === 'user_joined' || s.event === 'user_left') && (s.payload as { userId: string }).userId === 'flapper');
    expect(notices.map((n) => n.event)).toEqual(['user_joined']);
    expect((await w.chat.membership.presence(member.principal, 'general')).users.map((u) => u.userId)).toEqual(['member']);
  });
});
