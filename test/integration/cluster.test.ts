import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { call, closeAllClients, collect, connect, next } from '../helpers/client.js';
import { startInstance, type Cluster } from '../helpers/instance.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { token } from '../helpers/tokens.js';

// Three real instances (child processes) sharing a private redis-server and one PostgreSQL database.
let stack: Stack;
let cluster: Cluster;
let A: string, B: string, C: string;

beforeAll(async () => {
  stack = await startStack('cluster', 3, { PRESENCE_TTL_MS: '3000', RATE_LIMIT_MESSAGES: '5/60s' });
  cluster = stack.cluster;
  [A, B, C] = cluster.instances.map((i) => i.url) as [string, string, string];
});
afterEach(() => closeAllClients());
afterAll(async () => {
  closeAllClients();
  await stack?.stop();
});

async function joined(url: string, user: string, channel: string, opts: Parameters<typeof token>[1] = {}) {
  const s = await connect(url, await token(user, opts));
  const ack = await call(s, 'join_channel', channel);
  expect(ack.ok).toBe(true);
  return s;
}

async function createChannel(id: string, isPrivate = false) {
  const res = await fetch(`${A}/api/channels`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token('root', { admin: true })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id, private: isPrivate }),
  });
  expect(res.status).toBe(201);
}

