import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import { coreWorld, INSTANCE_ID, principal, settle, type CoreWorld } from './core-fakes.js';

let w: CoreWorld;
beforeEach(async () => {
  w = await coreWorld({ channelsPerConnection: 2 });
});
afterEach(() => w.close());

const code = (p: Promise<unknown>) => p.then(
  () => 'resolved',
  (err: { code?: string }) => err.code,
);

describe('join', () => {
  it('an unknown channel is FORBIDDEN like a private one without access; nothing is entered or sent', async () => {
    await w.store.inner.createChannel({ id: 'secret', name: 'secret', isPrivate: true });
    const s = w.connect('ann');
    expect(await code(w.chat.membership.join(s, 'nowhere'))).toBe(ErrorCode.FORBIDDEN);
    expect(await code(w.chat.membership.join(s, 'secret'))).toBe(ErrorCode.FORBIDDEN);
    expect(w.rooms.joinedCount(s.id)).toBe(0);
    expect(w.broadcaster.sent).toEqual([]);
  });

  it('a private channel opens to a token grant, a membership and an admin', async () => {
    await w.store.inner.createChannel({ id: 'secret', name: 'secret', isPrivate: true });
    await w.store.inner.addMember('secret', 'member');
    for (const who of [principal('granted', { channels: ['secret'] }), principal('member'), principal('root', { admin: true })]) {
      const s = w.connect(who);
      await w.chat.membership.join(s, 'secret');
      expect(w.rooms.isJoined(s.id, 'secret')).toBe(true);
    }
  });

  it('enters the room, answers with lastSeq and tells the joiner joined with the instance', async () => {
    await w.seed('general', 3);
    const s = w.connect('ann');
    expect(await w.chat.membership.join(s, 'general')).toEqual({ channelId: 'general', lastSeq: 3 });
    expect(w.rooms.isJoined(s.id, 'general')).toBe(true);
    expect(w.broadcaster.of('joined')).toEqual([
      { method: 'toConnection', connectionId: s.id, event: 'joined', payload: { channelId: 'general', lastSeq: 3, instance: INSTANCE_ID } },
    ]);
  });

  it('catch-up: sinceSeq gives what follows it, oldest first; at most 200, then hasMore', async () => {
    await w.seed('general', 205);
    const s = w.connect('ann');
    const few = await w.chat.membership.join(s, 'general', 202);
    expect(few.missed?.map((m) => m.seq)).toEqual([203, 204, 205]);
    expect(few).toMatchObject({ lastSeq: 205, hasMore: false });
    const many = await w.chat.membership.join(w.connect('bob'), 'general', 0);
    expect(many.missed?.map((m) => m.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(many).toMatchObject({ lastSeq: 205, hasMore: true });
  });

  it('user_joined reaches the others once per user: a second connection of the same user is not announced', async () => {
    const ann1 = w.connect('ann');
    const ann2 = w.connect('ann');
    const bob = w.connect('bob');
    await w.chat.membership.join(ann1, 'general');
    await w.chat.membership.join(ann2, 'general');
    await w.chat.membership.join(bob, 'general');
    const notices = w.broadcaster.of('user_joined');
    expect(notices.map((n) => [n.method, n.connectionId, n.channelId, (n.payload as { userId: string }).userId])).toEqual([
      ['toOthers', ann1.id, 'general', 'ann'],
      ['toOthers', bob.id, 'general', 'bob'],
    ]);
    expect((await w.chat.membership.presence(bob.principal, 'general')).users).toEqual([
      { userId: 'ann', connections: 2 },
      { userId: 'bob', connections: 1 },
    ]);
  });

  it('a connection joining the same channel twice is counted once', async () => {
    const s = w.connect('ann');
    await w.chat.membership.join(s, 'general');
    await w.chat.membership.join(s, 'general');
    expect((await w.chat.membership.presence(s.principal, 'general')).users).toEqual([{ userId: 'ann', connections: 1 }]);
    expect(w.broadcaster.of('user_joined')).toHaveLength(1);
  });

  it('a store failure during the catch-up answers UNAVAILABLE and leaves the room again', async () => {
    const s = w.connect('ann');
    await w.chat.membership.join(w.connect('bob'), 'general'); // the channel is known from now on
    w.store.shouldFail = true;
    expect(await code(w.chat.membership.join(s, 'general'))).toBe(ErrorCode.UNAVAILABLE);
    expect(w.rooms.isJoined(s.id, 'general')).toBe(false);
    expect(w.broadcaster.of('joined').map((j) => j.connectionId)).not.toContain(s.id);
  });

  it('over the channel limit a join is RATE_LIMITED with retryAfterMs; a channel already joined is not counted again', async () => {
    const s = w.connect('ann');
    await w.chat.membership.join(s, 'general');
    await w.chat.membership.join(s, 'random');
    await w.store.inner.createChannel({ id: 'third', name: 'third', isPrivate: false });
    await expect(w.chat.membership.join(s, 'third')).rejects.toMatchObject({ code: ErrorCode.RATE_LIMITED, retryAfterMs: 60_000 });
    expect(w.rooms.isJoined(s.id, 'third')).toBe(false);
    await expect(w.chat.membership.join(s, 'general')).resolves.toMatchObject({ channelId: 'general' });
  });

  it('joins in flight count against the channel limit: of 10 parallel joins with a limit of 5, exactly 5 succeed', async () => {
    const five = await coreWorld({ channelsPerConnection: 5 });
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `par-${i}`);
      for (const id of ids) await five.store.inner.createChannel({ id, name: id, isPrivate: false });
      const s = five.connect('ann');
      const outcomes = await Promise.all(ids.map((id) => code(five.chat.membership.join(s, id))));
      expect(outcomes.filter((o) => o === 'resolved')).toHaveLength(5);
      expect(outcomes.filter((o) => o === ErrorCode.RATE_LIMITED)).toHaveLength(5);
      expect(five.rooms.joinedCount(s.id)).toBe(5);
      // A failed join frees its slot: after leaving one, one more fits, and the limit holds again.
      const joined = ids.filter((id) => five.rooms.isJoined(s.id, id));
      const notJoined = ids.filter((id) => !five.rooms.isJoined(s.id, id));
      await five.chat.membership.leave(s, joined[0]!);
      const again = await Promise.all(notJoined.map((id) => code(five.chat.membership.join(s, id))));
      expect(again.filter((o) => o === 'resolved')).toHaveLength(1);
      expect(five.rooms.joinedCount(s.id)).toBe(5);
    } finally {
      await five.close();
    }
  });

  it('a join that fails (FORBIDDEN) frees the slot it held', async () => {
    const s = w.connect('ann');
    expect(await code(w.chat.membership.join(s, 'nowhere'))).toBe(ErrorCode.FORBIDDEN);
    await w.chat.membership.join(s, 'general');
    await expect(w.chat.membership.join(s, 'random')).resolves.toMatchObject({ channelId: 'random' });
  });

  it('a connection that disconnects while its join is answered leaves no presence behind', async () => {
    await w.chat.membership.join(w.connect('bob'), 'general');
    const s = w.connect('ann');
    const release = w.store.hold();
    const join = w.chat.membership.join(s, 'general');
    await settle();
    w.disconnect(s);
    release();
    await join;
    await settle();
    expect((await w.chat.membership.presence(s.principal, 'general')).users.map((u) => u.userId)).toEqual(['bob']);
    expect(w.broadcaster.of('user_joined').map((n) => (n.payload as { userId: string }).userId)).toEqual(['bob']);
  });

  it('when presence cannot answer, the join still succeeds and is announced: better twice than never', async () => {
    w.presence.shouldFail = true;
    const s = w.connect('ann');
    await w.chat.membership.join(s, 'general');
    expect(w.broadcaster.of('user_joined')).toHaveLength(1);
  });
});

