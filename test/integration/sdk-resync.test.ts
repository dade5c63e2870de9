// The SDK when the broker drops broadcasts: two in-process instances share PostgreSQL and a private
// Redis. While Redis is down, messages stored through instance B never reach A's clients (pub/sub
// keeps nothing). When Redis is back the instances send `resync`; the SDK fetches what it missed,
// without reconnecting and without a later message to reveal the gap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ConnectionStatus, type SwitchboardClient } from 'switchboard-client';
import type { Message } from 'switchboard-client/protocol';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { createDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

let redis: PrivateRedis | undefined;
let db: TestDatabase | undefined;
const servers: TestServer[] = [];
const clients: SwitchboardClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  db = await createDatabase('sdk_resync');
  const env = { REDIS_URL: redis.url, DATABASE_URL: db.url, RATE_LIMIT_MESSAGES: '10000/10s' };
  servers.push(await startServer({ ...env, INSTANCE_ID: 'resync-a' }));
  servers.push(await startServer({ ...env, INSTANCE_ID: 'resync-b' }));
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  closeAllClients();
  for (const s of servers) await s.close().catch(() => undefined);
  await redis?.stop();
  await db?.drop();
});

const notReady = async (url: string) => (await fetch(`${url}/readyz`)).status === 503;
const ready = async (url: string) => (await fetch(`${url}/readyz`)).status === 200;

describe('SDK: resync', () => {
  it('fetches the messages whose broadcasts were lost while the broker was down, on the same connection', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const reader = createClient({ url: a.url, getToken: () => token('reader'), transports: ['websocket'], onError: () => undefined });
    clients.push(reader);
    const statuses: ConnectionStatus[] = [];
    reader.onStateChange((s) => statuses.push(s.status));
    const got: Message[] = [];
    let joined = false;
    reader.subscribe('general', { onMessage: (m) => got.push(m), onJoin: () => (joined = true) });
    await waitFor(() => joined, 'reader joined');

    const writer = await connect(b.url, await token('writer'), { transports: ['websocket'] });
    expect((await call(writer, 'join_channel', 'general')).ok).toBe(true);
    expect((await call(writer, 'send_message', { channelId: 'general', content: 'before', clientMessageId: 'w0' })).ok).toBe(true);
    await waitFor(() => got.length === 1, 'the first message, live across instances');

    await redis!.kill();
    await waitFor(async () => (await notReady(a.url)) && (await notReady(b.url)), 'both instances to see the broker down');
    for (let i = 1; i <= 3; i++) {
      const r = await call(writer, 'send_message', { channelId: 'general', content: `during ${i}`, clientMessageId: `w${i}` });
      expect(r.ok).toBe(true);
    }
    await redis!.start();
    await waitFor(async () => (await ready(a.url)) && (await ready(b.url)), 'both instances to see the broker back');

    await waitFor(() => got.length >= 4, 'the reader to resync', 15_000);
    expect(got.map((m) => m.content)).toEqual(['before', 'during 1', 'during 2', 'during 3']);
    expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(statuses).not.toContain('reconnecting');
  });
});
