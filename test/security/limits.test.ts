import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { call, collect, connect } from '../helpers/client.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { token } from '../helpers/tokens.js';
import { expectError, expectServes, rawAck, rawClient, storedMessages, useServers } from './raw.js';

// Issue 7 item 1 and 2: every abuse limit, each answered RATE_LIMITED (with retryAfterMs) or a clear refusal.

const serve = useServers();

const handshake = (url: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers });

describe('connection attempts per IP (RATE_LIMIT_HANDSHAKES)', () => {
  test('over the limit a handshake gets 429 RATE_LIMITED with retryAfterMs; another address is still served', async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '5/60s' });
    const before = await connect(url, await token('early'));
    for (let i = 0; i < 4; i++) expect((await handshake(url)).status).toBe(200);
    const refused = await handshake(url);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await refused.json()) as { error: { code: string; message: string; retryAfterMs: number } };
    expectError(body.error, 'RATE_LIMITED');
    expect(body.error.retryAfterMs).toBeGreaterThan(0);

    // A WebSocket handshake is refused the same way, and the SDK's client sees a connect_error.
    await expect(connect(url, await token('late'))).rejects.toThrow();

    // A session opened before the limit goes on working: only new sessions count.
    expect((await call(before, 'join_channel', 'general')).ok).toBe(true);
    // Another client address is not affected.
    const other = await connect(url, await token('elsewhere'), { localAddress: '127.0.0.2' } as never);
    expect((await call(other, 'join_channel', 'general')).ok).toBe(true);
  });

  test('X-Forwarded-For is ignored unless the peer is a trusted proxy', async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '3/60s' });
    // Rotating a spoofed header does not buy more attempts.
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await handshake(url, { 'x-forwarded-for': `10.0.0.${i + 1}` })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  test('behind a trusted proxy each forwarded client address has its own budget', async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '3/60s', TRUST_PROXY: 'loopback' });
    const a = [];
    for (let i = 0; i < 4; i++) a.push((await handshake(url, { 'x-forwarded-for': '203.0.113.7' })).status);
    expect(a).toEqual([200, 200, 200, 429]);
    expect((await handshake(url, { 'x-forwarded-for': '203.0.113.8' })).status).toBe(200);
  });
});

describe('slow consumers (MAX_OUTGOING_BYTES / MAX_OUTGOING_PACKETS)', () => {
  test('a client that stops reading is disconnected once its buffer passes the cap, with a metric and a log line', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const server = await serve(
      {
        MAX_MESSAGE_LENGTH: '60000',
        MAX_FRAME_BYTES: '262144',
        MAX_OUTGOING_BYTES: '1048576',
        RATE_LIMIT_MESSAGES: '100000/10s',
        RATE_LIMIT_EVENTS: '100000/10s',
      },
      { logger: pino({ level: 'warn' }, sink) },
    );
    const { url, app } = server;
    const reader = await rawClient(url, { token: await token('sleepy') });
    reader.send('420["join_channel","general"]');
    expect((await rawAck(reader, 0)).ok).toBe(true);
    // Stop reading: the kernel buffers fill, then the server's own buffers would grow without bound.
    const tcp = (reader.ws as unknown as { _socket: import('node:net').Socket })._socket;
    tcp.pause();

    const sender = await connect(url, await token('chatty'));
    expect((await call(sender, 'join_channel', 'general')).ok).toBe(true);
    const big = 'x'.repeat(50_000);
    const dropped = () => app.io.of('/').sockets.size === 1;
    // At most ~30 MB in all: far past the kernel's buffers plus the 1 MiB cap.
    for (let i = 0; i < 600 && !dropped(); i++) {
      const ack = await call(sender, 'send_message', { channelId: 'general', content: big, clientMessageId: `big-${i}` });
      expect(ack.ok).toBe(true);
    }
    await waitFor(dropped, 'the slow consumer to be dropped');
    expect((await app.metrics.slowConsumerDisconnects.get()).values[0]?.value).toBe(1);
    expect(lines.some((l) => l.includes('slow consumer') && l.includes('sleepy'))).toBe(true);

    // The sender, a reading client, is not affected and the server goes on serving.
    expect(sender.connected).toBe(true);
    expect((await call(sender, 'send_message', { channelId: 'general', content: 'after', clientMessageId: 'after' })).ok).toBe(true);
    await expectServes(url);
    tcp.resume();
    await reader.closed;
  });
});