describe('leave', () => {
  it('not joined: FORBIDDEN, nothing sent', async () => {
    const s = w.connect('ann');
    expect(await code(w.chat.membership.leave(s, 'general'))).toBe(ErrorCode.FORBIDDEN);
    expect(w.broadcaster.sent).toEqual([]);
  });

  it('leaves the room, tells the leaver left, and the others user_left on the user’s last connection only', async () => {
    const ann1 = w.connect('ann');
    const ann2 = w.connect('ann');
    await w.chat.membership.join(ann1, 'general');
    await w.chat.membership.join(ann2, 'general');
    expect(await w.chat.membership.leave(ann1, 'general')).toEqual({ channelId: 'general' });
    expect(w.rooms.isJoined(ann1.id, 'general')).toBe(false);
    expect(w.broadcaster.of('left')).toEqual([{ method: 'toConnection', connectionId: ann1.id, event: 'left', payload: { channelId: 'general' } }]);
    await settle();
    expect(w.broadcaster.of('user_left')).toEqual([]);
    await w.chat.membership.leave(ann2, 'general');
    await settle();
    expect(w.broadcaster.of('user_left')).toMatchObject([{ method: 'toChannel', channelId: 'general', payload: { userId: 'ann', channelId: 'general' } }]);
    expect((await w.chat.membership.presence(ann2.principal, 'general')).users).toEqual([]);
  });

  it('a disconnect is a departure from every channel: presence follows and user_left is sent once per channel', async () => {
    const s = w.connect('ann');
    await w.chat.membership.join(s, 'general');
    await w.chat.membership.join(s, 'random');
    w.disconnect(s);
    await settle();
    expect(w.broadcaster.of('user_left').map((n) => n.channelId).sort()).toEqual(['general', 'random']);
    expect((await w.chat.membership.presence(principal('bob'), 'general')).users).toEqual([]);
  });
});

describe('typing', () => {
  it('not joined: FORBIDDEN', () => {
    expect(() => w.chat.membership.typing(w.connect('ann'), 'general')).toThrow(expect.objectContaining({ code: ErrorCode.FORBIDDEN }));
  });

  it('relays user_typing to the others, at most once per user and channel per second; the rest are throttled', async () => {
    const ann = w.connect('ann');
    const bob = w.connect('bob');
    await w.chat.membership.join(ann, 'general');
    await w.chat.membership.join(bob, 'general');
    expect(w.chat.membership.typing(ann, 'general')).toEqual({});
    expect(w.chat.membership.typing(ann, 'general')).toEqual({ throttled: true });
    expect(w.chat.membership.typing(bob, 'general')).toEqual({});
    expect(w.broadcaster.of('user_typing')).toEqual([
      { method: 'toOthers', connectionId: ann.id, channelId: 'general', event: 'user_typing', payload: { userId: 'ann', channelId: 'general' } },
      { method: 'toOthers', connectionId: bob.id, channelId: 'general', event: 'user_typing', payload: { userId: 'bob', channelId: 'general' } },
    ]);
  });
});

describe('presence', () => {
  it('needs access to the channel, and is UNAVAILABLE while presence cannot answer', async () => {
    await w.store.inner.createChannel({ id: 'secret', name: 'secret', isPrivate: true });
    expect(await code(w.chat.membership.presence(principal('ann'), 'secret'))).toBe(ErrorCode.FORBIDDEN);
    w.presence.shouldFail = true;
    expect(await code(w.chat.membership.presence(principal('ann'), 'general'))).toBe(ErrorCode.UNAVAILABLE);
  });
});