describe('cross-instance delivery', () => {
  test('new_message reaches members on every instance, sender included, once each', async () => {
    await createChannel('fanout');
    const sa = await joined(A, 'alice', 'fanout');
    const sb = await joined(B, 'bob', 'fanout');
    const sc = await joined(C, 'carol', 'fanout');
    const got = [sa, sb, sc].map((s) => collect(s, 'new_message'));
    for (let i = 1; i <= 3; i++) {
      const ack = await call(sa, 'send_message', { channelId: 'fanout', content: `m${i}`, clientMessageId: `c${i}` });
      expect(ack.ok).toBe(true);
      expect(ack.message.seq).toBe(i);
    }
    await waitFor(() => got.every((g) => g.length === 3), 'three messages at each member');
    for (const g of got) expect(g.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  test('user_joined, user_typing and user_left cross instances', async () => {
    await createChannel('events');
    const sb = await joined(B, 'bob', 'events');
    const joinedEvt = next(sb, 'user_joined');
    const sa = await joined(A, 'alice', 'events');
    expect(await joinedEvt).toMatchObject({ userId: 'alice', channelId: 'events' });

    const typingEvt = next(sb, 'user_typing');
    expect(await call(sa, 'typing', { channelId: 'events' })).toEqual({ ok: true });
    expect(await typingEvt).toEqual({ userId: 'alice', channelId: 'events' });

    const leftEvt = next(sb, 'user_left');
    expect((await call(sa, 'leave_channel', 'events')).ok).toBe(true);
    expect(await leftEvt).toMatchObject({ userId: 'alice', channelId: 'events' });
  });

  test('user_left fires when the last of a user’s connections goes, on any instance', async () => {
    await createChannel('tabs');
    const watcher = await joined(C, 'walt', 'tabs');
    const tab1 = await joined(A, 'tina', 'tabs');
    const tab2 = await joined(B, 'tina', 'tabs');
    const lefts = collect(watcher, 'user_left');
    tab1.close();
    // The second tab keeps tina present: no user_left yet, and presence still counts one connection.
    await waitFor(async () => {
      const p = await call(watcher, 'presence', { channelId: 'tabs' });
      return p.users.find((u: { userId: string }) => u.userId === 'tina')?.connections === 1;
    }, 'tina down to one connection');
    expect(lefts).toEqual([]);
    tab2.close();
    await waitFor(() => lefts.length === 1, 'user_left after the last tab');
    expect(lefts[0]).toMatchObject({ userId: 'tina', channelId: 'tabs' });
  });

  test('server-side publish through the REST API of one instance reaches members on the others', async () => {
    await createChannel('announce');
    const sb = await joined(B, 'bob', 'announce');
    const sc = await joined(C, 'carol', 'announce');
    const got = Promise.all([next(sb, 'new_message'), next(sc, 'new_message')]);
    const res = await fetch(`${A}/api/channels/announce/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('root', { admin: true })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'maintenance at noon' }),
    });
    expect(res.status).toBe(201);
    const [mb, mc] = await got;
    expect(mb).toMatchObject({ content: 'maintenance at noon', userId: 'system', seq: 1 });
    expect(mc.id).toBe(mb.id);
  });

  test('revoking access evicts every tab of the user, on every instance (user:<sub> room)', async () => {
    await createChannel('secret', true);
    const admin = { authorization: `Bearer ${await token('root', { admin: true })}` };
    expect((await fetch(`${A}/api/channels/secret/members/mallory`, { method: 'PUT', headers: admin })).status).toBe(204);
    const tabA = await joined(A, 'mallory', 'secret');
    const tabC = await joined(C, 'mallory', 'secret');
    const owner = await joined(B, 'olga', 'secret', { channels: ['secret'] });
    const seenA = collect(tabA, 'new_message');
    const seenC = collect(tabC, 'new_message');
    const seenOwner = collect(owner, 'new_message');

    expect((await fetch(`${B}/api/channels/secret/members/mallory`, { method: 'DELETE', headers: admin })).status).toBe(204);
    // `typing` answers FORBIDDEN once the socket is out of the room, and is not rate-limited like sends.
    await waitFor(async () => (await call(tabA, 'typing', { channelId: 'secret' })).error?.code === 'FORBIDDEN', 'tab on A evicted');
    await waitFor(async () => (await call(tabC, 'typing', { channelId: 'secret' })).error?.code === 'FORBIDDEN', 'tab on C evicted');
    const probeC = await call(tabC, 'send_message', { channelId: 'secret', content: 'x', clientMessageId: 'probe-c' });
    expect(probeC.error?.code).toBe('FORBIDDEN');

    expect((await call(owner, 'send_message', { channelId: 'secret', content: 'after revoke', clientMessageId: 'o1' })).ok).toBe(true);
    await waitFor(() => seenOwner.length === 1, 'owner receives its message');
    await sleep(200);
    expect(seenA).toEqual([]);
    expect(seenC).toEqual([]);
    expect((await call(tabA, 'join_channel', 'secret')).error?.code).toBe('FORBIDDEN');
  });
});

describe('presence across the cluster', () => {
  test('lists users connected to any instance, with connection counts', async () => {
    await createChannel('lobby');
    await joined(A, 'alice', 'lobby');
    await joined(B, 'alice', 'lobby');
    const sc = await joined(C, 'carol', 'lobby');
    const p = await call(sc, 'presence', { channelId: 'lobby' });
    expect(p).toEqual({
      ok: true,
      users: [
        { userId: 'alice', connections: 2 },
        { userId: 'carol', connections: 1 },
      ],
    });
  });

  test('a killed instance’s users expire from presence (heartbeat TTL)', async () => {
    await createChannel('expiry');
    const victim = await startInstance({ env: stack.env });
    cluster.instances.push(victim);
    await joined(victim.url, 'ghost', 'expiry');
    const sa = await joined(A, 'alice', 'expiry');
    const users = async () => (await call(sa, 'presence', { channelId: 'expiry' })).users.map((u: { userId: string }) => u.userId);
    expect(await users()).toEqual(['alice', 'ghost']);
    await victim.kill();
    // PRESENCE_TTL_MS=3000 here; the default is 15 s, within the 30 s the issue allows.
    await waitFor(async () => (await users()).join() === 'alice', 'ghost to expire', 15_000, 250);
  });
});

describe('limits', () => {
  test('the per-user message limit is counted across instances', async () => {
    await createChannel('limits');
    const tabs = [await joined(A, 'spammer', 'limits'), await joined(B, 'spammer', 'limits'), await joined(C, 'spammer', 'limits')];
    const acks = [];
    for (let i = 0; i < 6; i++) {
      acks.push(await call(tabs[i % 3]!, 'send_message', { channelId: 'limits', content: `n${i}`, clientMessageId: `l${i}` }));
    }
    expect(acks.slice(0, 5).every((a) => a.ok)).toBe(true);
    expect(acks[5]).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED' } });
    expect(acks[5].error.retryAfterMs).toBeGreaterThan(0);
  });
});
