import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, type Message } from 'switchboard-client/protocol';
import type { Session } from '../../src/core/chat.js';
import { coreWorld, principal, type CoreWorld } from './core-fakes.js';

let w: CoreWorld;
let ann: Session;
beforeEach(async () => {
  w = await coreWorld({ messages: { points: 3, durationMs: 60_000 } });
  ann = w.connect('ann');
  await w.chat.membership.join(ann, 'general');
});
afterEach(() => w.close());

const send = (s: Session, clientMessageId: string, content = `text of ${clientMessageId}`) =>
  w.chat.messaging.send(s, { channelId: 'general', content, clientMessageId });
const broadcastMessages = () => w.broadcaster.of('new_message').map((s) => [s.method, s.channelId, (s.payload as Message).id]);
const storedCount = async () => (await w.store.inner.getChannel('general'))!.lastSeq;

describe('send', () => {
  it('stores the message, then broadcasts it to the whole channel, and acks it', async () => {
    const r = await send(ann, 'c1', 'hello');
    expect(r).toEqual({ message: expect.objectContaining({ seq: 1, channelId: 'general', userId: 'ann', content: 'hello', clientMessageId: 'c1' }) });
    expect(broadcastMessages()).toEqual([['toChannel', 'general', r.message.id]]);
    expect(w.broadcaster.of('new_message')[0]!.payload).toEqual(r.message);
  });

  it('not joined: FORBIDDEN; nothing stored, nothing broadcast', async () => {
    await expect(w.chat.messaging.send(ann, { channelId: 'random', content: 'x', clientMessageId: 'c1' })).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    expect((await w.store.inner.getChannel('random'))!.lastSeq).toBe(0);
    expect(broadcastMessages()).toEqual([]);
  });

  it('over the per-user limit: RATE_LIMITED with retryAfterMs; nothing stored for it', async () => {
    for (const id of ['c1', 'c2', 'c3']) await send(ann, id);
    const refused = await send(ann, 'c4').catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: ErrorCode.RATE_LIMITED });
    expect((refused as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    expect(await storedCount()).toBe(3);
    expect(broadcastMessages()).toHaveLength(3);
  });

  it('a retry with the same clientMessageId stores nothing new, acks the original as duplicate and broadcasts it again', async () => {
    const first = await send(ann, 'same', 'once');
    const again = await send(ann, 'same', 'once');
    expect(again).toEqual({ message: first.message, duplicate: true });
    expect(await storedCount()).toBe(1);
    expect(broadcastMessages()).toEqual([
      ['toChannel', 'general', first.message.id],
      ['toChannel', 'general', first.message.id],
    ]);
  });

  it('while the store is down: UNAVAILABLE and nothing broadcast; the retry stores it once', async () => {
    w.store.shouldFail = true;
    await expect(send(ann, 'c1')).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(broadcastMessages()).toEqual([]);
    w.store.shouldFail = false;
    const r = await send(ann, 'c1');
    expect(r.message.seq).toBe(1);
    expect(broadcastMessages()).toEqual([['toChannel', 'general', r.message.id]]);
  });
});

describe('history', () => {
  beforeEach(() => w.seed('general', 250));

  it('the newest 50 by default, oldest first, with hasMore', async () => {
    const page = await w.chat.messaging.history(ann.principal, { channelId: 'general' });
    expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 201 + i));
    expect(page.hasMore).toBe(true);
  });

  it('a limit above 200 is clamped to 200', async () => {
    const page = await w.chat.messaging.history(ann.principal, { channelId: 'general', limit: 1000 });
    expect(page.messages).toHaveLength(200);
    expect(page.messages[0]!.seq).toBe(51);
  });

  it('passes the cursors on: beforeSeq gives what precedes it, afterSeq what follows it', async () => {
    const before = await w.chat.messaging.history(ann.principal, { channelId: 'general', beforeSeq: 11, limit: 3 });
    expect(before.messages.map((m) => m.seq)).toEqual([8, 9, 10]);
    const after = await w.chat.messaging.history(ann.principal, { channelId: 'general', afterSeq: 247, limit: 10 });
    expect(after).toMatchObject({ hasMore: false });
    expect(after.messages.map((m) => m.seq)).toEqual([248, 249, 250]);
  });

  it('needs access to the channel; a store failure is UNAVAILABLE', async () => {
    await w.store.inner.createChannel({ id: 'secret', name: 'secret', isPrivate: true });
    await expect(w.chat.messaging.history(ann.principal, { channelId: 'secret' })).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    w.store.shouldFail = true;
    await expect(w.chat.messaging.history(ann.principal, { channelId: 'general' })).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
  });
});

describe('publish', () => {
  it('an admin publishes as the system user, or as a named user; the channel hears it', async () => {
    const root = principal('root', { admin: true });
    const system = await w.chat.messaging.publish(root, 'general', { content: 'notice', clientMessageId: 'p1' });
    const asBob = await w.chat.messaging.publish(root, 'general', { content: 'hi', userId: 'bob', clientMessageId: 'p2' });
    expect([system.message.userId, asBob.message.userId]).toEqual(['system', 'bob']);
    expect(broadcastMessages()).toEqual([
      ['toChannel', 'general', system.message.id],
      ['toChannel', 'general', asBob.message.id],
    ]);
  });

  it('anyone else is FORBIDDEN; an unknown channel is NOT_FOUND', async () => {
    await expect(w.chat.messaging.publish(principal('ann'), 'general', { content: 'x', clientMessageId: 'p1' })).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    await expect(w.chat.messaging.publish(principal('root', { admin: true }), 'nowhere', { content: 'x', clientMessageId: 'p1' })).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
    });
    expect(broadcastMessages()).toEqual([]);
  });
});
