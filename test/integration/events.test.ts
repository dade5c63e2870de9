import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import type { Message } from 'switchboard-client/protocol';
import { createChannel, publishMany, unique } from '../helpers/api.js';
import { call, closeAllClients, collect, connect, next, type TestSocket } from '../helpers/client.js';
import { createDatabase, createProxiedDatabase, type ProxiedDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startServer, type TestServer } from '../helpers/server.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';
import { token } from '../helpers/tokens.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqsOf = (ms: Message[]) => ms.map((m) => m.seq);

/** Expects an error ack with `code`, in the contract's shape. */
function expectError(ack: any, code: ErrorCode): void {
  expect(ack).toMatchObject({ ok: false, error: { code } });
  expect(Object.keys(ack).sort()).toEqual(['error', 'ok']);
  expect(typeof ack.error.message).toBe('string');
  expect(ack.error.message.length).toBeGreaterThan(0);
}

/** The socket still answers a valid event. */
async function stillAnswers(socket: TestSocket, channelId = 'general'): Promise<void> {
  expect(socket.connected).toBe(true);
  const ack = await call(socket, 'presence', { channelId });
  expect(ack.ok).toBe(true);
}

describe.each(['sqlite', 'postgres'] as const)('socket events on %s', (backend) => {
  let server: TestServer;
  let db: TestDatabase | undefined;
  let url: string;

  beforeAll(async () => {
    if (backend === 'postgres') db = await createDatabase('events');
    server = await startServer(db ? { DATABASE_URL: db.url } : {});
    url = server.url;
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await server?.close();
    await db?.drop();
  });

  /** A connected user with a fresh id (so per-user limits never carry over between tests). */
  const user = async (label = 'u', opts: Parameters<typeof token>[1] = {}) => {
    const userId = unique(label);
    return { userId, socket: await connect(url, await token(userId, opts)) };
  };
  const channel = async (label = 'ch', isPrivate = false) => {
    const id = unique(label);
    await createChannel(url, id, { private: isPrivate });
    return id;
  };

  describe('join_channel', () => {
    it('string form: ack with lastSeq 0 on an empty channel, and `joined` with the instance', async () => {
      const ch = await channel();
      const { socket } = await user();
      const joined = next(socket, 'joined');
      const ack = await call(socket, 'join_channel', ch);
      expect(ack).toEqual({ ok: true, channelId: ch, lastSeq: 0 });
      expect(await joined).toEqual({ channelId: ch, lastSeq: 0, instance: server.app.config.instanceId });
    });

    it('object form: ack and joined carry the last seq of the channel', async () => {
      const ch = await channel();
      await publishMany(url, ch, 3);
      const { socket } = await user();
      const joined = next(socket, 'joined');
      const ack = await call(socket, 'join_channel', { channelId: ch });
      expect(ack).toEqual({ ok: true, channelId: ch, lastSeq: 3 });
      expect(await joined).toMatchObject({ channelId: ch, lastSeq: 3 });
    });

    it('sinceSeq: missed holds the messages after it, oldest first, hasMore false when that is all', async () => {
      const ch = await channel();
      await publishMany(url, ch, 5);
      const { socket } = await user();
      const ack = await call(socket, 'join_channel', { channelId: ch, sinceSeq: 2 });
      expect(ack).toMatchObject({ ok: true, channelId: ch, lastSeq: 5, hasMore: false });
      expect(seqsOf(ack.missed)).toEqual([3, 4, 5]);
      for (const m of ack.missed as Message[]) expect(m).toMatchObject({ channelId: ch, userId: 'seeder' });
      const upToDate = await call(socket, 'join_channel', { channelId: ch, sinceSeq: 5 });
      expect(upToDate).toEqual({ ok: true, channelId: ch, lastSeq: 5, missed: [], hasMore: false });
    });

    it('sinceSeq on an empty channel: lastSeq 0, nothing missed', async () => {
      const ch = await channel();
      const { socket } = await user();
      expect(await call(socket, 'join_channel', { channelId: ch, sinceSeq: 0 })).toEqual({ ok: true, channelId: ch, lastSeq: 0, missed: [], hasMore: false });
    });

    it('sinceSeq: at most the oldest 200 in missed, hasMore true, the rest through history', async () => {
      const ch = await channel('cap');
      await publishMany(url, ch, 230);
      const { socket } = await user();
      const ack = await call(socket, 'join_channel', { channelId: ch, sinceSeq: 10 });
      expect(ack.ok).toBe(true);
      expect(ack.lastSeq).toBe(230);
      expect(ack.hasMore).toBe(true);
      expect(seqsOf(ack.missed)).toEqual(range(11, 210));
      const rest = await call(socket, 'history', { channelId: ch, afterSeq: 210 });
      expect(seqsOf(rest.messages)).toEqual(range(211, 230));
      expect(rest.hasMore).toBe(false);
    });

    it('the others in the room get user_joined; the joiner does not', async () => {
      const ch = await channel();
      const a = await user('a');
      const b = await user('b');
      await call(a.socket, 'join_channel', ch);
      const aSees = next(a.socket, 'user_joined');
      const bSees = collect(b.socket, 'user_joined');
      await call(b.socket, 'join_channel', ch);
      const e = await aSees;
      expect(e).toMatchObject({ userId: b.userId, channelId: ch });
      expect(Object.keys(e).sort()).toEqual(['channelId', 'timestamp', 'userId']);
      expect(new Date(e.timestamp).toISOString()).toBe(e.timestamp);
      // A later event to b proves b's queue was flushed past the join.
      await call(b.socket, 'presence', { channelId: ch });
      expect(bSees).toEqual([]);
    });

    it('unknown channels, including object-member names, are FORBIDDEN', async () => {
      const { socket } = await user();
      for (const id of [unique('nope'), '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        expectError(await call(socket, 'join_channel', id), ErrorCode.FORBIDDEN);
        expectError(await call(socket, 'join_channel', { channelId: id, sinceSeq: 0 }), ErrorCode.FORBIDDEN);
      }
      await stillAnswers(socket);
    });

    it('a private channel needs access: FORBIDDEN without, joined with the token claim or as admin', async () => {
      const ch = await channel('priv', true);
      const outsider = await user('out');
      const err = await call(outsider.socket, 'join_channel', ch);
      expectError(err, ErrorCode.FORBIDDEN);
      // Existence is not revealed: the same answer as for an unknown channel.
      expect(err).toEqual(await call(outsider.socket, 'join_channel', unique('nope')));
      const granted = await user('in', { channels: [ch] });
      expect((await call(granted.socket, 'join_channel', ch)).ok).toBe(true);
      const admin = await user('admin', { admin: true });
      expect((await call(admin.socket, 'join_channel', ch)).ok).toBe(true);
    });
  });

  describe('leave_channel', () => {
    it('the leaver gets `left` and an ack; the others get user_left; sends are then FORBIDDEN', async () => {
      const ch = await channel();
      const a = await user('a');
      const b = await user('b');
      await call(a.socket, 'join_channel', ch);
      await call(b.socket, 'join_channel', ch);
      const left = next(b.socket, 'left');
      const userLeft = next(a.socket, 'user_left');
      const ack = await call(b.socket, 'leave_channel', ch);
      expect(ack).toEqual({ ok: true, channelId: ch });
      expect(await left).toEqual({ channelId: ch });
      const e = await userLeft;
      expect(e).toMatchObject({ userId: b.userId, channelId: ch });
      expect(new Date(e.timestamp).toISOString()).toBe(e.timestamp);
      expectError(await call(b.socket, 'send_message', { channelId: ch, content: 'hi', clientMessageId: 'x' }), ErrorCode.FORBIDDEN);
      // The object form works too.
      await call(b.socket, 'join_channel', ch);
      expect(await call(b.socket, 'leave_channel', { channelId: ch })).toEqual({ ok: true, channelId: ch });
    });

    it('a disconnect counts as leaving: the others get user_left', async () => {
      const ch = await channel();
      const a = await user('a');
      const b = await user('b');
      await call(a.socket, 'join_channel', ch);
      await call(b.socket, 'join_channel', ch);
      const userLeft = next(a.socket, 'user_left');
      b.socket.close();
      expect(await userLeft).toMatchObject({ userId: b.userId, channelId: ch });
    });
  });

  describe('send_message', () => {
    it('acks the stored message and the whole room, sender included, gets new_message', async () => {
      const ch = await channel();
      const a = await user('a');
      const b = await user('b');
      const outside = await user('c');
      await call(a.socket, 'join_channel', ch);
      await call(b.socket, 'join_channel', ch);
      const outsideGot = collect(outside.socket, 'new_message');
      const toA = next(a.socket, 'new_message');
      const toB = next(b.socket, 'new_message');
      const ack = await call(a.socket, 'send_message', { channelId: ch, content: 'hello 👋', clientMessageId: 'm1' });
      expect(ack.ok).toBe(true);
      expect(ack.duplicate).toBeUndefined();
      expect(Object.keys(ack).sort()).toEqual(['message', 'ok']);
      const m = ack.message as Message;
      expect(Object.keys(m).sort()).toEqual(['channelId', 'clientMessageId', 'content', 'id', 'seq', 'timestamp', 'userId']);
      expect(m).toMatchObject({ seq: 1, channelId: ch, userId: a.userId, content: 'hello 👋', clientMessageId: 'm1' });
      expect(typeof m.id).toBe('string');
      expect(new Date(m.timestamp).toISOString()).toBe(m.timestamp);
      expect(await toA).toEqual(m);
      expect(await toB).toEqual(m);
      const second = await call(b.socket, 'send_message', { channelId: ch, content: 'second', clientMessageId: 'm1' });
      expect(second.message.seq).toBe(2);
      expect(second.duplicate).toBeUndefined();
      await call(outside.socket, 'presence', { channelId: 'general' });
      expect(outsideGot).toEqual([]);
    });

    it('a retry with the same clientMessageId is stored once, acked duplicate:true and broadcast again', async () => {
      const ch = await channel();
      const a = await user('a');
      const b = await user('b');
      await call(a.socket, 'join_channel', ch);
      await call(b.socket, 'join_channel', ch);
      const seenByB = collect(b.socket, 'new_message');
      const first = await call(a.socket, 'send_message', { channelId: ch, content: 'once', clientMessageId: 'retry-1' });
      const retry = await call(a.socket, 'send_message', { channelId: ch, content: 'once', clientMessageId: 'retry-1' });
      expect(retry).toEqual({ ok: true, message: first.message, duplicate: true });
      const after = await call(a.socket, 'send_message', { channelId: ch, content: 'next', clientMessageId: 'retry-2' });
      expect(after.message.seq).toBe(2);
      // b got the original twice (members drop ids they have seen), then the next message.
      const wait = async () => {
        for (let i = 0; i < 100 && seenByB.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      };
      await wait();
      expect(seenByB.map((m) => m.id)).toEqual([first.message.id, first.message.id, after.message.id]);
      const h = await call(a.socket, 'history', { channelId: ch });
      expect(h.messages.map((m: Message) => m.clientMessageId)).toEqual(['retry-1', 'retry-2']);
    });

    it('must have joined: FORBIDDEN, nothing stored', async () => {
      const ch = await channel();
      const { socket } = await user();
      expectError(await call(socket, 'send_message', { channelId: ch, content: 'hi', clientMessageId: 'x' }), ErrorCode.FORBIDDEN);
      expectError(await call(socket, 'send_message', { channelId: unique('nope'), content: 'hi', clientMessageId: 'x' }), ErrorCode.FORBIDDEN);
      expect((await call(socket, 'history', { channelId: ch })).messages).toEqual([]);
    });

    it('content length: MAX_MESSAGE_LENGTH characters pass (emoji count as one), one more is PAYLOAD_TOO_LARGE', async () => {
      const { socket } = await user();
      await call(socket, 'join_channel', 'general');
      const max = server.app.config.maxMessageLength;
      expect((await call(socket, 'send_message', { channelId: 'general', content: 'x'.repeat(max), clientMessageId: 'len-1' })).ok).toBe(true);
      expect((await call(socket, 'send_message', { channelId: 'general', content: '😀'.repeat(max), clientMessageId: 'len-2' })).ok).toBe(true);
      expectError(await call(socket, 'send_message', { channelId: 'general', content: 'x'.repeat(max + 1), clientMessageId: 'len-3' }), ErrorCode.PAYLOAD_TOO_LARGE);
      expectError(await call(socket, 'send_message', { channelId: 'general', content: '😀'.repeat(max + 1), clientMessageId: 'len-4' }), ErrorCode.PAYLOAD_TOO_LARGE);
      await stillAnswers(socket);
    });
  });

  describe('typing', () => {
    it('the others get user_typing, the sender does not; a second within 1 s is throttled', async () => {
      const ch = await channel();
      const a = await user('a');
      const b = await user('b');
      await call(a.socket, 'join_channel', ch);
      await call(b.socket, 'join_channel', ch);
      const aSees = collect(a.socket, 'user_typing');
      const bSees = next(b.socket, 'user_typing');
      expect(await call(a.socket, 'typing', { channelId: ch })).toEqual({ ok: true });
      expect(await bSees).toEqual({ userId: a.userId, channelId: ch });
      expect(await call(a.socket, 'typing', { channelId: ch })).toEqual({ ok: true, throttled: true });
      // b typing reaches a, and a's own typing never did.
      const aGets = next(a.socket, 'user_typing');
      expect(await call(b.socket, 'typing', { channelId: ch })).toEqual({ ok: true });
      expect(await aGets).toEqual({ userId: b.userId, channelId: ch });
      expect(aSees).toEqual([{ userId: b.userId, channelId: ch }]);
    });

    it('must have joined: FORBIDDEN', async () => {
      const ch = await channel();
      const { socket } = await user();
      expectError(await call(socket, 'typing', { channelId: ch }), ErrorCode.FORBIDDEN);
    });
  });

  describe('history', () => {
    let ch: string;
    beforeAll(async () => {
      ch = await channel('hist');
      await publishMany(url, ch, 260);
    });

    it('no cursor: the newest `limit` (default 50), oldest first; hasMore when older exist', async () => {
      const { socket } = await user();
      const page = await call(socket, 'history', { channelId: ch });
      expect(Object.keys(page).sort()).toEqual(['hasMore', 'messages', 'ok']);
      expect(seqsOf(page.messages)).toEqual(range(211, 260));
      expect(page.hasMore).toBe(true);
      const ten = await call(socket, 'history', { channelId: ch, limit: 10 });
      expect(seqsOf(ten.messages)).toEqual(range(251, 260));
    });

    it('beforeSeq: the `limit` just before it; hasMore false at the start', async () => {
      const { socket } = await user();
      const page = await call(socket, 'history', { channelId: ch, beforeSeq: 211, limit: 20 });
      expect(seqsOf(page.messages)).toEqual(range(191, 210));
      expect(page.hasMore).toBe(true);
      const first = await call(socket, 'history', { channelId: ch, beforeSeq: 11, limit: 20 });
      expect(seqsOf(first.messages)).toEqual(range(1, 10));
      expect(first.hasMore).toBe(false);
    });

    it('afterSeq: the `limit` just after it; hasMore means newer exist', async () => {
      const { socket } = await user();
      const page = await call(socket, 'history', { channelId: ch, afterSeq: 0, limit: 20 });
      expect(seqsOf(page.messages)).toEqual(range(1, 20));
      expect(page.hasMore).toBe(true);
      const end = await call(socket, 'history', { channelId: ch, afterSeq: 240, limit: 20 });
      expect(seqsOf(end.messages)).toEqual(range(241, 260));
      expect(end.hasMore).toBe(false);
      const def = await call(socket, 'history', { channelId: ch, afterSeq: 100 });
      expect(seqsOf(def.messages)).toEqual(range(101, 150));
      expect(def.hasMore).toBe(true);
    });

    it('a limit above 200 is clamped to 200', async () => {
      const { socket } = await user();
      const page = await call(socket, 'history', { channelId: ch, limit: 1000 });
      expect(seqsOf(page.messages)).toEqual(range(61, 260));
      expect(page.hasMore).toBe(true);
      const fwd = await call(socket, 'history', { channelId: ch, afterSeq: 0, limit: 201 });
      expect(seqsOf(fwd.messages)).toEqual(range(1, 200));
      expect(fwd.hasMore).toBe(true);
    });

    it('an empty channel has no messages and no more; unknown and private channels are FORBIDDEN', async () => {
      const { socket } = await user();
      const empty = await channel();
      expect(await call(socket, 'history', { channelId: empty })).toEqual({ ok: true, messages: [], hasMore: false });
      expectError(await call(socket, 'history', { channelId: unique('nope') }), ErrorCode.FORBIDDEN);
      expectError(await call(socket, 'history', { channelId: await channel('priv', true) }), ErrorCode.FORBIDDEN);
    });

    it('limits that are not positive integers are INVALID_PAYLOAD', async () => {
      const { socket } = await user();
      for (const limit of [0, -1, 1.5, '10', null]) {
        expectError(await call(socket, 'history', { channelId: ch, limit }), ErrorCode.INVALID_PAYLOAD);
      }
      for (const cursor of [{ beforeSeq: -1 }, { afterSeq: 'x' }, { afterSeq: 2.5 }]) {
        expectError(await call(socket, 'history', { channelId: ch, ...cursor }), ErrorCode.INVALID_PAYLOAD);
      }
      await stillAnswers(socket);
    });
  });

  describe('presence', () => {
    it('lists users with their joined connections, sorted, and follows leaves and disconnects', async () => {
      const ch = await channel();
      const ids = [unique('p-a'), unique('p-b')].sort();
      const a1 = await connect(url, await token(ids[0]!));
      const a2 = await connect(url, await token(ids[0]!));
      const b = await connect(url, await token(ids[1]!));
      const lurker = await connect(url, await token(unique('p-lurker')));
      for (const s of [a1, a2, b]) await call(s, 'join_channel', ch);
      expect(await call(lurker, 'presence', { channelId: ch })).toEqual({
        ok: true,
        users: [
          { userId: ids[0], connections: 2 },
          { userId: ids[1], connections: 1 },
        ],
      });
      await call(b, 'leave_channel', ch);
      const left = next(a1, 'user_left');
      a2.close();
      // a still has a1: no user_left for a; wait until the server has seen a2 go.
      for (let i = 0; i < 100; i++) {
        const p = await call(lurker, 'presence', { channelId: ch });
        if (p.users[0]?.connections === 1) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await call(lurker, 'presence', { channelId: ch })).toEqual({ ok: true, users: [{ userId: ids[0], connections: 1 }] });
      a1.close();
      await left.catch(() => undefined);
    });

    it('two joins in flight on one socket count it once; leaving clears it', async () => {
      const ch = await channel();
      const watcher = await user('watcher');
      await call(watcher.socket, 'join_channel', ch);
      const joins = collect(watcher.socket, 'user_joined');
      const { socket, userId } = await user('twice');
      const acks = await Promise.all([call(socket, 'join_channel', ch), call(socket, 'join_channel', { channelId: ch, sinceSeq: 0 })]);
      expect(acks.map((a) => a.ok)).toEqual([true, true]);
      const users = (await call(watcher.socket, 'presence', { channelId: ch })).users;
      expect(users).toContainEqual({ userId, connections: 1 });
      const left = next(watcher.socket, 'user_left');
      expect((await call(socket, 'leave_channel', ch)).ok).toBe(true);
      expect(await left).toMatchObject({ userId, channelId: ch });
      expect((await call(watcher.socket, 'presence', { channelId: ch })).users).toEqual([{ userId: watcher.userId, connections: 1 }]);
      expect(joins.filter((j) => j.userId === userId)).toHaveLength(1);
    });

    it('a revoked member of a private channel leaves presence, and the others get user_left', async () => {
      const ch = await channel('revoke', true);
      const admin = await token('admin', { admin: true });
      const watcher = await user('watcher', { admin: true });
      const member = await user('member');
      await call(watcher.socket, 'join_channel', ch);
      expect((await fetch(`${url}/api/channels/${ch}/members/${member.userId}`, { method: 'PUT', headers: { authorization: `Bearer ${admin}` } })).status).toBe(204);
      expect((await call(member.socket, 'join_channel', ch)).ok).toBe(true);
      expect((await call(watcher.socket, 'presence', { channelId: ch })).users).toContainEqual({ userId: member.userId, connections: 1 });
      const left = next(watcher.socket, 'user_left');
      expect((await fetch(`${url}/api/channels/${ch}/members/${member.userId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })).status).toBe(204);
      expect(await left).toMatchObject({ userId: member.userId, channelId: ch });
      expect((await call(watcher.socket, 'presence', { channelId: ch })).users).toEqual([{ userId: watcher.userId, connections: 1 }]);
    });

    it('an empty channel has no users; unknown and private channels are FORBIDDEN', async () => {
      const { socket } = await user();
      expect(await call(socket, 'presence', { channelId: await channel() })).toEqual({ ok: true, users: [] });
      expectError(await call(socket, 'presence', { channelId: unique('nope') }), ErrorCode.FORBIDDEN);
      expectError(await call(socket, 'presence', { channelId: await channel('priv', true) }), ErrorCode.FORBIDDEN);
    });
  });

  describe('invalid payloads', () => {
    const proto = (extra: string) => JSON.parse(`{"__proto__": {"polluted": true}, ${extra}}`);
    const BAD: Record<string, unknown[]> = {
      join_channel: [
        undefined,
        null,
        42,
        true,
        [],
        ['general'],
        {},
        { channelId: 5 },
        { channelId: 'general', extra: 1 },
        { channelId: 'general', sinceSeq: -1 },
        { channelId: 'general', sinceSeq: 1.5 },
        { channelId: 'general', sinceSeq: '3' },
        '',
        'has space',
        'x'.repeat(65),
        'a/b',
        'naïve',
        proto('"channelId": "general"'),
        { constructor: 'x', channelId: 'general' },
      ],
      leave_channel: [null, 1, {}, { channelId: 'general', x: 1 }, '', 'bad id', proto('"channelId": "general"')],
      send_message: [
        null,
        'general',
        {},
        { channelId: 'general', content: 'hi' },
        { channelId: 'general', clientMessageId: 'x' },
        { content: 'hi', clientMessageId: 'x' },
        { channelId: 'general', content: 5, clientMessageId: 'x' },
        { channelId: 'general', content: 'hi', clientMessageId: 5 },
        { channelId: 'general', content: '', clientMessageId: 'x' },
        { channelId: 'general', content: '   ', clientMessageId: 'x' },
        { channelId: 'general', content: 'a\u0000b', clientMessageId: 'x' },
        { channelId: 'general', content: 'lone \ud800 surrogate', clientMessageId: 'x' },
        { channelId: 'general', content: 'hi', clientMessageId: '' },
        { channelId: 'general', content: 'hi', clientMessageId: 'x'.repeat(65) },
        { channelId: 'general', content: 'hi', clientMessageId: 'x', extra: true },
        { channelId: ['general'], content: 'hi', clientMessageId: 'x' },
        proto('"channelId": "general", "content": "hi", "clientMessageId": "x"'),
      ],
      typing: [null, 'general', {}, { channelId: 1 }, { channelId: 'general', x: 1 }, proto('"channelId": "general"')],
      history: [null, 'general', {}, { channelId: 'general', limit: 'all' }, { channelId: 'general', before: 1 }, proto('"channelId": "general"')],
      presence: [null, 'general', 7, {}, { channelId: '' }, { channelId: 'general', all: true }, proto('"channelId": "general"')],
    };

    it.each(Object.keys(BAD))('%s: every malformed payload is INVALID_PAYLOAD and the socket stays', async (event) => {
      const { socket } = await user();
      await call(socket, 'join_channel', 'general');
      for (const payload of BAD[event]!) {
        const ack = await call(socket, event, payload);
        try {
          expectError(ack, ErrorCode.INVALID_PAYLOAD);
        } catch (err) {
          throw new Error(`${event} ${JSON.stringify(payload)} answered ${JSON.stringify(ack)}`, { cause: err });
        }
      }
      await stillAnswers(socket);
    });

    it('no payload, or extra arguments, are INVALID_PAYLOAD', async () => {
      const { socket, userId } = await user();
      const ch = await channel();
      await call(socket, 'join_channel', ch);
      for (const event of ['join_channel', 'leave_channel', 'send_message', 'typing', 'history', 'presence']) {
        expectError(await call(socket, event), ErrorCode.INVALID_PAYLOAD);
        expectError(await call(socket, event, { channelId: ch }, 'extra'), ErrorCode.INVALID_PAYLOAD);
        expectError(await call(socket, event, ch, { channelId: ch }, 3), ErrorCode.INVALID_PAYLOAD);
      }
      // Nothing was joined, left or sent by them.
      expect((await call(socket, 'presence', { channelId: ch })).users).toEqual([{ userId, connections: 1 }]);
      expect((await call(socket, 'history', { channelId: ch })).messages).toEqual([]);
      await stillAnswers(socket);
    });

    it('an unknown event is INVALID_PAYLOAD, with or without arguments', async () => {
      const { socket } = await user();
      for (const event of ['nope', 'toString', '__proto__', 'constructor', 'joined', 'new_message', 'error']) {
        expectError(await call(socket, event), ErrorCode.INVALID_PAYLOAD);
        expectError(await call(socket, event, { channelId: 'general' }), ErrorCode.INVALID_PAYLOAD);
      }
      await stillAnswers(socket);
    });

    it('a payload carrying __proto__ pollutes nothing', async () => {
      const { socket } = await user();
      await call(socket, 'send_message', JSON.parse('{"__proto__": {"isAdmin": true, "polluted": 1}, "channelId": "general", "content": "x", "clientMessageId": "p"}'));
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
      await stillAnswers(socket);
    });
  });

  describe('the error event when no callback is given', () => {
    it('carries event, code and message, and the socket keeps working', async () => {
      const { socket } = await user();
      const cases: [string, unknown[], ErrorCode][] = [
        ['join_channel', [42], ErrorCode.INVALID_PAYLOAD],
        ['join_channel', [unique('nope')], ErrorCode.FORBIDDEN],
        ['send_message', [{ channelId: 'general', content: 'hi', clientMessageId: 'x' }], ErrorCode.FORBIDDEN],
        ['typing', [{ channelId: 'general' }], ErrorCode.FORBIDDEN],
        ['history', [{ channelId: 'general', limit: 0 }], ErrorCode.INVALID_PAYLOAD],
        ['presence', [], ErrorCode.INVALID_PAYLOAD],
        ['no_such_event', [{}], ErrorCode.INVALID_PAYLOAD],
      ];
      for (const [event, args, code] of cases) {
        const err = next(socket, 'error');
        (socket as unknown as { emit(e: string, ...a: unknown[]): void }).emit(event, ...args);
        const e = await err;
        expect(e).toMatchObject({ event, code });
        expect(typeof e.message).toBe('string');
        expect(Object.keys(e).sort()).toEqual(['code', 'event', 'message']);
      }
      await call(socket, 'join_channel', 'general');
      const err = next(socket, 'error');
      (socket as unknown as { emit(e: string, ...a: unknown[]): void }).emit('send_message', { channelId: 'general', content: 'x'.repeat(server.app.config.maxMessageLength + 1), clientMessageId: 'big' });
      expect(await err).toMatchObject({ event: 'send_message', code: ErrorCode.PAYLOAD_TOO_LARGE });
      // A success without a callback emits nothing but the broadcast.
      const got = next(socket, 'new_message');
      (socket as unknown as { emit(e: string, ...a: unknown[]): void }).emit('send_message', { channelId: 'general', content: 'no ack', clientMessageId: 'noack' });
      expect(await got).toMatchObject({ content: 'no ack', clientMessageId: 'noack' });
      await stillAnswers(socket);
    });
  });
});

describe('limits: a server with RATE_LIMIT_MESSAGES=3/10s, MAX_MESSAGE_LENGTH=10, MAX_FRAME_BYTES=4096', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_MESSAGES: '3/10s', MAX_MESSAGE_LENGTH: '10', MAX_FRAME_BYTES: '4096' });
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await server?.close();
  });

  it('the fourth message in the window is RATE_LIMITED with retryAfterMs; other users are unaffected', async () => {
    const socket = await connect(server.url, await token('spammer'));
    await call(socket, 'join_channel', 'general');
    for (let i = 0; i < 3; i++) {
      expect((await call(socket, 'send_message', { channelId: 'general', content: `m${i}`, clientMessageId: `r${i}` })).ok).toBe(true);
    }
    const ack = await call(socket, 'send_message', { channelId: 'general', content: 'm3', clientMessageId: 'r3' });
    expectError({ ok: ack.ok, error: { code: ack.error.code, message: ack.error.message } }, ErrorCode.RATE_LIMITED);
    expect(Object.keys(ack.error).sort()).toEqual(['code', 'message', 'retryAfterMs']);
    expect(Number.isInteger(ack.error.retryAfterMs)).toBe(true);
    expect(ack.error.retryAfterMs).toBeGreaterThan(0);
    expect(ack.error.retryAfterMs).toBeLessThanOrEqual(10_000);
    // Without a callback: an error event with retryAfterMs.
    const err = next(socket, 'error');
    (socket as unknown as { emit(e: string, ...a: unknown[]): void }).emit('send_message', { channelId: 'general', content: 'm4', clientMessageId: 'r4' });
    expect(await err).toMatchObject({ event: 'send_message', code: ErrorCode.RATE_LIMITED, retryAfterMs: expect.any(Number) });
    // Nothing of the refused sends was stored.
    const h = await call(socket, 'history', { channelId: 'general' });
    expect(h.messages.map((m: Message) => m.clientMessageId)).toEqual(['r0', 'r1', 'r2']);
    const other = await connect(server.url, await token('calm'));
    await call(other, 'join_channel', 'general');
    expect((await call(other, 'send_message', { channelId: 'general', content: 'fine', clientMessageId: 'c1' })).ok).toBe(true);
    await stillAnswers(socket);
  });

  it('over long-polling too, a frame above MAX_FRAME_BYTES closes only that connection', async () => {
    const big = await connect(server.url, await token('big-polling'), { transports: ['polling'] });
    const bystander = await connect(server.url, await token('bystander-polling'), { transports: ['polling'] });
    const closed = new Promise<string>((resolve) => big.once('disconnect', (reason) => resolve(reason)));
    (big as unknown as { emit(e: string, ...a: unknown[]): void }).emit('send_message', { channelId: 'general', content: 'y'.repeat(8000), clientMessageId: 'huge' });
    expect(await closed).toMatch(/transport (close|error)/);
    await stillAnswers(bystander);
  });

  it('MAX_MESSAGE_LENGTH is configurable: 10 pass, 11 are PAYLOAD_TOO_LARGE', async () => {
    const socket = await connect(server.url, await token('short'));
    await call(socket, 'join_channel', 'general');
    expect((await call(socket, 'send_message', { channelId: 'general', content: '0123456789', clientMessageId: 'ok' })).ok).toBe(true);
    expectError(await call(socket, 'send_message', { channelId: 'general', content: '0123456789a', clientMessageId: 'big' }), ErrorCode.PAYLOAD_TOO_LARGE);
  });

  it('a frame above MAX_FRAME_BYTES closes only that connection; another client and the server keep working', async () => {
    const big = await connect(server.url, await token('big'));
    const bystander = await connect(server.url, await token('bystander'));
    await call(bystander, 'join_channel', 'general');
    const closed = new Promise<string>((resolve) => big.once('disconnect', (reason) => resolve(reason)));
    (big as unknown as { emit(e: string, ...a: unknown[]): void }).emit('send_message', { channelId: 'general', content: 'x'.repeat(8000), clientMessageId: 'huge' });
    expect(await closed).toMatch(/transport (close|error)/);
    await stillAnswers(bystander);
    // Below the limit everything is answered per event.
    const again = await connect(server.url, await token('big'));
    const ack = await call(again, 'send_message', { channelId: 'general', content: 'x'.repeat(3000), clientMessageId: 'below' });
    expectError(ack, ErrorCode.PAYLOAD_TOO_LARGE);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe('UNAVAILABLE and INTERNAL', () => {
  let db: ProxiedDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  let broken: TestServer;
  beforeAll(async () => {
    db = await createProxiedDatabase('events_unavailable');
    proxy = db.proxy;
    server = await startServer({ DATABASE_URL: db.proxiedUrl });
    broken = await startServer({}, {
      afterStore: () => {
        throw new Error('injected fault: SELECT secret FROM nowhere');
      },
    });
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await proxy?.restore().catch(() => undefined);
    await server?.close();
    await broken?.close();
    await db?.drop();
  });

  it('a send while the store is unreachable is UNAVAILABLE; nothing stored; a retry succeeds once it is back', async () => {
    const socket = await connect(server.url, await token('u1'));
    await call(socket, 'join_channel', 'general');
    expect((await call(socket, 'send_message', { channelId: 'general', content: 'before', clientMessageId: 'b1' })).ok).toBe(true);
    await proxy.cut();
    const ack = await call(socket, 'send_message', { channelId: 'general', content: 'during', clientMessageId: 'd1' });
    expectError(ack, ErrorCode.UNAVAILABLE);
    expect(ack.error.message).not.toMatch(/ECONN|127\.0\.0\.1|postgres|SELECT|INSERT/i);
    const hist = await call(socket, 'history', { channelId: 'general' });
    expectError(hist, ErrorCode.UNAVAILABLE);
    await proxy.restore();
    const retry = await call(socket, 'send_message', { channelId: 'general', content: 'during', clientMessageId: 'd1' });
    expect(retry.ok).toBe(true);
    expect(retry.duplicate).toBeUndefined();
    expect(retry.message.seq).toBe(2);
    const h = await call(socket, 'history', { channelId: 'general' });
    expect(h.messages.map((m: Message) => m.clientMessageId)).toEqual(['b1', 'd1']);
  });

  it('an unexpected failure is INTERNAL, says nothing of its cause, and the socket stays', async () => {
    const socket = await connect(broken.url, await token('u2'));
    await call(socket, 'join_channel', 'general');
    const ack = await call(socket, 'send_message', { channelId: 'general', content: 'x', clientMessageId: 'i1' });
    expectError(ack, ErrorCode.INTERNAL);
    expect(ack.error.message).not.toMatch(/injected|SELECT|secret|at /);
    await stillAnswers(socket);
  });
});

describe('presence with a slow store (PostgreSQL behind a 40 ms proxy)', () => {
  let db: ProxiedDatabase;
  let server: TestServer;
  beforeAll(async () => {
    db = await createProxiedDatabase('events_slow', { delayMs: 40 });
    server = await startServer({ DATABASE_URL: db.proxiedUrl });
  });
  afterAll(async () => {
    closeAllClients();
    await server?.close();
    await db?.drop();
  });

  it('a socket that disconnects while its join is being answered leaves no presence behind', async () => {
    const ch = unique('ghost');
    await createChannel(server.url, ch);
    const watcher = await connect(server.url, await token('ghost-watcher'));
    await call(watcher, 'join_channel', ch);
    const quitters = await Promise.all(Array.from({ length: 5 }, async (_, i) => connect(server.url, await token(`quitter-${i}`))));
    const joinsDone = quitters.map((s) => call(s, 'join_channel', { channelId: ch, sinceSeq: 0 }).catch(() => undefined));
    // Let the join packets reach the server, then close while the store is still answering them.
    await new Promise((r) => setTimeout(r, 10));
    for (const s of quitters) s.disconnect();
    await Promise.all(joinsDone);
    // A later join of the watcher's own goes through the same slow store after the quitters' joins.
    await call(watcher, 'join_channel', { channelId: ch, sinceSeq: 0 });
    expect((await call(watcher, 'presence', { channelId: ch })).users).toEqual([{ userId: 'ghost-watcher', connections: 1 }]);
  });
});