describe('slow consumers over long-polling (MAX_OUTGOING_PACKETS)', () => {
  test('a polling client that stops polling is disconnected once its queue passes the packet cap', async () => {
    const server = await serve({ MAX_OUTGOING_PACKETS: '50', RATE_LIMIT_MESSAGES: '100000/10s', RATE_LIMIT_EVENTS: '100000/10s' });
    const { url, app } = server;
    const base = `${url}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(base)).text();
    const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    const post = (body: string) => fetch(`${base}&sid=${sid}`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    expect((await post(`40${JSON.stringify({ token: await token('poller') })}`)).status).toBe(200);
    expect(await (await fetch(`${base}&sid=${sid}`)).text()).toMatch(/^40\{/);
    expect((await post('420["join_channel","general"]')).status).toBe(200);
    await waitFor(async () => (await (await fetch(`${base}&sid=${sid}`)).text()).includes('430['), 'the join ack over polling');
    // From here on the client never polls again: everything for it waits in the server's buffer.
    const sender = await connect(url, await token('talker'));
    expect((await call(sender, 'join_channel', 'general')).ok).toBe(true);
    const dropped = () => app.io.of('/').sockets.size === 1;
    for (let i = 0; i < 200 && !dropped(); i++) {
      expect((await call(sender, 'send_message', { channelId: 'general', content: `p${i}`, clientMessageId: `p${i}` })).ok).toBe(true);
    }
    await waitFor(dropped, 'the polling slow consumer to be dropped');
    expect((await app.metrics.slowConsumerDisconnects.get()).values[0]?.value).toBe(1);
    // Its queue was discarded: polling again yields no burst of stale messages, only the end of the
    // session; the client reconnects and catches up from the store with sinceSeq.
    const after = await fetch(`${base}&sid=${sid}`);
    const text = await after.text();
    expect(text).not.toContain('new_message');
    expect(after.status === 400 || text === '1', `${after.status} ${text.slice(0, 200)}`).toBe(true);
    await expectServes(url);
  });
});

describe('messages per user, cluster-wide with Redis (RATE_LIMIT_MESSAGES)', () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test('the limit counts one user across instances; the refused send is not stored', async () => {
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MESSAGES: '3/60s' };
    // Both instances share one SQLite file so the store is common, like a real cluster's database.
    const dir = (await import('node:fs')).mkdtempSync(`${(await import('node:os')).tmpdir()}/sb-rl-`);
    const db = `sqlite:${dir}/shared.db`;
    const a = await serve({ ...env, DATABASE_URL: db });
    const b = await serve({ ...env, DATABASE_URL: db });
    const t = await token('flood');
    const sa = await connect(a.url, t);
    const sb = await connect(b.url, t);
    for (const s of [sa, sb]) expect((await call(s, 'join_channel', 'random')).ok).toBe(true);
    const send = (s: typeof sa, i: number) => call(s, 'send_message', { channelId: 'random', content: `m${i}`, clientMessageId: `rl-${i}` });
    expect((await send(sa, 1)).ok).toBe(true);
    expect((await send(sb, 2)).ok).toBe(true);
    expect((await send(sa, 3)).ok).toBe(true);
    const refused = await send(sb, 4);
    expect(refused.ok).toBe(false);
    expectError(refused.error, 'RATE_LIMITED');
    expect(refused.error.retryAfterMs).toBeGreaterThan(0);
    const stored = await storedMessages(a.url, 'random');
    expect(stored.filter((m) => m.userId === 'flood').map((m) => m.clientMessageId)).toEqual(['rl-1', 'rl-2', 'rl-3']);
    // Another user is not limited by this one.
    await expectServes(b.url);
  });
});

describe('per-connection and per-user limits', () => {
  let url: string;
  beforeAll(async () => {
    ({ url } = await serve({
      RATE_LIMIT_EVENTS: '10/60s',
      MAX_CONNECTIONS_PER_USER: '2',
      MAX_CHANNELS_PER_SOCKET: '2',
      DEFAULT_CHANNELS: 'general,random,third',
    }));
  });

  test('events per connection: over the limit RATE_LIMITED with retryAfterMs, at twice the limit disconnected', async () => {
    const s = await connect(url, await token('spammer'));
    const acks = [];
    for (let i = 0; i < 10; i++) acks.push(await call(s, 'presence', { channelId: 'general' }));
    expect(acks.every((a) => a.ok)).toBe(true);
    const over = await call(s, 'presence', { channelId: 'general' });
    expect(over.ok).toBe(false);
    expectError(over.error, 'RATE_LIMITED');
    expect(over.error.retryAfterMs).toBeGreaterThan(0);
    const gone = new Promise<string>((resolve) => s.once('disconnect', resolve));
    // A client that ignores the answer is cut off rather than allowed to slow the server.
    for (let i = 0; i < 12 && s.connected; i++) s.emit('presence', { channelId: 'general' });
    expect(await gone).toBe('io server disconnect');
    await expectServes(url);
  });

  test('connections per user: the third connection is refused RATE_LIMITED; closing one frees a slot', async () => {
    const t = await token('many-tabs');
    const first = await connect(url, t);
    await connect(url, t);
    const err = (await connect(url, t).catch((e: unknown) => e)) as Error & { data?: { code: string; retryAfterMs: number } };
    expect(err).toBeInstanceOf(Error);
    expect(err.data?.code).toBe('RATE_LIMITED');
    expect(err.data?.retryAfterMs).toBeGreaterThan(0);
    expect(err.message).toMatch(/too many connections/i);
    first.close();
    await waitFor(async () => (await connect(url, t).then((s) => s.connected).catch(() => false)), 'a slot to free up');
  });

  test('channels per socket: the third join is refused RATE_LIMITED; leaving one frees a slot', async () => {
    const s = await connect(url, await token('joiner'));
    expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
    expect((await call(s, 'join_channel', 'random')).ok).toBe(true);
    const third = await call(s, 'join_channel', 'third');
    expect(third.ok).toBe(false);
    expectError(third.error, 'RATE_LIMITED');
    expect(third.error.retryAfterMs).toBeGreaterThan(0);
    expect((await call(s, 'leave_channel', 'general')).ok).toBe(true);
    expect((await call(s, 'join_channel', 'third')).ok).toBe(true);
  });
});

describe('typing per user and channel, history page size', () => {
  let url: string;
  beforeAll(async () => {
    ({ url } = await serve({}));
  });

  test('typing: at most one per user and channel per second reaches the others; the rest are acked throttled', async () => {
    const alice = await connect(url, await token('typist'));
    const bob = await connect(url, await token('watcher'));
    for (const s of [alice, bob]) expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
    const seen = collect(bob, 'user_typing');
    expect(await call(alice, 'typing', { channelId: 'general' })).toEqual({ ok: true });
    const acks = [];
    for (let i = 0; i < 20; i++) acks.push(await call(alice, 'typing', { channelId: 'general' }));
    expect(acks.filter((a) => a.throttled === true).length).toBeGreaterThanOrEqual(19);
    // A round trip on bob's connection orders everything relayed before it.
    await call(bob, 'presence', { channelId: 'general' });
    await sleep(100);
    expect(seen.length).toBeLessThanOrEqual(2);
    expect(seen.length).toBeGreaterThanOrEqual(1);
  });

  test('history: a limit above 200 is clamped to 200, over Socket.IO and REST', async () => {
    const admin = await token('root', { admin: true });
    for (let i = 0; i < 250; i += 50) {
      const rs = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          fetch(`${url}/api/channels/random/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
            body: JSON.stringify({ content: `h${i + j}`, clientMessageId: `h${i + j}` }),
          }),
        ),
      );
      expect(rs.every((r) => r.status === 201)).toBe(true);
    }
    const s = await connect(url, await token('reader'));
    const page = await call(s, 'history', { channelId: 'random', limit: 100_000 });
    expect(page.ok).toBe(true);
    expect(page.messages).toHaveLength(200);
    expect(page.hasMore).toBe(true);
    const r = await fetch(`${url}/api/channels/random/messages?limit=100000`, { headers: { authorization: `Bearer ${admin}` } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { messages: unknown[] }).messages).toHaveLength(200);
  });
});
